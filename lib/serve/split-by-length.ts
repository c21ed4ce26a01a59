/**
 * How a classification batch is cut into forwards: by length, so that padding stays within a budget where
 * padding costs (GPU or patched models; on CPU the model packs the sequences and one forward is best).
 */
import type { ClassificationBatchItem } from '../model/pipelines';

/** Tokens of a classification input, roughly (about 4 characters a token, plus [CLS] and [SEP]s). */
export function approxTokens(x: ClassificationBatchItem): number {
  const chars = (s: unknown) => (typeof s === 'string' ? s.length : 0);
  if (typeof x === 'string') return 2 + Math.ceil(x.length / 4);
  if (Array.isArray(x)) return 3 + Math.ceil((chars(x[0]) + chars(x[1])) / 4);
  return 3 + Math.ceil((chars(x.text) + chars(x.textPair)) / 4);
}

/**
 * Indices grouped for forwards: sorted by length, a group grows while its padding (rows x longest - real
 * tokens) stays within maxPadding x its real tokens, or 16 tokens.
 */
export function splitByLength(lengths: number[], maxPadding: number): number[][] {
  const order = lengths.map((_, i) => i);
  if (maxPadding === Infinity || lengths.length <= 1) return lengths.length ? [order] : [];
  order.sort((a, b) => lengths[a] - lengths[b] || a - b);
  const groups: number[][] = [];
  let cur: number[] = [];
  let sum = 0;
  for (const i of order) {
    const l = lengths[i];
    const padded = (cur.length + 1) * l;
    if (cur.length > 0 && padded - (sum + l) > Math.max(maxPadding * (sum + l), 16)) {
      groups.push(cur);
      cur = [];
      sum = 0;
    }
    cur.push(i);
    sum += l;
  }
  if (cur.length) groups.push(cur);
  return groups;
}
