/**
 * Merge units: the granularity at which conflict is measured and routing is
 * decided. A unit is one transformer block ("layer.<i>", all tensors under
 * model.layers.<i>.), the token embedding ("embed"), the final norm
 * ("final_norm") or the output head ("lm_head"), following the Hugging Face
 * Llama-family tensor names.
 */
import { BundleFormatError } from "../errors.ts";

/** A unit name: "embed", "layer.<i>", "final_norm" or "lm_head". */
export type UnitId = string;

/** The parsed form of a unit name. */
export interface UnitInfo {
  readonly kind: "embed" | "layer" | "final_norm" | "lm_head";
  /** Block index for kind "layer"; -1 otherwise. */
  readonly index: number;
}

const LAYER_TENSOR = /^model\.layers\.(0|[1-9][0-9]*)\.[^.].*$/;
const LAYER_UNIT = /^layer\.(0|[1-9][0-9]*)$/;

/**
 * The unit a tensor belongs to, from its Hugging Face name. Throws
 * BundleFormatError for names outside the Llama layout.
 */
export function unitOfTensor(name: string): UnitId {
  if (name.startsWith("model.embed_tokens.")) return "embed";
  if (name.startsWith("model.norm.")) return "final_norm";
  if (name.startsWith("lm_head.")) return "lm_head";
  const m = LAYER_TENSOR.exec(name);
  if (m) return `layer.${m[1]}`;
  throw new BundleFormatError(
    `Cannot map tensor '${name}' to a merge unit: expected model.embed_tokens.*, ` +
      `model.layers.<i>.*, model.norm.* or lm_head.*; check that the checkpoint is a ` +
      `Llama-family model with Hugging Face tensor names`,
  );
}

/** Parse a unit name; throws RangeError for anything else. */
export function parseUnit(unit: UnitId): UnitInfo {
  if (unit === "embed" || unit === "final_norm" || unit === "lm_head") {
    return { kind: unit, index: -1 };
  }
  const m = LAYER_UNIT.exec(unit);
  if (m) return { kind: "layer", index: Number(m[1]) };
  throw new RangeError(
    `Cannot parse merge unit '${unit}': use embed, layer.<i>, final_norm or lm_head`,
  );
}

const KIND_ORDER = { embed: 0, layer: 1, final_norm: 2, lm_head: 3 } as const;

/** Order of units in a model: embed, layer.0, layer.1, ..., final_norm, lm_head. */
export function compareUnits(a: UnitId, b: UnitId): number {
  const pa = parseUnit(a);
  const pb = parseUnit(b);
  return KIND_ORDER[pa.kind] - KIND_ORDER[pb.kind] || pa.index - pb.index;
}

/**
 * Group tensor names by unit, units in model order and tensor names in their
 * given order within each unit. Throws BundleFormatError on unknown names.
 */
export function groupTensorsByUnit(names: Iterable<string>): Map<UnitId, string[]> {
  const groups = new Map<UnitId, string[]>();
  for (const name of names) {
    const unit = unitOfTensor(name);
    const list = groups.get(unit);
    if (list) list.push(name);
    else groups.set(unit, [name]);
  }
  return new Map([...groups].sort(([a], [b]) => compareUnits(a, b)));
}
