// scatter_add.wgsl: W += scale * S in place for the rows of one (weight chunk, sparse chunk)
// pair (the materialize path). S is CSR [rows, cols] with 16-bit values; W is f32, bf16 or
// f16. Each updated element is rounded back to W's dtype (round to nearest even).
//
// Bindings (group 0):
//   0 params   uniform             Params below
//   1 sp       storage read        array<u32>  one row chunk of S, laid out as in
//                                   sparse_matmul_add.wgsl (row_ptr, entries, WIDE values)
//   2 w        storage read_write  array<u32>  weight chunk, rows of stride_w u32 words (f32
//                                   bits, or 16-bit values packed 2 per u32; rows padded to a
//                                   whole word so that no word spans two rows)
// Layout: one workgroup of 64 threads per sparse row (2-D grid, x fastest); the threads stride
// over the row's non-zeros. For 16-bit W, two non-zeros in adjacent columns 2k, 2k+1 share a
// u32 word: the thread holding the even column updates both halves and the thread holding the
// odd one skips, so every word has exactly one writer (no atomics, no races).

override W_DTYPE: u32 = 1u;     // 0 = f32, 1 = bf16, 2 = f16
override VALUE_DTYPE: u32 = 1u; // 1 = bf16, 2 = f16
override WIDE: bool = false;

struct Params {
  rows: u32,        // rows processed by this dispatch
  sparse_row0: u32, // first of these rows, relative to the sparse chunk
  w_row0: u32,      // first of these rows, relative to the weight chunk
  stride_w: u32,
  scale: f32,
  chunk_rows: u32,  // rows of the sparse chunk (its entries start at word chunk_rows + 1)
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> sp: array<u32>;
@group(0) @binding(2) var<storage, read_write> w: array<u32>;

fn entry_col(e: u32) -> u32 {
  if (WIDE) {
    return sp[p.chunk_rows + 1u + e];
  }
  return sp[p.chunk_rows + 1u + e] & 0xffffu;
}

fn entry_value(e: u32) -> f32 {
  var bits: u32;
  let base = p.chunk_rows + 1u;
  if (WIDE) {
    bits = (sp[base + sp[p.chunk_rows] + (e >> 1u)] >> ((e & 1u) * 16u)) & 0xffffu;
  } else {
    bits = sp[base + e] >> 16u;
  }
  return half_bits_to_f32(bits, VALUE_DTYPE);
}

@compute @workgroup_size(64)
fn main(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let r = linear_workgroup(wid, nwg);
  if (r >= p.rows) {
    return;
  }
  let sr = p.sparse_row0 + r;
  let start = sp[sr];
  let end = sp[sr + 1u];
  let wrow = (p.w_row0 + r) * p.stride_w;
  for (var e = start + lid; e < end; e = e + 64u) {
    let col = entry_col(e);
    if (W_DTYPE == DTYPE_F32) {
      let i = wrow + col;
      w[i] = bitcast<u32>(bitcast<f32>(w[i]) + p.scale * entry_value(e));
      continue;
    }
    let odd = (col & 1u) == 1u;
    if (odd && e > start && entry_col(e - 1u) == col - 1u) {
      continue; // the even neighbour's thread owns this word
    }
    let i = wrow + (col >> 1u);
    let word = w[i];
    var lo = word & 0xffffu;
    var hi = word >> 16u;
    if (odd) {
      hi = f32_to_half_bits(half_bits_to_f32(hi, W_DTYPE) + p.scale * entry_value(e), W_DTYPE);
    } else {
      lo = f32_to_half_bits(half_bits_to_f32(lo, W_DTYPE) + p.scale * entry_value(e), W_DTYPE);
      if (e + 1u < end && entry_col(e + 1u) == col + 1u) {
        let v = half_bits_to_f32(hi, W_DTYPE) + p.scale * entry_value(e + 1u);
        hi = f32_to_half_bits(v, W_DTYPE);
      }
    }
    w[i] = lo | (hi << 16u);
  }
}
