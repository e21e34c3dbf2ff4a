/**
 * Atomic bundle writing. Everything goes into a hidden temporary folder next
 * to the destination; `commit` renames it into place only after the manifest
 * is written. `abort` (also run on failure or Ctrl-C by `withBundleWriter`)
 * removes the temporary folder, so a failed merge never leaves a half bundle.
 */
import { StorageError } from "../errors.ts";
import { checkRelativePath } from "../storage/storage.ts";
import { sha256File, Sha256Stream } from "./hash.ts";
import type { FileEntry } from "./manifest.ts";

/** An output file being appended to, with its running hash. */
export class AppendFile {
  readonly #file: Deno.FsFile;
  readonly #hash = new Sha256Stream();
  /** Relative path inside the bundle. */
  readonly path: string;

  private constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
  }

  /** @internal open for appending */
  static async open(full: string, path: string): Promise<AppendFile> {
    const dir = full.slice(0, full.lastIndexOf("/"));
    await Deno.mkdir(dir, { recursive: true });
    return new AppendFile(
      path,
      await Deno.open(full, { write: true, create: true, truncate: true }),
    );
  }

  /** Bytes written so far (the offset of the next write). */
  get size(): number {
    return this.#hash.bytes;
  }

  /** Append bytes; returns their offset. */
  async append(data: Uint8Array): Promise<number> {
    const offset = this.#hash.bytes;
    let done = 0;
    while (done < data.byteLength) done += await this.#file.write(data.subarray(done));
    this.#hash.update(data);
    return offset;
  }

  /** Close and return the file entry. */
  close(): FileEntry {
    this.#file.close();
    return { path: this.path, size: this.#hash.bytes, sha256: this.#hash.digest() };
  }
}

/** Writes one bundle folder atomically. */
export class BundleWriter {
  readonly #tmp: string;
  readonly #files = new Map<string, FileEntry>();
  #done = false;

  private constructor(readonly outDir: string, tmp: string) {
    this.#tmp = tmp;
  }

  /**
   * Prepare writing to `outDir`. Fails early when the destination exists (unless
   * `overwrite`) or its parent folder is not writable.
   */
  static async create(outDir: string, opts: { overwrite?: boolean } = {}): Promise<BundleWriter> {
    const out = outDir.replace(/\/+$/, "");
    const parent = out.includes("/") ? out.slice(0, out.lastIndexOf("/")) || "/" : ".";
    try {
      await Deno.stat(out);
      if (!opts.overwrite) {
        throw new StorageError(
          `Cannot write bundle to ${out}: it already exists; choose another --out or pass --overwrite`,
        );
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    const name = out.slice(out.lastIndexOf("/") + 1);
    const tmp = `${parent}/.${name}.tmp-${crypto.randomUUID().slice(0, 8)}`;
    try {
      await Deno.mkdir(parent, { recursive: true });
      await Deno.mkdir(tmp);
    } catch (e) {
      throw new StorageError(
        `Cannot write bundle to ${out}: the folder ${parent} is not writable (${
          (e as Error).message
        })`,
      );
    }
    return new BundleWriter(out, tmp);
  }

  /** The temporary folder being written. */
  get tempDir(): string {
    return this.#tmp;
  }

  /** Absolute path of a file inside the temporary folder. */
  fullPath(path: string): string {
    return `${this.#tmp}/${checkRelativePath(path)}`;
  }

  /** Write a whole file. */
  async writeFile(path: string, data: Uint8Array): Promise<FileEntry> {
    const f = await AppendFile.open(this.fullPath(path), path);
    await f.append(data);
    return this.#record(f.close());
  }

  /** Open a file for appending (call `closeFile` when done). */
  openFile(path: string): Promise<AppendFile> {
    return AppendFile.open(this.fullPath(path), path);
  }

  /** Close an appended file and record it. */
  closeFile(f: AppendFile): FileEntry {
    return this.#record(f.close());
  }

  /** Record a file written directly at `fullPath(path)` (hashes it). */
  async recordWritten(path: string): Promise<FileEntry> {
    const full = this.fullPath(path);
    const size = (await Deno.stat(full)).size;
    return this.#record({ path, size, sha256: await sha256File(full) });
  }

  #record(e: FileEntry): FileEntry {
    this.#files.set(e.path, e);
    return e;
  }

  /** Every file recorded so far, sorted by path. */
  get files(): FileEntry[] {
    return [...this.#files.values()].sort((a, b) => a.path.localeCompare(b.path));
  }

  /** Write manifest.json (when given) and move the folder into place. */
  async commit(manifestJson?: string): Promise<void> {
    if (manifestJson !== undefined) {
      await Deno.writeTextFile(this.fullPath("manifest.json"), manifestJson);
    }
    let old: string | undefined;
    try {
      await Deno.stat(this.outDir);
      old = `${this.#tmp}-old`;
      await Deno.rename(this.outDir, old);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    await Deno.rename(this.#tmp, this.outDir);
    this.#done = true;
    if (old) await Deno.remove(old, { recursive: true });
  }

  /** Remove the temporary folder (no-op after commit). */
  async abort(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    await Deno.remove(this.#tmp, { recursive: true }).catch(() => {});
  }
}

/**
 * Run `fn` with a writer; on error, or on SIGINT/SIGTERM, the temporary folder
 * is removed and nothing appears at `outDir`.
 */
export async function withBundleWriter<T>(
  outDir: string,
  opts: { overwrite?: boolean },
  fn: (w: BundleWriter) => Promise<T>,
): Promise<T> {
  const w = await BundleWriter.create(outDir, opts);
  const onSignal = () => {
    // Synchronous cleanup: the process exits right after.
    try {
      Deno.removeSync(w.tempDir, { recursive: true });
    } catch { /* already gone */ }
    console.error(`\ninterrupted: nothing was written to ${outDir}`);
    Deno.exit(130);
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  try {
    return await fn(w);
  } catch (e) {
    await w.abort();
    throw e;
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
  }
}
