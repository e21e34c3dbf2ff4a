// common.wgsl: helpers prepended to every kernel in this folder (no bindings, no entry point).
//
// 16-bit weights are stored packed two per u32, little-endian: element 2k in the low half,
// element 2k+1 in the high half. bf16 is the top half of an f32, so it unpacks by shifts;
// f16 unpacks with unpack2x16float (hot loops) or exactly by bit manipulation (f16_to_f32).
// Weight dtype codes used by the DTYPE override of the kernels: 0 = f32, 1 = bf16, 2 = f16.

const DTYPE_F32: u32 = 0u;
const DTYPE_BF16: u32 = 1u;
const DTYPE_F16: u32 = 2u;

// Two bf16 values packed in one u32 -> (low, high) as f32.
fn unpack_bf16x2(w: u32) -> vec2<f32> {
  return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}

// Two 16-bit values of the given dtype packed in one u32 -> (low, high) as f32.
fn unpack_16x2(w: u32, dtype: u32) -> vec2<f32> {
  if (dtype == DTYPE_F16) {
    return unpack2x16float(w);
  }
  return unpack_bf16x2(w);
}

// Exact f16 bit pattern -> f32 (subnormals kept).
fn f16_to_f32(h: u32) -> f32 {
  let sign = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  if (e == 0u) {
    let mag = f32(m) * 5.9604644775390625e-8; // m * 2^-24
    return select(mag, -mag, sign != 0u);
  }
  if (e == 31u) {
    return bitcast<f32>(sign | 0x7f800000u | (m << 13u));
  }
  return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}

// f32 -> bf16 bit pattern, round to nearest even, NaN kept quiet.
fn f32_to_bf16_bits(v: f32) -> u32 {
  let x = bitcast<u32>(v);
  if ((x & 0x7f800000u) == 0x7f800000u && (x & 0x007fffffu) != 0u) {
    return (x >> 16u) | 0x40u;
  }
  return ((x + 0x7fffu + ((x >> 16u) & 1u)) >> 16u) & 0xffffu;
}

// f32 -> f16 bit pattern, round to nearest even, overflow to infinity.
fn f32_to_f16_bits(v: f32) -> u32 {
  let x = bitcast<u32>(v);
  let sign = (x >> 16u) & 0x8000u;
  let exp = (x >> 23u) & 0xffu;
  var mant = x & 0x7fffffu;
  if (exp == 0xffu) {
    return sign | 0x7c00u | select(0u, 0x200u, mant != 0u);
  }
  var e = i32(exp) - 112;
  if (e >= 31) {
    return sign | 0x7c00u;
  }
  if (e <= 0) {
    if (e < -10) {
      return sign;
    }
    mant = mant | 0x800000u;
    let shift = u32(14 - e);
    let half = 1u << (shift - 1u);
    var r = mant >> shift;
    let rem = mant & ((1u << shift) - 1u);
    if (rem > half || (rem == half && (r & 1u) != 0u)) {
      r = r + 1u;
    }
    return sign | r;
  }
  var r = mant >> 13u;
  let rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u) != 0u)) {
    r = r + 1u;
    if (r == 0x400u) {
      r = 0u;
      e = e + 1;
      if (e >= 31) {
        return sign | 0x7c00u;
      }
    }
  }
  return sign | (u32(e) << 10u) | r;
}

// Exact decode of one 16-bit pattern of the given dtype.
fn half_bits_to_f32(bits: u32, dtype: u32) -> f32 {
  if (dtype == DTYPE_F16) {
    return f16_to_f32(bits);
  }
  return bitcast<f32>(bits << 16u);
}

// Exact encode of an f32 into a 16-bit pattern of the given dtype.
fn f32_to_half_bits(v: f32, dtype: u32) -> u32 {
  if (dtype == DTYPE_F16) {
    return f32_to_f16_bits(v);
  }
  return f32_to_bf16_bits(v);
}

// Linear index of a workgroup in a 2-D grid (x fastest); big counts are split over y.
fn linear_workgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.x + wid.y * nwg.x;
}
