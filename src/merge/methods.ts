/**
 * Registry of static merge methods: used for the averaged units of a Mediator
 * bundle and, applied to every unit, as the baselines of the evaluation. Each
 * entry is a small configured object (name, description, paper, parameters
 * with defaults) over the one generalized method of `generalized.ts`; TIES and
 * DARE are settings of it.
 *
 * Defaults (ours, documented so sweeps can vary them):
 * - task_arithmetic lambda = 0.5: Ilharco et al. pick lambda on held-out data
 *   in [0, 1]; for 2 experts 0.5 equals the average, for more it adds more of
 *   each task.
 * - ties density = 0.2, lambda = 1: the TIES paper's trim fraction and scale.
 * - dare drop_rate = 0.5, combined by sum with lambda = 0.5 (so drop_rate 0
 *   equals task_arithmetic): the DARE paper drops up to 0.9 of small SFT
 *   deltas, but shows high drop rates fail when deltas are large, as they are
 *   in full fine-tunes of small models.
 */
import { type GeneralizedOptions, generalizedTaskArithmetic } from "./generalized.ts";
import {
  choiceParam,
  numberParam,
  type ParamSpec,
  type ResolvedParams,
  resolveParams,
} from "./params.ts";
import type { Rng } from "./prng.ts";

/** A static merge method: merged = f(base, task vectors), one tensor at a time. */
export interface MergeMethod {
  readonly name: string;
  readonly description: string;
  /** The paper that defines it. */
  readonly reference: string;
  readonly params: readonly ParamSpec[];
  /** Whether `apply` draws random numbers (then it needs an Rng). */
  readonly random: boolean;
  /** Validate parameters and fill in defaults. */
  resolve(params?: Readonly<Record<string, unknown>>): ResolvedParams;
  /** The generalized-merge settings these parameters stand for. */
  settings(params?: Readonly<Record<string, unknown>>): GeneralizedOptions;
  /**
   * Merge one tensor: `base` and each `taskVectors[t]` = E_t - B, flattened.
   * `rng` is required when `random` is true.
   */
  apply(
    base: Float32Array,
    taskVectors: readonly Float32Array[],
    params?: Readonly<Record<string, unknown>>,
    rng?: Rng,
  ): Float32Array;
}

const LAMBDA = (fallback: number): ParamSpec => ({
  name: "lambda",
  kind: "number",
  default: fallback,
  min: 0,
  description: "scale of the combined task vector",
});
const DROP_RATE: ParamSpec = {
  name: "drop_rate",
  kind: "number",
  default: 0.5,
  min: 0,
  max: 1,
  maxExclusive: true,
  description: "probability p of dropping each task-vector value (kept ones scale by 1/(1-p))",
};

/** Build a registry entry from its parameter specs and a mapping to settings. */
function defineMethod(
  name: string,
  description: string,
  reference: string,
  params: readonly ParamSpec[],
  toSettings: (p: ResolvedParams) => GeneralizedOptions,
): MergeMethod {
  const owner = `merge method '${name}'`;
  const settings = (given?: Readonly<Record<string, unknown>>) =>
    toSettings(resolveParams(owner, params, given));
  return {
    name,
    description,
    reference,
    params,
    random: toSettings(resolveParams(owner, params)).sparsify === "random",
    resolve: (given) => resolveParams(owner, params, given),
    settings,
    apply(base, taskVectors, given, rng) {
      const options = settings(given);
      if (options.sparsify === "random" && !rng) {
        throw new TypeError(`Cannot apply ${owner}: it drops values at random; pass an Rng`);
      }
      return generalizedTaskArithmetic(base, taskVectors, options, rng);
    },
  };
}

const METHODS: readonly MergeMethod[] = [
  defineMethod(
    "average",
    "B + mean of the task vectors (uniform weight averaging)",
    "Wortsman et al. 2022, Model soups (ICML 2022)",
    [],
    () => ({ sparsify: "none", density: 1, consensus: "none", combine: "mean", lambda: 1 }),
  ),
  defineMethod(
    "task_arithmetic",
    "B + lambda * sum of the task vectors",
    "Ilharco et al. 2023, Editing Models with Task Arithmetic (ICLR 2023)",
    [LAMBDA(0.5)],
    (p) => ({
      sparsify: "none",
      density: 1,
      consensus: "none",
      combine: "sum",
      lambda: numberParam(p, "lambda"),
    }),
  ),
  defineMethod(
    "ties",
    "trim each task vector to its top density by magnitude, elect the sign of the summed " +
      "trimmed values, average the values that agree (disjoint mean), scale by lambda",
    "Yadav et al. 2023, TIES-Merging: Resolving Interference When Merging Models (NeurIPS 2023)",
    [
      {
        name: "density",
        kind: "number",
        default: 0.2,
        min: 0,
        minExclusive: true,
        max: 1,
        description: "fraction of each task vector kept by magnitude",
      },
      LAMBDA(1),
    ],
    (p) => ({
      sparsify: "magnitude",
      density: numberParam(p, "density"),
      consensus: "sign",
      combine: "disjoint_mean",
      lambda: numberParam(p, "lambda"),
    }),
  ),
  defineMethod(
    "dare",
    "drop each task-vector value with probability p and rescale the rest by 1/(1-p), then " +
      "combine by sum or mean, scaled by lambda",
    "Yu et al. 2023, Language Models are Super Mario: Absorbing Abilities from Homologous " +
      "Models as a Free Lunch (ICML 2024)",
    [
      DROP_RATE,
      {
        name: "combine",
        kind: "choice",
        default: "sum",
        choices: ["sum", "mean"],
        description: "how the rescaled task vectors are combined",
      },
      LAMBDA(0.5),
    ],
    (p) => ({
      sparsify: "random",
      density: 1 - numberParam(p, "drop_rate"),
      consensus: "none",
      combine: choiceParam(p, "combine") === "mean" ? "mean" : "sum",
      lambda: numberParam(p, "lambda"),
    }),
  ),
  defineMethod(
    "dare_ties",
    "DARE's random drop and rescale, then TIES' sign election and disjoint mean",
    "Yu et al. 2023 (DARE) with Yadav et al. 2023 (TIES-Merging)",
    [DROP_RATE, LAMBDA(1)],
    (p) => ({
      sparsify: "random",
      density: 1 - numberParam(p, "drop_rate"),
      consensus: "sign",
      combine: "disjoint_mean",
      lambda: numberParam(p, "lambda"),
    }),
  ),
];

/** Every merge method by name, in the order they are documented. */
export const MERGE_METHODS: ReadonlyMap<string, MergeMethod> = new Map(
  METHODS.map((m) => [m.name, m]),
);

/** Default method for averaged units (MEDIATOR.md section 2). */
export const DEFAULT_MERGE_METHOD = "average";

/** The method called `name`; throws RangeError listing the known names. */
export function getMergeMethod(name: string): MergeMethod {
  const method = MERGE_METHODS.get(name);
  if (!method) {
    throw new RangeError(
      `Cannot use merge method '${name}': unknown; use one of ${
        [...MERGE_METHODS.keys()].join(", ")
      }`,
    );
  }
  return method;
}
