// matmul_gemm.wgsl: out[m, rows] = x[m, cols] @ W^T (+ bias) (+ out with ACCUMULATE), tiled,
// any shape (prefill).
//
// Bindings (group 0):
//   0 params  uniform  Params below
//   1 w       storage read        array<u32>  one row chunk of W, row-major, stride_w u32 words
//                                  per row: f32 bits, or 16-bit values packed 2 per u32
//   2 x       storage read        array<f32>  x[m, cols] row-major
//   3 out     storage read_write  array<f32>  out[m, out_stride]; this chunk writes columns
//                                  [row_base, row_base + rows)
//   4 bias    storage read        array<f32>  bias[out_stride] (read when has_bias != 0)
// Layout: workgroup 16 x 16 threads computes a 64 (activation rows) x 64 (weight rows) tile of
// out, 4 x 4 per thread, stepping through cols 16 at a time with both tiles staged in
// workgroup memory (transposed to [k][row] so the inner loop reads contiguous values).
// Grid: x = ceil(rows / 64), y = ceil(m / 64).

override DTYPE: u32 = 1u; // 0 = f32, 1 = bf16, 2 = f16
override ACCUMULATE: bool = false; // out += result instead of out = result

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

struct Params {
  rows: u32,
  cols: u32,
  stride_w: u32,   // u32 words per weight row
  m: u32,
  out_stride: u32,
  row_base: u32,
  has_bias: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

var<workgroup> xs: array<f32, 1024>; // [BK][BM]
var<workgroup> ws: array<f32, 1024>; // [BK][BN]

fn weight_at(r: u32, c: u32) -> f32 {
  if (DTYPE == DTYPE_F32) {
    return bitcast<f32>(w[r * p.stride_w + c]);
  }
  let word = w[r * p.stride_w + (c >> 1u)];
  return unpack_16x2(word, DTYPE)[c & 1u];
}

@compute @workgroup_size(16, 16)
fn main(
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
) {
  let n0 = wid.x * BN;
  let m0 = wid.y * BM;
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < p.cols; k0 = k0 + BK) {
    for (var i = 0u; i < 4u; i = i + 1u) {
      let idx = li + i * 256u;
      let r = idx / BK;
      let kk = idx % BK;
      let k = k0 + kk;
      var xv = 0.0;
      if (m0 + r < p.m && k < p.cols) {
        xv = x[(m0 + r) * p.cols + k];
      }
      xs[kk * BM + r] = xv;
      var wv = 0.0;
      if (n0 + r < p.rows && k < p.cols) {
        wv = weight_at(n0 + r, k);
      }
      ws[kk * BN + r] = wv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk = kk + 1u) {
      let a = vec4<f32>(
        xs[kk * BM + lid.y * 4u],
        xs[kk * BM + lid.y * 4u + 1u],
        xs[kk * BM + lid.y * 4u + 2u],
        xs[kk * BM + lid.y * 4u + 3u],
      );
      let b = vec4<f32>(
        ws[kk * BN + lid.x * 4u],
        ws[kk * BN + lid.x * 4u + 1u],
        ws[kk * BN + lid.x * 4u + 2u],
        ws[kk * BN + lid.x * 4u + 3u],
      );
      acc[0] = acc[0] + a.x * b;
      acc[1] = acc[1] + a.y * b;
      acc[2] = acc[2] + a.z * b;
      acc[3] = acc[3] + a.w * b;
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i = i + 1u) {
    let mi = m0 + lid.y * 4u + i;
    if (mi >= p.m) {
      break;
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
      let n = n0 + lid.x * 4u + j;
      if (n < p.rows) {
        let col = p.row_base + n;
        var r = acc[i][j];
        if (p.has_bias != 0u) {
          r = r + bias[col];
        }
        if (ACCUMULATE) {
          out[mi * p.out_stride + col] = out[mi * p.out_stride + col] + r;
        } else {
          out[mi * p.out_stride + col] = r;
        }
      }
    }
  }
}
