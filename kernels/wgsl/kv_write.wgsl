// kv_write.wgsl: stores k/v rows [row_offset, row_offset + m) into one layer's KV cache at
// positions start_pos.., rotating the keys (Hugging Face rotate-half RoPE at position
// start_pos + i, as rope.wgsl) on the way when ROPE is set. k itself is left as it is.
//
// Bindings (group 0):
//   0 params  uniform             Params below
//   1 k       storage read        array<f32>  k[*, num_kv_heads * head_dim]
//   2 v       storage read        array<f32>  v[*, num_kv_heads * head_dim]
//   3 keys    storage read_write  array<f32>  the layer's keys [max_seq, num_kv_heads * head_dim]
//   4 values  storage read_write  array<f32>  the layer's values, same layout
//   5 table   storage read        array<vec2<f32>>  ROPE: (cos, sin) at [pos * half + j]
// Layout: workgroup 256, 2-D grid (x fastest). ROPE: one thread per (row, head, j < head_dim /
// 2) pair, moving elements j and j + half of its head for k and v (head_dim even); otherwise
// one thread per (row, element).

override ROPE: bool = true;

struct Params {
  m: u32,
  num_kv_heads: u32,
  head_dim: u32,
  row_offset: u32,
  start_pos: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> keys: array<f32>;
@group(0) @binding(4) var<storage, read_write> values: array<f32>;
@group(0) @binding(5) var<storage, read> table: array<vec2<f32>>;

@compute @workgroup_size(256)
fn main(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let idx = linear_workgroup(wid, nwg) * 256u + lid;
  let width = p.num_kv_heads * p.head_dim;
  if (!ROPE) {
    if (idx >= p.m * width) {
      return;
    }
    let i = idx / width;
    let e = idx % width;
    keys[(p.start_pos + i) * width + e] = k[(p.row_offset + i) * width + e];
    values[(p.start_pos + i) * width + e] = v[(p.row_offset + i) * width + e];
    return;
  }
  let half = p.head_dim / 2u;
  let per_row = p.num_kv_heads * half;
  if (idx >= p.m * per_row) {
    return;
  }
  let i = idx / per_row;
  let rest = idx % per_row;
  let h = rest / half;
  let j = rest % half;
  let src = (p.row_offset + i) * width + h * p.head_dim + j;
  let dst = (p.start_pos + i) * width + h * p.head_dim + j;
  let x1 = k[src];
  let x2 = k[src + half];
  let cs = table[(p.start_pos + i) * half + j];
  keys[dst] = x1 * cs.x - x2 * cs.y;
  keys[dst + half] = x2 * cs.x + x1 * cs.y;
  values[dst] = v[src];
  values[dst + half] = v[src + half];
}
