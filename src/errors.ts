/**
 * Domain errors. Bad arguments use the built-in `TypeError` / `RangeError`;
 * these classes mark failures of a specific subsystem so callers (the CLI, the
 * HTTP error mapper) can react to them. Messages follow "Cannot X: reason; fix".
 */

/** A checkpoint or bundle file is malformed, truncated or inconsistent. */
export class BundleFormatError extends Error {
  /** @param message what is wrong, where, and how to fix it */
  constructor(message: string) {
    super(message);
    this.name = "BundleFormatError";
  }
}

/** A storage backend (local folder, HTTP, S3) failed to deliver or accept bytes. */
export class StorageError extends Error {
  /** HTTP-like status of the failure when known (404 for missing objects). */
  readonly status?: number;
  /**
   * @param message what failed and how to fix it
   * @param status optional HTTP-like status code
   */
  constructor(message: string, status?: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "StorageError";
    this.status = status;
  }
}

/** A backend cannot run an operation (shape, dtype or limit unsupported). */
export class UnsupportedOpError extends Error {
  /** @param message which op, which backend, and why */
  constructor(message: string) {
    super(message);
    this.name = "UnsupportedOpError";
  }
}

/** Models given to one merge or bundle do not fit together. */
export class IncompatibleModelsError extends Error {
  /** @param message which model and tensor differ */
  constructor(message: string) {
    super(message);
    this.name = "IncompatibleModelsError";
  }
}

/** A user-supplied data file (router prompts, evaluation sets) is malformed or empty. */
export class DataFormatError extends Error {
  /** @param message which file and line, what is wrong, and how to fix it */
  constructor(message: string) {
    super(message);
    this.name = "DataFormatError";
  }
}
