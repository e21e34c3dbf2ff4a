// sparse_matmul_add.wgsl: out[r, :] += scale * x[r, :] @ S^T for activation rows r in
// [row_offset, row_offset + m), S a CSR matrix [rows, cols] with 16-bit values (the delta path).
//
// Bindings (group 0):
//   0 params   uniform             Params below
//   1 sp       storage read        array<u32>  one row chunk of S: row_ptr (rows + 1 offsets,
//                                   rebased to 0), then per non-zero col | (value bits << 16)
//                                   (PACKED, cols <= 65536) or the column alone (WIDE), then
//                                   (WIDE) the value bits packed 2 per u32
//   2 x        storage read        array<f32>  x[*, x_stride]
//   3 out      storage read_write  array<f32>  out[*, out_stride]; this chunk adds to columns
//                                   [row_base, row_base + rows)
// Layout: one workgroup of 256 threads handles 256 / THREADS_PER_ROW sparse rows; the threads
// of a row stride over its non-zeros (coalesced), accumulate TM activation rows at once, and
// reduce with a tree in workgroup memory. Grid: x/y = row groups, z = blocks of TM activation
// rows starting at m_base.

override VALUE_DTYPE: u32 = 1u;      // 1 = bf16, 2 = f16
override WIDE: bool = false;
override THREADS_PER_ROW: u32 = 32u; // power of two in [1, 256]
override TM: u32 = 1u;               // activation rows per workgroup, 1..4

const WG: u32 = 256u;

struct Params {
  rows: u32,
  row_base: u32,
  out_stride: u32,
  x_stride: u32,
  row_offset: u32,
  m_base: u32,
  scale: f32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> sp: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, 1024>; // WG * 4

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
  let r0 = p.row_offset + p.m_base + wid.z * TM;

  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  if (row < p.rows) {
    let base = p.rows + 1u;
    let end = sp[row + 1u];
    for (var e = sp[row] + lane; e < end; e = e + THREADS_PER_ROW) {
      var col: u32;
      var bits: u32;
      if (WIDE) {
        col = sp[base + e];
        bits = (sp[base + sp[p.rows] + (e >> 1u)] >> ((e & 1u) * 16u)) & 0xffffu;
      } else {
        let packed = sp[base + e];
        col = packed & 0xffffu;
        bits = packed >> 16u;
      }
      var value: f32;
      if (VALUE_DTYPE == DTYPE_F16) {
        value = unpack2x16float(bits).x;
      } else {
        value = bitcast<f32>(bits << 16u);
      }
      for (var t = 0u; t < TM; t = t + 1u) {
        acc[t] = acc[t] + value * x[(r0 + t) * p.x_stride + col];
      }
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
    let o = (r0 + lane) * p.out_stride + p.row_base + row;
    out[o] = out[o] + p.scale * partial[lane * WG + local_row * THREADS_PER_ROW];
  }
}
