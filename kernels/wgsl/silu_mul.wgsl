// silu_mul.wgsl: out[i] = silu(gate[i]) * up[i] = gate[i] / (1 + exp(-gate[i])) * up[i].
//
// Bindings (group 0):
//   0 params  uniform             Params below
//   1 gate    storage read_write  array<f32>  (read_write so that out may alias an input)
//   2 up      storage read_write  array<f32>
//   3 out     storage read_write  array<f32>
// Layout: one thread per element, workgroup 256; workgroups in a 2-D grid (x fastest).

struct Params {
  n: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> gate: array<f32>;
@group(0) @binding(2) var<storage, read_write> up: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let i = linear_workgroup(wid, nwg) * 256u + lid;
  if (i < p.n) {
    let g = gate[i];
    // exp(-g) overflows to +inf for g < -88, giving g / inf = -0: the limit of silu.
    out[i] = g / (1.0 + exp(-g)) * up[i];
  }
}
