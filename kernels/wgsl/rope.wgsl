// rope.wgsl: rotary position embedding in place, Hugging Face rotate-half convention.
// For row i at position pos = positions[i], each head h and j < half = head_dim / 2:
//   x1 = x[i, h, j], x2 = x[i, h, j + half], (c, s) = (cos, sin)(pos * theta^(-2j / head_dim))
//   x[i, h, j] = x1 * c - x2 * s;  x[i, h, j + half] = x2 * c + x1 * s
//
// Bindings (group 0):
//   0 params     uniform             Params below
//   1 x          storage read_write  array<f32>  x[m, num_heads * head_dim]
//   2 positions  storage read        array<i32>  positions[m]
//   3 table      storage read        array<vec2<f32>>  (cos, sin) at [pos * half + j],
//                                     computed on the host in double precision
// Layout: one thread per (row, head, j) rotation pair, workgroup 256, 2-D grid (x fastest).

struct Params {
  m: u32,
  num_heads: u32,
  head_dim: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> positions: array<i32>;
@group(0) @binding(3) var<storage, read> table: array<vec2<f32>>;

@compute @workgroup_size(256)
fn main(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let half = p.head_dim / 2u;
  let idx = linear_workgroup(wid, nwg) * 256u + lid;
  let per_row = p.num_heads * half;
  if (idx >= p.m * per_row) {
    return;
  }
  let i = idx / per_row;
  let rest = idx % per_row;
  let h = rest / half;
  let j = rest % half;
  let cs = table[u32(positions[i]) * half + j];
  let base = i * p.num_heads * p.head_dim + h * p.head_dim + j;
  let x1 = x[base];
  let x2 = x[base + half];
  x[base] = x1 * cs.x - x2 * cs.y;
  x[base + half] = x2 * cs.x + x1 * cs.y;
}
