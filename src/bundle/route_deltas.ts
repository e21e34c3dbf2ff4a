/** The sparse deltas of a route, complete or arriving layer by layer. */
import type { LinearDelta, RouteDeltas } from "../model/forward.ts";
import type { Projection } from "../model/weights.ts";

/** Sum of sparse deltas of a route, by layer and projection. */
export class Deltas implements RouteDeltas {
  readonly #map = new Map<string, LinearDelta[]>();
  /** Add one scaled sparse term to a projection of a layer. */
  add(layer: number, proj: Projection, d: LinearDelta): void {
    const k = `${layer}.${proj}`;
    const list = this.#map.get(k);
    if (list) list.push(d);
    else this.#map.set(k, [d]);
  }
  /** The terms of a projection of a layer (undefined when the layer is not routed). */
  get(layer: number, proj: Projection): readonly LinearDelta[] | undefined {
    return this.#map.get(`${layer}.${proj}`);
  }
}

/** Deltas whose layers arrive one by one while the route's blocks are fetched. */
export class ProgressiveDeltas extends Deltas {
  readonly #pending = new Map<number, Promise<void>>();
  /** Track a layer whose deltas `arrival` adds; it is ready once `arrival` settles. */
  track(layer: number, arrival: Promise<void>): void {
    const p = arrival.then(() => {
      if (this.#pending.get(layer) === p) this.#pending.delete(layer);
    });
    p.catch(() => {}); // a failure is seen by the step that awaits it, if any
    this.#pending.set(layer, p);
  }
  /** Pending arrival of `layer`'s deltas, or undefined once they are in. */
  ready(layer: number): Promise<void> | undefined {
    return this.#pending.get(layer);
  }
}
