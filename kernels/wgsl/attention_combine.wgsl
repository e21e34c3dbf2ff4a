// attention_combine.wgsl: merges the per-split partial results of attention.wgsl (PARTIAL)
// into the attention output: with split s holding unnormalised output o_s, running max M_s
// and sum L_s, out = sum_s o_s exp(M_s - M) / sum_s L_s exp(M_s - M), M = max_s M_s.
//
// Bindings (group 0):
//   0 params    uniform             Params below
//   1 partials  storage read        array<f32>  [m, num_heads, splits, head_dim + 2]
//   2 out       storage read_write  array<f32>  out[rows, num_heads * head_dim]; rows
//                                    [row_offset, row_offset + m)
// Layout: one workgroup of 64 threads per (head, query row): grid x = head, y = row; thread t
// writes dimensions t, t + 64, ...; every thread recomputes the split weights (splits is small).

const WG: u32 = 64u;

struct Params {
  num_heads: u32,
  head_dim: u32,
  row_offset: u32,
  splits: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let head = wid.x;
  let i = wid.y;
  let hd = p.head_dim;
  let stride = hd + 2u;
  let base = (i * p.num_heads + head) * p.splits * stride;
  var m = -3.0e38;
  for (var s = 0u; s < p.splits; s = s + 1u) {
    m = max(m, partials[base + s * stride + hd]);
  }
  var total = 0.0;
  for (var s = 0u; s < p.splits; s = s + 1u) {
    total = total + partials[base + s * stride + hd + 1u] * exp(partials[base + s * stride + hd] - m);
  }
  let out_base = (p.row_offset + i) * p.num_heads * hd + head * hd;
  for (var d = lid; d < hd; d = d + WG) {
    var acc = 0.0;
    for (var s = 0u; s < p.splits; s = s + 1u) {
      let w = exp(partials[base + s * stride + hd] - m);
      acc = acc + partials[base + s * stride + d] * w;
    }
    out[out_base + d] = acc / total;
  }
}
