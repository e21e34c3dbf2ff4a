// matmul_gemv.wgsl: out[m, rows] = x[m, cols] @ W^T (+ bias) (+ out with ACCUMULATE) for a few
// activation rows (decode); with GATED, silu(gate) * x in place of x; with NORM, rms_norm(x).
//
// Bindings (group 0):
//   0 params  uniform  Params below
//   1 w       storage read        array<vec4<u32>>  one row chunk of W, row-major, rows of
//                                  stride_v vec4 words: 8 bf16/f16 (packed 2 per u32) or 4 f32
//   2 x       storage read        array<vec4<f32>>  x[m, cols] row-major (cols % 4 == 0)
//   3 out     storage read_write  array<f32>        out[m, out_stride]; this chunk writes
//                                  columns [row_base, row_base + rows)
//   4 bias    storage read        array<f32>        bias[out_stride] (read when has_bias != 0)
//   5 s0      storage read        array<u32>  S0 != 0: the first fused sparse delta, one chunk
//                                  laid out as in sparse_matmul_add.wgsl
//   6 s1      storage read        array<u32>  S1 != 0: the second fused sparse delta
//   7 gate    storage read        array<vec4<f32>>  GATED: gate[m, cols]; the product then
//                                  takes silu(gate) * x in place of x (the gated MLP's down
//                                  projection reads silu(gate) * up without a launch of its own)
//   8 norm_gamma storage read     array<vec4<f32>>  NORM: gamma[cols]; the product then takes
//                                  x / rms(x) * gamma in place of x (the blocks' pre-norm): each
//                                  workgroup first reduces the sum of squares of its TM rows
// Layout: one workgroup of 256 threads handles 256 / THREADS_PER_ROW weight rows; the threads
// of a row read consecutive vec4 words (coalesced along cols), UNROLL words per iteration,
// accumulate TM activation rows at once (each weight word is loaded once for all TM rows),
// then reduce with a tree in workgroup memory. With fused deltas (S0, S1), the same threads
// then stride over the row's non-zeros of each sparse delta S_k and add
// sk_scale * S_k[row, :] . x for the activation rows in [sk_row_offset, sk_row_offset + sk_m):
// the Mediator delta path of a route with one or two experts costs no extra launch. Grid: x/y = row groups (split over y past the per-dimension limit),
// z = blocks of TM activation rows starting at m_base.
// Requires cols % 8 == 0 for 16-bit weights and cols % 4 == 0 for f32 weights.

override DTYPE: u32 = 1u;            // 0 = f32, 1 = bf16, 2 = f16
override THREADS_PER_ROW: u32 = 64u; // power of two in [1, 256]
override TM: u32 = 1u;               // activation rows per workgroup, 1..4
override UNROLL: u32 = 1u;           // weight words loaded per thread per iteration: 1, 2 or 4
override ACCUMULATE: bool = false;  // out += result (a residual connection) instead of out =
override GATED: bool = false;        // input = silu(gate) * x, elementwise
override NORM: bool = false;         // input = x / sqrt(mean(x^2) + norm_eps) * gamma, row-wise
override S0: u32 = 0u;               // first fused delta's values: 0 = none, 1 = bf16, 2 = f16
override S0_WIDE: bool = false;      // its entries are bare columns (cols > 65536)
override S1: u32 = 0u;               // second fused delta (needs S0)
override S1_WIDE: bool = false;

const WG: u32 = 256u;
const MAX_TM: u32 = 4u;

struct Params {
  rows: u32,       // weight rows in this chunk
  cols: u32,       // input features
  stride_v: u32,   // vec4 words per weight row
  m_base: u32,     // first activation row of this dispatch
  out_stride: u32, // columns of out (all chunks)
  row_base: u32,   // first output column of this chunk
  has_bias: u32,
  s0_row_offset: u32, // first activation row the first fused delta applies to
  s0_m: u32,          // activation rows it applies to
  s0_scale: f32,
  s1_row_offset: u32,
  s1_m: u32,
  s1_scale: f32,
  norm_eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> s0: array<u32>;
@group(0) @binding(6) var<storage, read> s1: array<u32>;
@group(0) @binding(7) var<storage, read> gate: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> norm_gamma: array<vec4<f32>>;

var<workgroup> partial: array<f32, 1024>; // WG * MAX_TM
var<workgroup> inv_rms: array<f32, 4>;     // NORM: 1 / rms of each of the TM activation rows

// acc[t] += (weight word wv, i.e. 8 bf16/f16 or 4 f32 values at vec4 word v) . x[m0 + t].
// Input word i (column word c of activation row t of this workgroup): x[i], times silu(gate[i])
// when GATED (the expression of silu_mul.wgsl), normalised when NORM (as rms_norm.wgsl).
fn input4(t: u32, i: u32, c: u32) -> vec4<f32> {
  var v = x[i];
  if (GATED) {
    let g = gate[i];
    v = g / (1.0 + exp(-g)) * v;
  }
  if (NORM) {
    v = v * inv_rms[t] * norm_gamma[c];
  }
  return v;
}

// NORM: inv_rms[t] for the TM activation rows from m0 (every thread of the workgroup calls it).
fn reduce_inv_rms(lid: u32, m0: u32, xs: u32) {
  for (var t = 0u; t < TM; t = t + 1u) {
    var s = 0.0;
    for (var c = lid; c < xs; c = c + WG) {
      let v = x[(m0 + t) * xs + c];
      s = s + dot(v, v);
    }
    partial[t * WG + lid] = s;
  }
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k >> 1u) {
    if (lid < k) {
      for (var t = 0u; t < TM; t = t + 1u) {
        partial[t * WG + lid] = partial[t * WG + lid] + partial[t * WG + lid + k];
      }
    }
    workgroupBarrier();
  }
  if (lid < TM) {
    inv_rms[lid] = inverseSqrt(partial[lid * WG] / f32(p.cols) + p.norm_eps);
  }
  workgroupBarrier();
}

fn accumulate(acc: ptr<function, array<f32, 4>>, wv: vec4<u32>, v: u32, m0: u32, xs: u32) {
  if (DTYPE == DTYPE_F32) {
    let wf = bitcast<vec4<f32>>(wv);
    for (var t = 0u; t < TM; t = t + 1u) {
      (*acc)[t] = (*acc)[t] + dot(wf, input4(t, (m0 + t) * xs + v, v));
    }
  } else {
    let w0 = vec4<f32>(unpack_16x2(wv.x, DTYPE), unpack_16x2(wv.y, DTYPE));
    let w1 = vec4<f32>(unpack_16x2(wv.z, DTYPE), unpack_16x2(wv.w, DTYPE));
    for (var t = 0u; t < TM; t = t + 1u) {
      let xi = (m0 + t) * xs + 2u * v;
      (*acc)[t] = (*acc)[t] + dot(w0, input4(t, xi, 2u * v)) + dot(w1, input4(t, xi + 1u, 2u * v + 1u));
    }
  }
}

// Word i of fused delta k's chunk.
fn s_word(k: u32, i: u32) -> u32 {
  if (k == 0u) {
    return s0[i];
  }
  return s1[i];
}

// acc[t] += scale * S_k[row, :] . x[m0 + t] for the rows t inside [row_offset, row_offset + m).
fn add_sparse_row(
  acc: ptr<function, array<f32, 4>>,
  k: u32,
  dtype: u32,
  wide: bool,
  row: u32,
  lane: u32,
  m0: u32,
  xs: u32,
  row_offset: u32,
  m: u32,
  scale: f32,
) {
  let base = p.rows + 1u;
  let end = s_word(k, row + 1u);
  for (var e = s_word(k, row) + lane; e < end; e = e + THREADS_PER_ROW) {
    var col: u32;
    var bits: u32;
    if (wide) {
      col = s_word(k, base + e);
      bits = (s_word(k, base + s_word(k, p.rows) + (e >> 1u)) >> ((e & 1u) * 16u)) & 0xffffu;
    } else {
      let packed = s_word(k, base + e);
      col = packed & 0xffffu;
      bits = packed >> 16u;
    }
    let value = scale * unpack_16x2(bits, dtype).x;
    for (var t = 0u; t < TM; t = t + 1u) {
      let a = m0 + t;
      if (a >= row_offset && a < row_offset + m) {
        (*acc)[t] = (*acc)[t] + value * input4(t, a * xs + (col >> 2u), col >> 2u)[col & 3u];
      }
    }
  }
}

@compute @workgroup_size(256)
fn main(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let rows_per_wg = WG / THREADS_PER_ROW;
  let local_row = lid / THREADS_PER_ROW;
  let lane = lid % THREADS_PER_ROW;
  let row = linear_workgroup(wid, nwg) * rows_per_wg + local_row;
  let m0 = p.m_base + wid.z * TM;
  let x_stride_v = p.cols / 4u;
  if (NORM) {
    reduce_inv_rms(lid, m0, x_stride_v);
  }

  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  if (row < p.rows) {
    let wbase = row * p.stride_v;
    var v = lane;
    // UNROLL words per thread per iteration: their loads are issued before any is used.
    if (UNROLL == 2u) {
      for (; v + THREADS_PER_ROW < p.stride_v; v = v + 2u * THREADS_PER_ROW) {
        let wa = w[wbase + v];
        let wb = w[wbase + v + THREADS_PER_ROW];
        accumulate(&acc, wa, v, m0, x_stride_v);
        accumulate(&acc, wb, v + THREADS_PER_ROW, m0, x_stride_v);
      }
    } else if (UNROLL == 4u) {
      for (; v + 3u * THREADS_PER_ROW < p.stride_v; v = v + 4u * THREADS_PER_ROW) {
        let wa = w[wbase + v];
        let wb = w[wbase + v + THREADS_PER_ROW];
        let wc = w[wbase + v + 2u * THREADS_PER_ROW];
        let wd = w[wbase + v + 3u * THREADS_PER_ROW];
        accumulate(&acc, wa, v, m0, x_stride_v);
        accumulate(&acc, wb, v + THREADS_PER_ROW, m0, x_stride_v);
        accumulate(&acc, wc, v + 2u * THREADS_PER_ROW, m0, x_stride_v);
        accumulate(&acc, wd, v + 3u * THREADS_PER_ROW, m0, x_stride_v);
      }
    }
    for (; v < p.stride_v; v = v + THREADS_PER_ROW) {
      accumulate(&acc, w[wbase + v], v, m0, x_stride_v);
    }
    if (S0 != 0u) {
      add_sparse_row(&acc, 0u, S0, S0_WIDE, row, lane, m0, x_stride_v, p.s0_row_offset, p.s0_m,
        p.s0_scale);
    }
    if (S1 != 0u) {
      add_sparse_row(&acc, 1u, S1, S1_WIDE, row, lane, m0, x_stride_v, p.s1_row_offset, p.s1_m,
        p.s1_scale);
    }
  }
  for (var t = 0u; t < TM; t = t + 1u) {
    partial[t * WG + lid] = acc[t];
  }
  workgroupBarrier();
  for (var s = THREADS_PER_ROW / 2u; s > 0u; s = s >> 1u) {
    if (lane < s) {
      for (var t = 0u; t < TM; t = t + 1u) {
        partial[t * WG + lid] = partial[t * WG + lid] + partial[t * WG + lid + s];
      }
    }
    workgroupBarrier();
  }
  if (row < p.rows && lane < TM) {
    var r = partial[lane * WG + local_row * THREADS_PER_ROW];
    let col = p.row_base + row;
    if (p.has_bias != 0u) {
      r = r + bias[col];
    }
    let o = (m0 + lane) * p.out_stride + col;
    if (ACCUMULATE) {
      r = r + out[o];
    }
    out[o] = r;
  }
}
