/**
 * Seeded Gaussian blobs for router tests: T classes around random centres,
 * with the nearest-centre rule as the reference classifier (optimal for
 * equal isotropic blobs).
 */
import { createRng, type Rng } from "../../src/merge/prng.ts";

/** A standard normal sample (Box-Muller). */
export function gaussian(rng: Rng): number {
  const u = 1 - rng.next(), v = rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Labelled points and the centres they were drawn around. */
export interface Blobs {
  features: Float32Array[];
  labels: number[];
  centers: Float64Array[];
}

/**
 * `perClass` points per class in `dim` dimensions: centres ~ N(offset, spread^2),
 * points = centre + N(0, noise^2). The offset keeps features away from zero so
 * standardisation matters.
 */
export function makeBlobs(
  opts: { classes: number; perClass: number; dim: number; spread: number; seed: number },
  noise = 1,
  offset = 3,
): Blobs {
  const rng = createRng(opts.seed);
  const centers = Array.from(
    { length: opts.classes },
    () => Float64Array.from({ length: opts.dim }, () => offset + gaussian(rng) * opts.spread),
  );
  return { ...samplePoints(centers, opts.perClass, rng, noise), centers };
}

/** `perClass` fresh points around each centre, N(0, noise^2) per coordinate. */
export function samplePoints(
  centers: readonly Float64Array[],
  perClass: number,
  rng: Rng,
  noise = 1,
): { features: Float32Array[]; labels: number[] } {
  const features: Float32Array[] = [], labels: number[] = [];
  for (let i = 0; i < perClass; i++) {
    centers.forEach((center, t) => {
      features.push(Float32Array.from(center, (c) => c + gaussian(rng) * noise));
      labels.push(t);
    });
  }
  return { features, labels };
}

/** Class of the nearest centre. */
export function nearestCenter(centers: readonly Float64Array[], x: Float32Array): number {
  let best = 0, bestDist = Infinity;
  centers.forEach((c, t) => {
    let d = 0;
    for (let i = 0; i < c.length; i++) d += (x[i] - c[i]) ** 2;
    if (d < bestDist) [best, bestDist] = [t, d];
  });
  return best;
}
