/**
 * The Mediator bundle manifest (`manifest.json`, format version 1).
 *
 * A bundle folder is also a loadable Hugging Face checkpoint of the merged
 * dense model (averaged units + the dense expert of every routed unit):
 *
 *   manifest.json            this record
 *   config.json              the model's config (copied from the base)
 *   tokenizer.json, tokenizer_config.json (+ generation_config.json)
 *   model.safetensors        dense weights
 *   experts/<name>.bin       sparse expert of one task: one contiguous block per
 *                            routed unit (one Range request fetches it)
 *   router.bin               the router (src/router/serialize.ts)
 *   report.json, report.html the conflict report
 *
 * Every file has a sha256 and size; every tensor of model.safetensors and
 * every (unit, expert) block has its own sha256, so a lazy reader can verify
 * exactly the bytes it fetched.
 */
import { BundleFormatError } from "../errors.ts";
import { checkRelativePath } from "../storage/storage.ts";

/** Current format version; readers refuse other major versions. */
export const BUNDLE_FORMAT_VERSION = 1;

/** A file of the bundle with its integrity data. */
export interface FileEntry {
  path: string;
  size: number;
  sha256: string;
}

/** One sparse tensor inside a (unit, expert) block. */
export interface SparseTensorEntry {
  /** Hugging Face tensor name. */
  name: string;
  shape: [number, number];
  /** Byte offset inside the block. */
  offset: number;
  length: number;
  nnz: number;
  /** Share of non-zeros. */
  density: number;
  /** "bitmap" or "indices" (src/merge/sparse_codec.ts). */
  encoding: string;
}

/** The block of one routed unit in one expert's file. */
export interface SparseBlockEntry {
  unit: string;
  /** Absolute byte offset in the expert file. */
  offset: number;
  length: number;
  sha256: string;
  /** Relative reconstruction error ||E - (D + S)|| / ||E - D|| over the unit. */
  error: number;
  density: number;
  tensors: SparseTensorEntry[];
}

/** One task expert. */
export interface ExpertEntry {
  name: string;
  /** Path of its sparse file. */
  file: string;
  blocks: SparseBlockEntry[];
}

/** A unit of the model and what the plan did with it. */
export interface UnitEntry {
  /** "embed" | "layer.<i>" | "final_norm" | "lm_head". */
  name: string;
  kind: "averaged" | "routed";
  /** Trimmed sign-conflict share d_l. */
  conflict: number;
  /** Mean pairwise cosine of the task vectors. */
  cosine: number;
  /** Mean relative averaging loss. */
  averagingLoss: number;
  /** Why the plan chose this kind. */
  reason: string;
}

/** Routing defaults stored with the bundle (MEDIATOR.md §5). */
export interface RoutingSettings {
  routerLayer: number;
  temperature: number;
  uLow: number;
  topM: number;
  minConfidence: number | null;
}

/** The whole manifest. */
export interface BundleManifest {
  format: "mediator-bundle";
  version: number;
  name: string;
  createdBy: string;
  /** Model config (copy of config.json). */
  modelConfig: Record<string, unknown>;
  files: FileEntry[];
  /** The dense weights file; tensor offsets/hashes are listed here too. */
  dense: {
    file: string;
    tensors: {
      name: string;
      dtype: string;
      shape: number[];
      offset: number;
      length: number;
      sha256: string;
    }[];
  };
  units: UnitEntry[];
  experts: ExpertEntry[];
  router: { file: string; heldOutAccuracy: number | null };
  routing: RoutingSettings;
  /** The merge settings that produced the bundle (policy, method, budget, densities...). */
  merge: Record<string, unknown>;
}

function fail(what: string): never {
  throw new BundleFormatError(
    `Cannot read manifest.json: ${what}; the bundle is corrupt or from another tool, rebuild it with 'deno task merge'`,
  );
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === "number" && Number.isInteger(x) && x >= 0;
}

/**
 * Validate a parsed manifest: version, every path relative and inside the
 * bundle, offsets and lengths well formed, blocks inside their files.
 */
export function validateManifest(json: unknown): BundleManifest {
  if (typeof json !== "object" || json === null) fail("expected a JSON object");
  const m = json as BundleManifest;
  if (m.format !== "mediator-bundle") {
    fail(`'format' is ${JSON.stringify(m.format)}, expected "mediator-bundle"`);
  }
  if (m.version !== BUNDLE_FORMAT_VERSION) {
    fail(
      `format version ${m.version} is not supported (this reader knows version ${BUNDLE_FORMAT_VERSION})`,
    );
  }
  if (!Array.isArray(m.files) || !Array.isArray(m.units) || !Array.isArray(m.experts)) {
    fail("'files', 'units' and 'experts' must be arrays");
  }
  const sizes = new Map<string, number>();
  for (const f of m.files) {
    checkRelativePath(f.path, "manifest file path");
    if (!isNonNegInt(f.size) || typeof f.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(f.sha256)) {
      fail(`file entry '${f.path}' needs a size and a sha256`);
    }
    sizes.set(f.path, f.size);
  }
  const inFile = (file: string, offset: number, length: number, what: string) => {
    checkRelativePath(file, what);
    const size = sizes.get(file);
    if (size === undefined) fail(`${what} refers to '${file}', which is not listed in 'files'`);
    if (!isNonNegInt(offset) || !isNonNegInt(length) || offset + length > size) {
      fail(`${what} spans bytes ${offset}+${length}, outside '${file}' (${size} bytes)`);
    }
  };
  for (const t of m.dense?.tensors ?? fail("'dense' is missing")) {
    inFile(m.dense.file, t.offset, t.length, `dense tensor '${t.name}'`);
  }
  const unitNames = new Set(m.units.map((u) => u.name));
  for (const e of m.experts) {
    if (typeof e.name !== "string" || !/^[A-Za-z0-9_.-]+$/.test(e.name)) {
      fail(`expert name ${JSON.stringify(e.name)} must use letters, digits, '_', '.', '-'`);
    }
    for (const b of e.blocks) {
      inFile(e.file, b.offset, b.length, `block '${b.unit}' of expert '${e.name}'`);
      if (!unitNames.has(b.unit)) {
        fail(`expert '${e.name}' has a block for unknown unit '${b.unit}'`);
      }
      let end = 0;
      for (const t of b.tensors) {
        if (
          !isNonNegInt(t.offset) || !isNonNegInt(t.length) || t.offset < end ||
          t.offset + t.length > b.length
        ) {
          fail(
            `tensor '${t.name}' of block '${b.unit}' of expert '${e.name}' lies outside its block`,
          );
        }
        end = t.offset + t.length;
      }
    }
  }
  if (m.router?.file) checkRelativePath(m.router.file, "router file");
  return m;
}

/** Names of the routed units, in model order. */
export function routedUnits(m: BundleManifest): string[] {
  return m.units.filter((u) => u.kind === "routed").map((u) => u.name);
}
