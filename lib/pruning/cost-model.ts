/**
 * What a compact model costs, as a function of what each layer keeps: its heads and its FFN units
 * (issue 17, pruning to a budget). One shape serves latency (a profile measured on this machine,
 * latency-profile.ts) and parameters (exact, from the geometry):
 *
 *   cost = constant + sum over layers of ( heads(h_l) + units(u_l) )
 *
 * with `heads` and `units` piecewise-linear (linear beyond their ends), the same for every layer (the layers
 * of one model have the same shapes). The trainer evaluates it natively on the expected heads and units of
 * the current masks (differentiable in the scores), and on the hard masks.
 */
import type { ModelGeometry } from '../model/model';
import { BlockpruneError } from '../runtime/errors';
import * as v from '../runtime/validate';

/** y(x) through the points (x[i], y[i]), x strictly increasing, at least two points; linear beyond the ends. */
export interface PiecewiseLinear {
  x: number[];
  y: number[];
}

export interface CostModel {
  /** What the cost counts: milliseconds of a forward at one shape, or parameters. */
  unit: 'ms' | 'parameters';
  /** The part no layer's heads or units change: embeddings, heads, layer norms, call overhead. */
  constant: number;
  /** One layer's cost of its kept heads (x: heads kept). */
  heads: PiecewiseLinear;
  /** One layer's cost of its kept FFN units (x: units kept). */
  units: PiecewiseLinear;
}

export function evalPiecewise(f: PiecewiseLinear, x: number): number {
  const { x: xs, y: ys } = f;
  const n = xs.length;
  let i = 0;
  while (i < n - 2 && x > xs[i + 1]) i++;
  return ys[i] + ((ys[i + 1] - ys[i]) * (x - xs[i])) / (xs[i + 1] - xs[i]);
}

/** The cost of a model keeping `layers[l].heads` heads and `layers[l].intermediateSize` units in layer l. */
export function predictCost(m: CostModel, layers: ReadonlyArray<{ heads: number; intermediateSize: number }>): number {
  return layers.reduce((sum, l) => sum + evalPiecewise(m.heads, l.heads) + evalPiecewise(m.units, l.intermediateSize), m.constant);
}

/** Checks a cost model (from a file or a caller) before it reaches the native step. */
export function checkCostModel(name: string, m: unknown): CostModel {
  // A latency profile carries more fields (its shape, grid, machine): only these four are read here.
  const o = v.object(name, m);
  v.oneOf(`${name}.unit`, o.unit, ['ms', 'parameters'] as const);
  v.number(`${name}.constant`, o.constant);
  for (const k of ['heads', 'units'] as const) {
    const f = v.object(`${name}.${k}`, o[k]);
    const xs = f.x, ys = f.y;
    if (!Array.isArray(xs) || !Array.isArray(ys) || xs.length < 2 || xs.length !== ys.length)
      throw new BlockpruneError('E_INVALID_ARG', `${name}.${k}: expected { x, y }, two arrays of the same length (at least 2 points)`);
    xs.forEach((x, i) => {
      v.number(`${name}.${k}.x[${i}]`, x);
      if (i > 0 && !(x > xs[i - 1])) throw new BlockpruneError('E_INVALID_ARG', `${name}.${k}.x must increase strictly (x[${i}] = ${x} after ${xs[i - 1]})`);
    });
    ys.forEach((y, i) => v.number(`${name}.${k}.y[${i}]`, y));
  }
  return m as CostModel;
}

/**
 * Parameters as a cost model, exact for a compact model of this geometry: a head holds its rows of q, k and v
 * (weights and biases) and its columns of the attention output; an FFN unit its intermediate row (with bias)
 * and its output column. `numParameters` is the model's count (mask scores excluded) at this geometry.
 */
export function parameterCostModel(geometry: ModelGeometry, numParameters: number): CostModel {
  const { hiddenSize: d, headDim: hd } = geometry;
  const perHead = 4 * hd * d + 3 * hd;
  const perUnit = 2 * d + 1;
  const variable = geometry.layers.reduce((s, l) => s + l.heads * perHead + l.intermediateSize * perUnit, 0);
  return {
    unit: 'parameters',
    constant: numParameters - variable,
    heads: { x: [0, 1], y: [0, perHead] },
    units: { x: [0, 1], y: [0, perUnit] },
  };
}

/** The speed-up of a compact model over the dense one, by a latency cost model: dense cost / its cost. */
export function predictedSpeedup(m: CostModel, dense: ReadonlyArray<{ heads: number; intermediateSize: number }>, compact: ReadonlyArray<{ heads: number; intermediateSize: number }>): number {
  return predictCost(m, dense) / predictCost(m, compact);
}
