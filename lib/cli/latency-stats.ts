/** Latency figures as the benchmarks print them (`blockprune bench`, scripts/load.ts): mean ± std and p50 / p90 / p99. */

/** The q-quantile (0 < q <= 1) of ascending `sorted` values by nearest rank (no interpolation); NaN when empty. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export interface LatencyStats {
  mean: number;
  std: number;
  p50: number;
  p90: number;
  p99: number;
}

/**
 * Mean and standard deviation, and the percentiles a service counts on (p50, p90, p99): a mean hides the
 * stalls that p99 shows. With fewer than 100 values p99 is the largest.
 */
export function latencyStats(xs: readonly number[]): LatencyStats {
  const sorted = [...xs].sort((a, b) => a - b);
  const mean = xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1));
  return { mean, std, p50: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99) };
}

/** "p50 / p90 / p99 ms" of latencyStats, for one line of a report. */
export function formatPercentiles(s: Pick<LatencyStats, 'p50' | 'p90' | 'p99'>, digits = 1): string {
  return `p50 ${s.p50.toFixed(digits)} / p90 ${s.p90.toFixed(digits)} / p99 ${s.p99.toFixed(digits)} ms`;
}
