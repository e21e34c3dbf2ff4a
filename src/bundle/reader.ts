/**
 * Opening and verifying bundles through any storage (local, HTTP, S3).
 * Opening reads only manifest.json; weights and experts are read later, by
 * byte range, and every range is checked against its sha256 before use.
 */
import { BundleFormatError } from "../errors.ts";
import type { ByteStorage } from "../storage/storage.ts";
import { sha256Hex, Sha256Stream } from "./hash.ts";
import { type BundleManifest, validateManifest } from "./manifest.ts";

/** Read and validate a bundle's manifest. */
export async function readManifest(storage: ByteStorage): Promise<BundleManifest> {
  let bytes: Uint8Array;
  try {
    bytes = await storage.readAll("manifest.json");
  } catch (e) {
    throw new BundleFormatError(
      `Cannot open bundle at ${storage.location}: manifest.json is missing or unreadable (${
        (e as Error).message
      }); is this a Mediator bundle folder?`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new BundleFormatError(
      `Cannot open bundle at ${storage.location}: manifest.json is not valid JSON (${
        (e as Error).message
      })`,
    );
  }
  return validateManifest(json);
}

/**
 * Read a byte range and check it against `sha256`; on mismatch throw a
 * BundleFormatError naming the range and file (the bytes are never used).
 */
export async function readVerified(
  storage: ByteStorage,
  file: string,
  offset: number,
  length: number,
  sha256: string,
  what: string,
): Promise<Uint8Array> {
  const bytes = await storage.read(file, offset, length);
  const got = sha256Hex(bytes);
  if (got !== sha256) {
    throw new BundleFormatError(
      `Cannot load ${what}: sha256 mismatch for bytes ${offset}-${
        offset + length - 1
      } of ${file} in ${storage.location}; the bundle is corrupt, re-upload it`,
    );
  }
  return bytes;
}

/** One problem found by `verifyBundle`. */
export interface VerifyProblem {
  file: string;
  message: string;
}

/** What `verifyBundle` checked. */
export interface VerifyReport {
  files: number;
  bytes: number;
  ranges: number;
  problems: VerifyProblem[];
}

const CHUNK = 8 << 20;

/**
 * Re-hash every byte of a bundle: each file as a whole, each dense tensor and
 * each sparse block by range. Collects all problems instead of stopping at the
 * first one.
 */
export async function verifyBundle(
  storage: ByteStorage,
  onProgress?: (file: string, done: number, total: number) => void,
): Promise<VerifyReport> {
  const m = await readManifest(storage);
  const report: VerifyReport = { files: 0, bytes: 0, ranges: 0, problems: [] };
  for (const f of m.files) {
    try {
      const size = await storage.size(f.path);
      if (size !== f.size) {
        report.problems.push({
          file: f.path,
          message: `size is ${size} bytes, manifest says ${f.size}`,
        });
        continue;
      }
      const h = new Sha256Stream();
      for (let off = 0; off < size; off += CHUNK) {
        h.update(await storage.read(f.path, off, Math.min(CHUNK, size - off)));
        onProgress?.(f.path, Math.min(off + CHUNK, size), size);
      }
      const got = h.digest();
      if (got !== f.sha256) {
        report.problems.push({
          file: f.path,
          message: `sha256 is ${got}, manifest says ${f.sha256}`,
        });
      }
      report.files++;
      report.bytes += size;
    } catch (e) {
      report.problems.push({ file: f.path, message: (e as Error).message });
    }
  }
  const check = async (file: string, offset: number, length: number, sha: string, what: string) => {
    try {
      await readVerified(storage, file, offset, length, sha, what);
      report.ranges++;
    } catch (e) {
      report.problems.push({ file, message: (e as Error).message });
    }
  };
  for (const t of m.dense.tensors) {
    await check(m.dense.file, t.offset, t.length, t.sha256, `dense tensor '${t.name}'`);
  }
  for (const e of m.experts) {
    for (const b of e.blocks) {
      await check(e.file, b.offset, b.length, b.sha256, `expert '${e.name}' unit ${b.unit}`);
    }
  }
  return report;
}
