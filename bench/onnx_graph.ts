/**
 * An ONNX graph assembled node by node and serialized with the protobuf writer of
 * onnx_matmul.ts. Large initializers can go to external data (one file per tensor, handed
 * to onnxruntime-web's `externalData` session option), which keeps the model proto small
 * (protobuf messages stop at 2 GB) and avoids copying weights into it.
 */
import { ProtoWriter } from "./onnx_matmul.ts";

/** ONNX TensorProto.DataType values used here. */
export const ONNX_FLOAT = 1;
/** ONNX int64 element type. */
export const ONNX_INT64 = 7;

/** A node attribute: an int, a list of ints, or a float. */
export type OnnxAttribute = number | number[] | { float: number };

/** One external data file: the name the model refers to and its bytes. */
export interface OnnxExternalFile {
  path: string;
  data: Uint8Array;
}

/** A serialized model and the external data files it refers to. */
export interface OnnxModelBytes {
  model: Uint8Array;
  externalData: OnnxExternalFile[];
}

function bytesOf(a: Float32Array | BigInt64Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Builds the nodes, initializers, inputs and outputs of one ONNX graph. */
export class OnnxGraph {
  #nodes: Uint8Array[] = [];
  #inits: Uint8Array[] = [];
  #inputs: Uint8Array[] = [];
  #outputs: Uint8Array[] = [];
  #external: OnnxExternalFile[] = [];
  #names = new Set<string>();
  #counter = 0;

  /**
   * @param externalMinBytes initializers of at least this many bytes go to external data
   *   files (Infinity: everything inline)
   */
  constructor(readonly externalMinBytes = Infinity) {}

  /** A fresh value name starting with `prefix`. */
  fresh(prefix: string): string {
    let name = `${prefix}_${this.#counter++}`;
    while (this.#names.has(name)) name = `${prefix}_${this.#counter++}`;
    this.#names.add(name);
    return name;
  }

  /**
   * Adds a node `op(inputs) -> outputs` and returns its first output. Empty `outputs`
   * makes one fresh output named after the op.
   */
  node(
    op: string,
    inputs: string[],
    attrs: Record<string, OnnxAttribute> = {},
    outputs: string[] = [],
  ): string {
    const outs = outputs.length ? outputs : [this.fresh(op.toLowerCase())];
    for (const o of outs) this.#names.add(o);
    const w = new ProtoWriter();
    for (const i of inputs) w.str(1, i);
    for (const o of outs) w.str(2, o);
    w.str(3, this.fresh(`n_${op}`)).str(4, op);
    for (const [name, value] of Object.entries(attrs)) {
      w.msg(5, (a) => {
        a.str(1, name);
        if (typeof value === "number") {
          if (!Number.isInteger(value) || value < 0) {
            throw new RangeError(
              `Cannot encode attribute '${name}' of ${op}: ${value} is not a non-negative integer`,
            );
          }
          a.int(3, value).int(20, 2);
        } else if (Array.isArray(value)) {
          for (const v of value) a.int(8, v);
          a.int(20, 7);
        } else {
          const f = new Uint8Array(new Float32Array([value.float]).buffer);
          a.varint((2 << 3) | 5).bytes(f).int(20, 1);
        }
      });
    }
    this.#nodes.push(w.finish());
    return outs[0];
  }

  /** Adds an initializer; returns its name. */
  init(name: string, dims: number[], data: Float32Array | BigInt64Array): string {
    const expected = dims.reduce((a, b) => a * b, 1);
    if (data.length !== expected) {
      throw new RangeError(
        `Cannot add initializer '${name}': ${data.length} values for shape [${dims}]`,
      );
    }
    this.#names.add(name);
    const type = data instanceof Float32Array ? ONNX_FLOAT : ONNX_INT64;
    const w = new ProtoWriter();
    for (const d of dims) w.int(1, d);
    w.int(2, type).str(8, name);
    if (data.byteLength >= this.externalMinBytes) {
      const path = `w${this.#external.length}.bin`;
      this.#external.push({ path, data: bytesOf(data) });
      const entry = (key: string, value: string) => (e: ProtoWriter) => e.str(1, key).str(2, value);
      w.msg(13, entry("location", path)).msg(13, entry("offset", "0"));
      w.msg(13, entry("length", String(data.byteLength))).int(14, 1);
    } else {
      w.blob(9, bytesOf(data));
    }
    this.#inits.push(w.finish());
    return name;
  }

  /** An f32 constant. */
  floats(prefix: string, dims: number[], values: number[]): string {
    return this.init(this.fresh(prefix), dims, Float32Array.from(values));
  }

  /** A 1-D int64 constant. */
  ints(prefix: string, values: number[]): string {
    return this.init(this.fresh(prefix), [values.length], BigInt64Array.from(values.map(BigInt)));
  }

  #valueInfo(name: string, elemType: number, dims: (number | string)[]): Uint8Array {
    const w = new ProtoWriter();
    w.str(1, name).msg(2, (type) =>
      type.msg(1, (tensor) => {
        tensor.int(1, elemType).msg(2, (shape) => {
          for (const d of dims) {
            shape.msg(1, (dim) => typeof d === "number" ? dim.int(1, d) : dim.str(2, d));
          }
        });
      }));
    return w.finish();
  }

  /** Declares a graph input; string dims are symbolic. */
  input(name: string, elemType: number, dims: (number | string)[]): string {
    this.#names.add(name);
    this.#inputs.push(this.#valueInfo(name, elemType, dims));
    return name;
  }

  /** Declares a graph output. */
  output(name: string, elemType: number, dims: (number | string)[]): void {
    this.#outputs.push(this.#valueInfo(name, elemType, dims));
  }

  /** Serializes the model (IR version 8, default domain at `opset`). */
  finish(graphName: string, opset: number): OnnxModelBytes {
    const model = new ProtoWriter();
    model.int(1, 8).str(2, "mediator-bench");
    model.msg(8, (op) => op.str(1, "").int(2, opset));
    model.msg(7, (g) => {
      for (const n of this.#nodes) g.blob(1, n);
      g.str(2, graphName);
      for (const t of this.#inits) g.blob(5, t);
      for (const v of this.#inputs) g.blob(11, v);
      for (const v of this.#outputs) g.blob(12, v);
    });
    return { model: model.finish(), externalData: this.#external };
  }
}
