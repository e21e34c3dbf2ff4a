/**
 * The router's bytes inside a bundle.
 *
 * Layout (all integers little-endian):
 *   [0, 8)        magic "MDROUTER"
 *   [8, 12)       u32 header length H
 *   [12, 12 + H)  JSON header, UTF-8, padded with spaces to a multiple of 4 bytes
 *   [12 + H, end) f32 values of the tensors listed in header.tensors, in order
 *
 * The header holds the classifier kind and sizes, expert names, router_layer,
 * the selection defaults (temperature, u_low, top_m, min_confidence) and the
 * training report; the tensors are the standardisation (mean, std) and each
 * dense layer's weight [out, in] and bias [out].
 */
import { BundleFormatError } from "../errors.ts";
import { type ClassifierParams, layerShapes } from "./classifier.ts";
import { parseReport, reportToJson } from "./report_json.ts";
import { Router } from "./router.ts";

const MAGIC = "MDROUTER";
const PREFIX = 12;
/** Version written into, and accepted from, the header. */
export const ROUTER_FORMAT_VERSION = 1;

interface TensorEntry {
  name: string;
  shape: number[];
}

/** The tensors a classifier of this shape stores, in file order. */
function expectedTensors(kind: ClassifierParams["kind"], D: number, H: number, T: number) {
  const list: TensorEntry[] = [{ name: "mean", shape: [D] }, { name: "std", shape: [D] }];
  layerShapes(kind, D, H, T).forEach(([inSize, outSize], l) => {
    list.push({ name: `layers.${l}.weight`, shape: [outSize, inSize] });
    list.push({ name: `layers.${l}.bias`, shape: [outSize] });
  });
  return list;
}

/** Serialise a router (classifier, names, layer, selection defaults, report). */
export function encodeRouter(router: Router): Uint8Array {
  const p = router.params, s = router.selection;
  const arrays = [p.mean, p.std, ...p.layers.flatMap((l) => [l.weight, l.bias])];
  const header = {
    format: "mediator-router",
    version: ROUTER_FORMAT_VERSION,
    kind: p.kind,
    activation: "gelu_tanh",
    input_size: p.inputSize,
    hidden_size: p.hiddenSize,
    num_classes: p.numClasses,
    expert_names: router.expertNames,
    router_layer: router.routerLayer,
    temperature: s.temperature,
    u_low: s.uLow,
    top_m: s.topM,
    min_confidence: s.minConfidence ?? null,
    tensors: expectedTensors(p.kind, p.inputSize, p.hiddenSize, p.numClasses),
    report: router.report ? reportToJson(router.report) : null,
  };
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil((PREFIX + json.length) / 4) * 4 - PREFIX;
  if (padded !== json.length) {
    const grown = new Uint8Array(padded).fill(0x20);
    grown.set(json);
    json = grown;
  }
  const values = arrays.reduce((n, a) => n + a.length, 0);
  const out = new Uint8Array(PREFIX + json.length + values * 4);
  const view = new DataView(out.buffer);
  out.set(new TextEncoder().encode(MAGIC), 0);
  view.setUint32(8, json.length, true);
  out.set(json, PREFIX);
  let pos = PREFIX + json.length;
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++, pos += 4) view.setFloat32(pos, a[i], true);
  }
  return out;
}

type Json = Record<string, unknown>;

function field<T>(
  h: Json,
  key: string,
  ok: (v: unknown) => boolean,
  want: string,
  where: string,
): T {
  const v = h[key];
  if (!ok(v)) {
    throw new BundleFormatError(
      `Cannot read the router from ${where}: header field '${key}' must be ${want}, got ${
        JSON.stringify(v)
      }; the file is corrupt, rebuild the bundle`,
    );
  }
  return v as T;
}

const isCount = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
const isNum = (v: unknown) => typeof v === "number" && Number.isFinite(v);

/**
 * Read a router written by `encodeRouter`. `where` names the file in errors.
 * Throws BundleFormatError when the bytes are not a router, are truncated, or
 * disagree with their header.
 */
export function decodeRouter(bytes: Uint8Array, where = "router"): Router {
  const fail = (why: string) =>
    new BundleFormatError(
      `Cannot read the router from ${where}: ${why}; the file is corrupt, rebuild the bundle`,
    );
  if (bytes.length < PREFIX) throw fail(`${bytes.length} bytes is shorter than the 12-byte prefix`);
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== MAGIC) throw fail(`the file does not start with "${MAGIC}"`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(8, true);
  if (headerLength > bytes.length - PREFIX) {
    throw fail(`the header claims ${headerLength} bytes but only ${bytes.length - PREFIX} follow`);
  }
  let h: Json;
  try {
    h = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(
      bytes.subarray(PREFIX, PREFIX + headerLength),
    ));
  } catch (e) {
    throw fail(`the header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof h !== "object" || h === null || Array.isArray(h)) {
    throw fail("the header is not a JSON object");
  }
  if (h.version !== ROUTER_FORMAT_VERSION) {
    throw fail(`format version ${JSON.stringify(h.version)} is not ${ROUTER_FORMAT_VERSION}`);
  }
  const kind = field<ClassifierParams["kind"]>(
    h,
    "kind",
    (v) => v === "mlp" || v === "logreg",
    '"mlp" or "logreg"',
    where,
  );
  const D = field<number>(h, "input_size", isCount, "a count", where);
  const H = field<number>(h, "hidden_size", isCount, "a count", where);
  const T = field<number>(h, "num_classes", isCount, "a count", where);
  const names = field<string[]>(
    h,
    "expert_names",
    (v) => Array.isArray(v) && v.every((n) => typeof n === "string"),
    "a list of strings",
    where,
  );
  const routerLayer = field<number>(h, "router_layer", isCount, "a count", where);
  const temperature = field<number>(h, "temperature", isNum, "a number", where);
  const uLow = field<number>(h, "u_low", isNum, "a number", where);
  const topM = field<number>(h, "top_m", isCount, "a count", where);
  const minConfidence = field<number | null>(
    h,
    "min_confidence",
    (v) => v === null || isNum(v),
    "a number or null",
    where,
  );

  const expected = expectedTensors(kind, D, H, T);
  const listed = JSON.stringify(h.tensors);
  if (listed !== JSON.stringify(expected)) {
    throw fail(`header.tensors ${listed} does not match a ${kind} of sizes ${D}/${H}/${T}`);
  }
  const values = expected.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  const dataBytes = bytes.length - PREFIX - headerLength;
  if (dataBytes !== values * 4) {
    throw fail(`the weights take ${dataBytes} bytes but the header describes ${values * 4}`);
  }
  let pos = PREFIX + headerLength;
  const take = (t: TensorEntry) => {
    const a = new Float32Array(t.shape.reduce((x, y) => x * y, 1));
    for (let i = 0; i < a.length; i++, pos += 4) {
      a[i] = view.getFloat32(pos, true);
      if (!Number.isFinite(a[i])) throw fail(`value ${i} of tensor '${t.name}' is ${a[i]}`);
    }
    return a;
  };
  const mean = take(expected[0]), std = take(expected[1]);
  const bad = std.findIndex((v) => !(v > 0));
  if (bad >= 0) throw fail(`std[${bad}] is ${std[bad]}, not > 0`);
  const layers = layerShapes(kind, D, H, T).map(([inSize, outSize], l) => ({
    inSize,
    outSize,
    weight: take(expected[2 + 2 * l]),
    bias: take(expected[3 + 2 * l]),
  }));
  const params: ClassifierParams = {
    kind,
    inputSize: D,
    hiddenSize: H,
    numClasses: T,
    mean,
    std,
    layers,
  };
  const report = h.report === null || h.report === undefined
    ? undefined
    : parseReport(h.report, (why) => fail(`report: ${why}`));
  try {
    return new Router(params, {
      expertNames: names,
      routerLayer,
      selection: { temperature, uLow, topM, minConfidence: minConfidence ?? undefined },
      report,
    });
  } catch (e) {
    if (e instanceof RangeError) throw fail(e.message.replace(/^Cannot build the router: /, ""));
    throw e;
  }
}
