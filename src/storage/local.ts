/** Local-folder implementation of the storage interface. */
import { StorageError } from "../errors.ts";
import { checkRelativePath, type WritableStorage } from "./storage.ts";

/** Files under one local folder, read by byte range with positioned reads. */
export class LocalStorage implements WritableStorage {
  /** Absolute or working-directory-relative folder. */
  readonly root: string;
  /** @param root the folder holding the files */
  constructor(root: string) {
    this.root = root.replace(/\/+$/, "") || "/";
  }

  /** "file://" + folder. */
  get location(): string {
    return `file://${this.root}`;
  }

  #full(path: string): string {
    return `${this.root}/${checkRelativePath(path)}`;
  }

  /** @inheritdoc */
  async size(path: string): Promise<number> {
    try {
      return (await Deno.stat(this.#full(path))).size;
    } catch (e) {
      throw this.#wrap(e, path);
    }
  }

  /** @inheritdoc */
  async exists(path: string): Promise<boolean> {
    try {
      await Deno.stat(this.#full(path));
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw this.#wrap(e, path);
    }
  }

  /** @inheritdoc */
  async read(path: string, offset: number, length: number): Promise<Uint8Array> {
    let file: Deno.FsFile | undefined;
    try {
      file = await Deno.open(this.#full(path), { read: true });
      await file.seek(offset, Deno.SeekMode.Start);
      const out = new Uint8Array(length);
      let got = 0;
      while (got < length) {
        const n = await file.read(out.subarray(got));
        if (n === null) break;
        got += n;
      }
      if (got < length) {
        throw new StorageError(
          `Cannot read bytes ${offset}-${
            offset + length - 1
          } of ${path} in ${this.location}: the file ends after ${offset + got} bytes (truncated?)`,
          416,
        );
      }
      return out;
    } catch (e) {
      throw this.#wrap(e, path);
    } finally {
      file?.close();
    }
  }

  /** @inheritdoc */
  async readAll(path: string): Promise<Uint8Array> {
    try {
      return await Deno.readFile(this.#full(path));
    } catch (e) {
      throw this.#wrap(e, path);
    }
  }

  /** @inheritdoc */
  async write(path: string, data: Uint8Array): Promise<void> {
    const full = this.#full(path);
    const dir = full.slice(0, full.lastIndexOf("/"));
    try {
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeFile(full, data);
    } catch (e) {
      throw this.#wrap(e, path);
    }
  }

  #wrap(e: unknown, path: string): Error {
    if (e instanceof StorageError || e instanceof TypeError) return e;
    if (e instanceof Deno.errors.NotFound) {
      return new StorageError(`Cannot find ${path} in ${this.location}: no such file`, 404, {
        cause: e,
      });
    }
    return new StorageError(`Cannot access ${path} in ${this.location}: ${String(e)}`, undefined, {
      cause: e,
    });
  }
}
