/** Classification metrics for the router report: accuracy and confusion matrix. */

/**
 * Confusion matrix [T][T]: entry [t][p] counts examples of true class t
 * predicted as p. Rows sum to the class counts, the whole to the example count.
 */
export function confusionMatrix(
  truth: readonly number[],
  predicted: readonly number[],
  numClasses: number,
): number[][] {
  if (truth.length !== predicted.length) {
    throw new RangeError(
      `Cannot build a confusion matrix: ${truth.length} labels but ${predicted.length} predictions`,
    );
  }
  const m = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  truth.forEach((t, i) => {
    const p = predicted[i];
    if (!(t >= 0 && t < numClasses && p >= 0 && p < numClasses)) {
      throw new RangeError(
        `Cannot build a confusion matrix: class ${t} or ${p} is outside 0..${numClasses - 1}`,
      );
    }
    m[t][p]++;
  });
  return m;
}

/** Share of examples on the diagonal of a confusion matrix (NaN when it is empty). */
export function accuracyOf(confusion: readonly (readonly number[])[]): number {
  let right = 0, all = 0;
  confusion.forEach((row, t) =>
    row.forEach((n, p) => {
      all += n;
      if (t === p) right += n;
    })
  );
  return all === 0 ? NaN : right / all;
}

/** Index of the largest value (the lowest index on ties). */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** A plain-text confusion table with class names, for reports and the CLI. */
export function formatConfusion(
  confusion: readonly (readonly number[])[],
  names: readonly string[],
): string {
  const width = Math.max(
    9,
    ...names.map((n) => n.length),
    ...confusion.flat().map((n) => `${n}`.length),
  );
  const cell = (s: string) => s.padStart(width);
  const lines = [cell("true\\pred") + " " + names.map(cell).join(" ")];
  confusion.forEach((row, t) =>
    lines.push(cell(names[t]) + " " + row.map((n) => cell(`${n}`)).join(" "))
  );
  return lines.join("\n");
}
