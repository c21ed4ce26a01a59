/**
 * The pure half of the latency profile (latency-profile.ts measures, this fits): which models a profile
 * measures (the grid) and the cost model they give (non-negative least squares on relative errors). No timing
 * here, so the fit is tested on exact synthetic costs.
 *
 * The split between the constant and a layer's tables is a convention (a model always has every layer): each
 * table's first segment extends linearly to 0 at 0 kept, so "the cost of a layer's heads" is what heads add,
 * and what a layer costs whatever it keeps (LayerNorms, residuals) sits in the constant.
 */
import type { CostModel, PiecewiseLinear } from './cost-model';

/** What one layer keeps. */
export interface LayerShape {
  heads: number;
  intermediateSize: number;
}

/** Which sweep a grid model belongs to. */
export type LatencyGridKind = 'heads' | 'units' | 'mixed' | 'dense';

/**
 * Breakpoints from 1 to `all`: every count up to 4 (small counts are where compaction ends up), then about
 * x1.5 steps; for FFN widths 1 and fractions 1/32 .. 3/4 of the width.
 */
export function latencyKnots(heads: number, intermediate: number): { heads: number[]; units: number[] } {
  const h = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64].filter((x) => x < heads);
  const u = [1, ...[1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 3 / 4].map((f) => Math.round(f * intermediate))].filter((x) => x >= 1 && x < intermediate);
  return { heads: [...new Set([...h, heads])], units: [...new Set([...u, intermediate])] };
}

/** A small seeded generator (numerical recipes' LCG): the grid's mixed models are the same on every run. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
}

const nearest = (xs: number[], x: number): number => xs.reduce((a, b) => (Math.abs(b - x) < Math.abs(a - x) ? b : a));

/**
 * The models a profile measures, as layer shapes: heads swept at a fixed width (the breakpoint nearest a
 * quarter), widths swept at fixed heads (nearest a third), `mixed` non-uniform models with random counts per
 * layer (drawn as all x r^2, r uniform: mostly small, where compact models are, and cheap to time), and the
 * dense model, which also stands for the width sweep's last point (the heads sweep gives its heads' part).
 */
export function latencyGrid(
  dims: { layers: number; heads: number; intermediate: number },
  mixed = 5,
  seed = 1,
): { knots: { heads: number[]; units: number[] }; points: Array<{ kind: LatencyGridKind; layers: LayerShape[] }> } {
  const knots = latencyKnots(dims.heads, dims.intermediate);
  const hFix = nearest(knots.heads, dims.heads / 3);
  const uFix = nearest(knots.units, dims.intermediate / 4);
  const uniform = (heads: number, intermediateSize: number) => Array.from({ length: dims.layers }, () => ({ heads, intermediateSize }));
  const points: Array<{ kind: LatencyGridKind; layers: LayerShape[] }> = [
    ...knots.heads.map((h) => ({ kind: 'heads' as const, layers: uniform(h, uFix) })),
    ...knots.units.filter((u) => u !== uFix && u !== dims.intermediate).map((u) => ({ kind: 'units' as const, layers: uniform(hFix, u) })),
  ];
  const r = lcg(seed);
  const pick = (n: number) => 1 + Math.floor(r() ** 2 * n);
  for (let k = 0; k < mixed; k++)
    points.push({ kind: 'mixed', layers: Array.from({ length: dims.layers }, () => ({ heads: pick(dims.heads), intermediateSize: pick(dims.intermediate) })) });
  // With uFix the whole width, the heads sweep's last model is the dense one.
  if (uFix !== dims.intermediate) points.push({ kind: 'dense', layers: uniform(dims.heads, dims.intermediate) });
  return { knots, points };
}

// ---- The fit: pure functions (tested on exact synthetic costs, no timing).

/**
 * The basis of a piecewise-linear function through `knots` whose first segment extends to 0 at 0: f(x) =
 * sum of slope_k * basis_k(x), one slope per segment (none when there is one knot: the function is 0).
 */
function segmentBasis(knots: readonly number[], x: number): number[] {
  const m = knots.length - 1;
  const out: number[] = [];
  for (let k = 0; k < m; k++) {
    const lo = k === 0 ? -Infinity : knots[k];
    const hi = k === m - 1 ? Infinity : knots[k + 1];
    out.push(k === 0 ? Math.min(x, hi) : Math.min(Math.max(x - lo, 0), hi - lo));
  }
  return out;
}

/** The table { x: knots, y } of slopes over segmentBasis (two points from 0 when there is one knot). */
function tableOf(knots: readonly number[], slopes: readonly number[]): PiecewiseLinear {
  if (knots.length === 1) return { x: [0, knots[0]], y: [0, 0] };
  return { x: [...knots], y: knots.map((x) => segmentBasis(knots, x).reduce((s, b, k) => s + b * slopes[k], 0)) };
}

/** Least squares by modified Gram-Schmidt (columns of `a`, row-major); a column dependent on earlier ones gets 0. */
export function leastSquares(a: readonly number[][], b: readonly number[]): number[] {
  const m = a.length;
  const n = m ? a[0].length : 0;
  const q: number[][] = Array.from({ length: n }, (_, j) => a.map((row) => row[j]));
  const r: number[][] = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  const y = new Array<number>(n).fill(0);
  const rest = [...b];
  const dot = (p: number[], s: readonly number[]) => p.reduce((acc, x, i) => acc + x * s[i], 0);
  const live: boolean[] = [];
  for (let k = 0; k < n; k++) {
    const norm0 = Math.sqrt(dot(q[k], q[k]));
    for (let j = 0; j < k; j++) {
      if (!live[j]) continue;
      r[j][k] = dot(q[j], q[k]);
      for (let i = 0; i < m; i++) q[k][i] -= r[j][k] * q[j][i];
    }
    const norm = Math.sqrt(dot(q[k], q[k]));
    live[k] = norm > 1e-10 * Math.max(norm0, 1e-300);
    if (!live[k]) continue;
    r[k][k] = norm;
    for (let i = 0; i < m; i++) q[k][i] /= norm;
    y[k] = dot(q[k], rest);
    for (let i = 0; i < m; i++) rest[i] -= y[k] * q[k][i];
  }
  const x = new Array<number>(n).fill(0);
  for (let k = n - 1; k >= 0; k--) {
    if (!live[k]) continue;
    let s = y[k];
    for (let j = k + 1; j < n; j++) s -= r[k][j] * x[j];
    x[k] = s / r[k][k];
  }
  return x;
}

/**
 * Non-negative least squares (Lawson and Hanson, 1974, ch. 23): a latency never falls when a layer keeps more,
 * and a negative slope from timing noise would teach the trainer to keep more for less.
 */
export function nonNegativeLeastSquares(a: readonly number[][], b: readonly number[]): number[] {
  const n = a[0]?.length ?? 0;
  const x = new Array<number>(n).fill(0);
  const passive = new Set<number>();
  const gradient = () => {
    const res = b.map((bi, i) => bi - a[i].reduce((s, aij, j) => s + aij * x[j], 0));
    return Array.from({ length: n }, (_, j) => a.reduce((s, row, i) => s + row[j] * res[i], 0));
  };
  const solveOn = () => {
    const cols = [...passive].sort((p, q) => p - q);
    const z = leastSquares(a.map((row) => cols.map((j) => row[j])), b);
    const full = new Array<number>(n).fill(0);
    cols.forEach((j, k) => (full[j] = z[k]));
    return full;
  };
  const scale = Math.max(1e-300, ...a.flat().map(Math.abs)) * Math.max(1e-300, ...b.map(Math.abs));
  for (let iter = 0; iter < 3 * n + 10; iter++) {
    const w = gradient();
    let best = -1;
    for (let j = 0; j < n; j++) if (!passive.has(j) && w[j] > 1e-12 * scale && (best < 0 || w[j] > w[best])) best = j;
    if (best < 0) break;
    passive.add(best);
    for (;;) {
      const z = solveOn();
      const bad = [...passive].filter((j) => z[j] <= 0);
      if (bad.length === 0) {
        z.forEach((zj, j) => (x[j] = zj));
        break;
      }
      const alpha = Math.min(...bad.map((j) => x[j] / (x[j] - z[j])));
      for (let j = 0; j < n; j++) x[j] += alpha * (z[j] - x[j]);
      for (const j of [...passive]) if (x[j] <= 1e-15 * Math.max(1, Math.abs(z[j]))) {
        x[j] = 0;
        passive.delete(j);
      }
    }
  }
  return x;
}

/**
 * The cost model that fits measured models best in relative terms (each row divided by its milliseconds: a
 * 5 ms model's error counts as much as a 100 ms one's), slopes and constant non-negative.
 */
export function fitLatency(points: ReadonlyArray<{ layers: ReadonlyArray<LayerShape>; ms: number }>, knots: { heads: readonly number[]; units: readonly number[] }): CostModel {
  const nh = knots.heads.length - 1;
  const rows = points.map((p) => {
    const row = new Array<number>(1 + nh + Math.max(0, knots.units.length - 1)).fill(0);
    row[0] = 1;
    for (const l of p.layers) {
      segmentBasis(knots.heads, l.heads).forEach((b, k) => (row[1 + k] += b));
      segmentBasis(knots.units, l.intermediateSize).forEach((b, k) => (row[1 + nh + k] += b));
    }
    return row.map((x) => x / p.ms);
  });
  const p = nonNegativeLeastSquares(rows, points.map(() => 1));
  return { unit: 'ms', constant: p[0], heads: tableOf(knots.heads, p.slice(1, 1 + nh)), units: tableOf(knots.units, p.slice(1 + nh)) };
}
