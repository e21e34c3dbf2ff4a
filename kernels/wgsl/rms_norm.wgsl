// rms_norm.wgsl: out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * gamma, for r < m.
//
// Bindings (group 0):
//   0 params  uniform             Params below
//   1 x       storage read_write  array<f32>  x[m, cols] (read_write so that out may alias x)
//   2 gamma   storage read        array<f32>  gamma[cols]
//   3 out     storage read_write  array<f32>  out[m, cols]
// Layout: one workgroup of 256 threads per row (2-D grid, x fastest); each thread sums the
// squares of a strided slice of the row, a tree in workgroup memory reduces them, then each
// thread scales its slice.

struct Params {
  cols: u32,
  m: u32,
  eps: f32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> sums: array<f32, 256>;

@compute @workgroup_size(256)
fn main(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let row = linear_workgroup(wid, nwg);
  // row is uniform across the workgroup, so the early exit keeps barriers uniform.
  if (row >= p.m) {
    return;
  }
  let base = row * p.cols;
  var s = 0.0;
  for (var c = lid; c < p.cols; c = c + 256u) {
    let v = x[base + c];
    s = s + v * v;
  }
  sums[lid] = s;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k = k >> 1u) {
    if (lid < k) {
      sums[lid] = sums[lid] + sums[lid + k];
    }
    workgroupBarrier();
  }
  let inv = inverseSqrt(sums[0] / f32(p.cols) + p.eps);
  for (var c = lid; c < p.cols; c = c + 256u) {
    out[base + c] = x[base + c] * inv * gamma[c];
  }
}
