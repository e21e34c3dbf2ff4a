/**
 * A minimal protobuf writer that builds an ONNX model in memory: `count` independent MatMul
 * nodes y_i = x @ B_i with f32 initializers B_i [cols, rows] (ONNX MatMul takes B as
 * [K, N], i.e. the transpose of a Hugging Face Linear weight). Used to run
 * onnxruntime-web's wasm MatMul on the same shapes as the WASM kernels.
 */

/** Growable byte buffer with the protobuf wire encodings this model needs. */
export class ProtoWriter {
  #buf = new Uint8Array(1024);
  #len = 0;

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  varint(value: number): this {
    this.#reserve(10);
    let v = value;
    while (v >= 0x80) {
      this.#buf[this.#len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.#buf[this.#len++] = v;
    return this;
  }

  bytes(data: Uint8Array): this {
    this.#reserve(data.length);
    this.#buf.set(data, this.#len);
    this.#len += data.length;
    return this;
  }

  /** Field `field` as a varint. */
  int(field: number, value: number): this {
    return this.varint(field << 3).varint(value);
  }

  /** Field `field` as length-delimited bytes. */
  blob(field: number, data: Uint8Array): this {
    return this.varint((field << 3) | 2).varint(data.length).bytes(data);
  }

  str(field: number, text: string): this {
    return this.blob(field, new TextEncoder().encode(text));
  }

  /** Field `field` as a nested message. */
  msg(field: number, build: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    build(inner);
    return this.blob(field, inner.finish());
  }

  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

const FLOAT = 1;

function valueInfo(w: ProtoWriter, name: string, dims: number[]): void {
  w.str(1, name).msg(2, (type) =>
    type.msg(1, (tensor) => {
      tensor.int(1, FLOAT).msg(2, (shape) => {
        for (const d of dims) shape.msg(1, (dim) => dim.int(1, d));
      });
    }));
}

/**
 * ONNX model bytes: input "x" [m, cols]; outputs "y0".."y{count-1}" [m, rows];
 * `weightT(i)` returns B_i as f32 [cols, rows] row-major.
 */
export function buildMatMulModel(
  m: number,
  rows: number,
  cols: number,
  count: number,
  weightT: (i: number) => Float32Array,
): Uint8Array {
  const model = new ProtoWriter();
  model.int(1, 8); // ir_version
  model.msg(8, (op) => op.str(1, "").int(2, 13)); // opset_import: default domain, opset 13
  model.msg(7, (graph) => {
    for (let i = 0; i < count; i++) {
      graph.msg(1, (node) => node.str(1, "x").str(1, `b${i}`).str(2, `y${i}`).str(4, "MatMul"));
    }
    graph.str(2, "matmul_bench");
    for (let i = 0; i < count; i++) {
      const data = weightT(i);
      graph.msg(5, (t) => {
        t.int(1, cols).int(1, rows).int(2, FLOAT).str(8, `b${i}`);
        t.blob(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      });
    }
    graph.msg(11, (vi) => valueInfo(vi, "x", [m, cols]));
    for (let i = 0; i < count; i++) graph.msg(12, (vi) => valueInfo(vi, `y${i}`, [m, rows]));
  });
  return model.finish();
}
