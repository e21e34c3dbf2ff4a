/**
 * Elementwise helpers over flattened f32 tensors used across the merge:
 * task vectors, their mean and the dense expert.
 * Accumulation is in float64; results are Float32Array.
 */

function checkSameLength(what: string, a: Float32Array, b: Float32Array): void {
  if (a.length !== b.length) {
    throw new RangeError(
      `Cannot compute ${what}: tensors have ${a.length} and ${b.length} elements; ` +
        `pass the same tensor of both models`,
    );
  }
}

/** tau = expert - base. */
export function taskVector(expert: Float32Array, base: Float32Array): Float32Array {
  checkSameLength("a task vector", expert, base);
  const out = new Float32Array(expert.length);
  for (let i = 0; i < out.length; i++) out[i] = expert[i] - base[i];
  return out;
}

/** Elementwise mean of equally long vectors (at least one). */
export function meanVector(vectors: readonly Float32Array[]): Float32Array {
  if (vectors.length === 0) throw new RangeError("Cannot average zero vectors: pass at least one");
  const n = vectors[0].length;
  for (const v of vectors) checkSameLength("a mean", vectors[0], v);
  const out = new Float32Array(n);
  const T = vectors.length;
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let t = 0; t < T; t++) sum += vectors[t][i];
    out[i] = sum / T;
  }
  return out;
}

/**
 * The dense expert D = B + mean_t tau_t, the average of the experts (MEDIATOR.md
 * section 3).
 */
export function denseExpert(
  base: Float32Array,
  taskVectors: readonly Float32Array[],
): Float32Array {
  const mean = meanVector(taskVectors);
  checkSameLength("the dense expert", base, mean);
  for (let i = 0; i < mean.length; i++) mean[i] += base[i];
  return mean;
}
