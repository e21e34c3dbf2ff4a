/** Argument checks shared by the WASM backend's ops (RangeError with "Cannot X: why"). */
import type { WasmKvCache } from "./wasm_resources.ts";

/** Throws RangeError(message()) unless `ok`. */
export function need(ok: boolean, message: () => string): void {
  if (!ok) throw new RangeError(message());
}

/** Requires an integer `value` >= `min` for argument `name` of `op`. */
export function needInt(op: string, name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(`Cannot run ${op}: ${name} = ${value}, expected an integer >= ${min}`);
  }
}

/** Checks layer / row window / positions of a cache access. */
export function checkKvArgs(
  op: string,
  cache: WasmKvCache,
  layer: number,
  rowOffset: number,
  m: number,
  startPos: number,
): void {
  needInt(op, "layer", layer, 0);
  needInt(op, "rowOffset", rowOffset, 0);
  needInt(op, "m", m, 0);
  needInt(op, "startPos", startPos, 0);
  need(
    layer < cache.numLayers,
    () => `Cannot run ${op}: layer ${layer} is outside the cache's ${cache.numLayers} layers`,
  );
  need(
    startPos + m <= cache.maxSeq,
    () =>
      `Cannot run ${op}: positions up to ${
        startPos + m
      } exceed the cache's maxSeq ${cache.maxSeq}; ` +
      "allocate a longer cache",
  );
}
