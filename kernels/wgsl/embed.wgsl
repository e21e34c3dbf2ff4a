// embed.wgsl: out[i, :] = table[ids[i], :] decoded to f32, for i < m.
//
// Bindings (group 0):
//   0 params  uniform             Params below
//   1 table   storage read        array<u32>  one row chunk of the table, rows of stride_w u32
//                                  words: f32 bits, or 16-bit values packed 2 per u32
//   2 ids     storage read        array<i32>  ids[m] (token ids, validated on the host)
//   3 out     storage read_write  array<f32>  out[m, cols]
// Layout: one thread per output element, workgroup 256, 2-D grid (x fastest). A table split
// into row chunks runs once per chunk; each run writes only the rows whose id falls in
// [row_base, row_base + rows).

override DTYPE: u32 = 1u; // 0 = f32, 1 = bf16, 2 = f16

struct Params {
  cols: u32,
  stride_w: u32,
  m: u32,
  row_base: u32,
  rows: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<u32>;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let idx = linear_workgroup(wid, nwg) * 256u + lid;
  if (idx >= p.m * p.cols) {
    return;
  }
  let i = idx / p.cols;
  let c = idx % p.cols;
  let r = u32(ids[i]) - p.row_base; // wraps to a huge value below row_base
  if (r >= p.rows) {
    return;
  }
  var v: f32;
  if (DTYPE == DTYPE_F32) {
    v = bitcast<f32>(table[r * p.stride_w + c]);
  } else {
    let word = table[r * p.stride_w + (c >> 1u)];
    v = half_bits_to_f32((word >> ((c & 1u) * 16u)) & 0xffffu, DTYPE);
  }
  out[idx] = v;
}
