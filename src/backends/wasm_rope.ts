/**
 * Host-side cos/sin table for the rotary embedding kernel, computed like Hugging Face:
 * inv_freq[k] = 1 / theta^(2k / headDim) in f32, angle = position * inv_freq in f32,
 * then cos and sin of that angle.
 */

/** cos [m, headDim/2] followed by sin [m, headDim/2] for rows with `positions`. */
export function ropeTable(
  positions: Int32Array,
  m: number,
  headDim: number,
  theta: number,
): Float32Array {
  const half = headDim / 2;
  const table = new Float32Array(2 * m * half);
  const invFreq = new Float32Array(half);
  for (let k = 0; k < half; k++) invFreq[k] = 1 / theta ** ((2 * k) / headDim);
  for (let i = 0; i < m; i++) {
    for (let k = 0; k < half; k++) {
      const angle = Math.fround(positions[i] * invFreq[k]);
      table[i * half + k] = Math.cos(angle);
      table[(m + i) * half + k] = Math.sin(angle);
    }
  }
  return table;
}
