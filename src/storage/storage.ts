/**
 * The one storage interface. Checkpoints and bundles are read through it by
 * byte range, so the same loader works on a local folder, HTTP(S) and S3.
 * Paths are relative, '/'-separated, and never contain '..' (see `checkRelativePath`).
 */

/** Read access to a tree of files addressed by relative path. */
export interface ByteStorage {
  /** Human-readable location, e.g. "file:///data/bundle" or "s3://bucket/prefix". */
  readonly location: string;
  /** Size in bytes of the file at `path`; throws StorageError (status 404) if missing. */
  size(path: string): Promise<number>;
  /** Bytes [offset, offset + length) of the file at `path`; throws StorageError if short. */
  read(path: string, offset: number, length: number): Promise<Uint8Array>;
  /** The whole file at `path`. */
  readAll(path: string): Promise<Uint8Array>;
  /** Whether a file exists at `path`. */
  exists(path: string): Promise<boolean>;
}

/** Write access, used by the merge command and by tests that upload bundles. */
export interface WritableStorage extends ByteStorage {
  /** Write (create or replace) the whole file at `path`. */
  write(path: string, data: Uint8Array): Promise<void>;
}

/**
 * Reject absolute paths, backslashes, empty segments and '..' so a manifest can
 * never point outside its bundle. Returns the path unchanged when it is safe.
 */
export function checkRelativePath(path: string, what = "path"): string {
  if (typeof path !== "string" || path.length === 0) {
    throw new TypeError(`Cannot use ${what}: it must be a non-empty relative path`);
  }
  if (path.startsWith("/") || /^[a-zA-Z]:/.test(path) || path.includes("\\")) {
    throw new TypeError(
      `Cannot use ${what} '${path}': absolute paths are not allowed; use a path relative to the bundle folder`,
    );
  }
  for (const seg of path.split("/")) {
    if (seg === ".." || seg === "" || seg === ".") {
      throw new TypeError(
        `Cannot use ${what} '${path}': segments '..', '.' and empty ones are not allowed inside a bundle`,
      );
    }
  }
  return path;
}
