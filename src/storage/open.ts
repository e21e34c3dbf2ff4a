/** Pick the storage for a location string: a local folder, http(s):// or s3://. */
import { HttpStorage, type HttpStorageOptions } from "./http.ts";
import { LocalStorage } from "./local.ts";
import { S3Storage, type S3StorageOptions } from "./s3.ts";
import type { ByteStorage, WritableStorage } from "./storage.ts";

/** Per-kind settings for `openStorage`. */
export interface OpenStorageOptions {
  /** Settings for http:// and https:// locations. */
  http?: HttpStorageOptions;
  /** Settings for s3:// locations. */
  s3?: S3StorageOptions;
}

/**
 * Open a location for reading: "s3://bucket/prefix" -> S3Storage,
 * "http(s)://..." -> HttpStorage, "file:///dir" or a plain path -> LocalStorage.
 */
export function openStorage(spec: string, opts: OpenStorageOptions = {}): ByteStorage {
  if (/^https?:\/\//i.test(spec)) return new HttpStorage(spec, opts.http);
  return openWritableStorage(spec, opts);
}

/**
 * Open a location for writing: s3:// or a local folder. HTTP locations are
 * read-only, so they throw a TypeError.
 */
export function openWritableStorage(spec: string, opts: OpenStorageOptions = {}): WritableStorage {
  if (typeof spec !== "string" || spec === "") {
    throw new TypeError("Cannot open storage: the location is empty; give a folder, URL or s3://");
  }
  if (/^s3:\/\//i.test(spec)) return new S3Storage(spec, opts.s3);
  if (/^https?:\/\//i.test(spec)) {
    throw new TypeError(
      `Cannot write to ${spec}: HTTP storage is read-only; write to a local folder or s3:// instead`,
    );
  }
  if (/^file:\/\//i.test(spec)) return new LocalStorage(decodeURIComponent(new URL(spec).pathname));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    throw new TypeError(
      `Cannot open ${spec}: unknown scheme; use a local path, file://, http(s):// or s3://`,
    );
  }
  return new LocalStorage(spec);
}
