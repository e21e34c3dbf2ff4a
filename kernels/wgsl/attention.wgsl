// attention.wgsl: causal multi-head attention of new query rows over one layer of a KV cache,
// grouped-query (query head h reads kv head h / (num_heads / num_kv_heads)).
// Query row i (position start_pos + i) attends cache positions [0, start_pos + i].
//
// Bindings (group 0):
//   0 params  uniform             Params below
//   1 q       storage read_write  array<f32>  q[rows, num_heads * head_dim]; rows
//                                  [row_offset, row_offset + m) are used (read_write so that
//                                  out may alias q)
//   2 k       storage read        array<f32>  k[max_seq, num_kv_heads * head_dim] (one layer)
//   3 v       storage read        array<f32>  v[max_seq, num_kv_heads * head_dim] (one layer)
//   4 out     storage read_write  array<f32>  PARTIAL = false: out[rows, num_heads * head_dim],
//                                  same rows as q. PARTIAL = true: partial results
//                                  [m, num_heads, splits, head_dim + 2] (unnormalised output,
//                                  then running max and sum), merged by attention_combine.wgsl
// Layout: one workgroup of 64 threads per (head, query row, split): grid x = head, y = row,
// z = split of the key positions (chunk positions each; one split covers all keys when
// PARTIAL = false). The scaled query sits in workgroup memory; keys are visited 64 at a time
// (one thread scores one key) with an online softmax (running max and sum); thread t
// accumulates output dimensions t, t + 64, ... (head_dim <= 256).

override PARTIAL: bool = false;

const WG: u32 = 64u;
const MAX_HEAD_DIM: u32 = 256u;
const NEG_BIG: f32 = -3.0e38;

struct Params {
  num_heads: u32,
  num_kv_heads: u32,
  head_dim: u32,
  row_offset: u32,
  m: u32,
  start_pos: u32,
  scale: f32,
  chunk: u32,  // key positions per split (PARTIAL)
  splits: u32, // splits per (row, head) (PARTIAL)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> qs: array<f32, 256>;  // MAX_HEAD_DIM
var<workgroup> probs: array<f32, 64>; // WG
var<workgroup> red: array<f32, 64>;   // WG

fn reduce_max(lid: u32, value: f32) -> f32 {
  red[lid] = value;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      red[lid] = max(red[lid], red[lid + s]);
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn reduce_sum(lid: u32, value: f32) -> f32 {
  red[lid] = value;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      red[lid] = red[lid] + red[lid + s];
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let head = wid.x;
  let i = wid.y;
  let hd = p.head_dim;
  let group = p.num_heads / p.num_kv_heads;
  let kv_dim = p.num_kv_heads * hd;
  let kv_base = (head / group) * hd;
  let q_base = (p.row_offset + i) * p.num_heads * hd + head * hd;
  let len = p.start_pos + i + 1u;
  var begin = 0u;
  var end = len;
  if (PARTIAL) {
    begin = wid.z * p.chunk;
    end = min(len, begin + p.chunk);
  }

  for (var d = lid; d < hd; d = d + WG) {
    qs[d] = q[q_base + d] * p.scale;
  }
  workgroupBarrier();

  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  var run_max = NEG_BIG;
  var run_sum = 0.0;
  for (var p0 = begin; p0 < end; p0 = p0 + WG) {
    let pos = p0 + lid;
    var score = NEG_BIG;
    if (pos < end) {
      let kb = pos * kv_dim + kv_base;
      var s = 0.0;
      for (var d = 0u; d < hd; d = d + 1u) {
        s = s + qs[d] * k[kb + d];
      }
      score = s;
    }
    let new_max = max(run_max, reduce_max(lid, score));
    let pr = select(0.0, exp(score - new_max), pos < end);
    probs[lid] = pr;
    let block_sum = reduce_sum(lid, pr); // its barriers also publish probs
    let correction = exp(run_max - new_max);
    run_sum = run_sum * correction + block_sum;
    let count = min(WG, end - p0);
    for (var a = 0u; a < MAX_HEAD_DIM / WG; a = a + 1u) {
      let d = lid + a * WG;
      if (d < hd) {
        var s = acc[a] * correction;
        for (var t = 0u; t < count; t = t + 1u) {
          s = s + probs[t] * v[(p0 + t) * kv_dim + kv_base + d];
        }
        acc[a] = s;
      }
    }
    run_max = new_max;
    workgroupBarrier(); // probs is rewritten by the next block
  }
  if (PARTIAL) {
    let base = ((i * p.num_heads + head) * p.splits + wid.z) * (hd + 2u);
    for (var a = 0u; a < MAX_HEAD_DIM / WG; a = a + 1u) {
      let d = lid + a * WG;
      if (d < hd) {
        out[base + d] = acc[a];
      }
    }
    if (lid == 0u) {
      out[base + hd] = run_max;
      out[base + hd + 1u] = run_sum;
    }
    return;
  }
  let inv = 1.0 / run_sum;
  for (var a = 0u; a < MAX_HEAD_DIM / WG; a = a + 1u) {
    let d = lid + a * WG;
    if (d < hd) {
      out[q_base + d] = acc[a] * inv;
    }
  }
}
