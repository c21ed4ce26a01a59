/**
 * BART's text infilling (Lewis et al. 2019, the noise its denoising pretraining uses), at the word level: spans of
 * words with Poisson(meanSpan) lengths are each replaced by one mask token until `ratio` of the words are masked; a
 * span of length 0 inserts a mask, and masks next to each other merge into one. The model must then say how many
 * words a mask stands for, and which.
 */
import * as v from '../runtime/validate';

export interface InfillingOptions {
  /** The mask token's text, as the tokenizer reads it ("[MASK]", "<mask>"). */
  maskToken: string;
  /** Fraction of the words masked (default 0.3, BART's). */
  ratio?: number;
  /** Mean span length, the Poisson's lambda (default 3, BART's). */
  meanSpan?: number;
  /** Uniform floats in [0, 1): the noise's randomness (lib/data/rng.ts's rng(seed) for a reproducible one). */
  random: () => number;
}

/** Knuth's Poisson sampler: fine for the small lambdas used here. */
function poisson(lambda: number, random: () => number): number {
  const l = Math.exp(-lambda);
  let k = 0;
  for (let p = random(); p > l; p *= random()) k++;
  return k;
}

/** `text` with BART's text infilling applied (words split on whitespace, joined by one space). */
export function textInfilling(text: string, opts: InfillingOptions): string {
  v.string('text', text);
  v.options('opts', opts, ['maskToken', 'ratio', 'meanSpan', 'random']);
  const mask = v.string('opts.maskToken', opts.maskToken, { nonEmpty: true });
  const ratio = opts.ratio === undefined ? 0.3 : v.number('opts.ratio', opts.ratio, { min: 0, max: 1 });
  const meanSpan = opts.meanSpan === undefined ? 3 : v.number('opts.meanSpan', opts.meanSpan, { min: 0, max: 64 });
  v.func('opts.random', opts.random);
  const words = text.split(/\s+/).filter((w) => w !== '');
  const target = Math.round(ratio * words.length);
  const masked = new Array<boolean>(words.length).fill(false);
  // Where a zero-length span inserts a mask: before word i (i = length: at the end).
  const inserted = new Set<number>();
  let count = 0;
  // Each round either masks at least one new word or inserts a mask; a bound keeps a pathological random finite.
  for (let round = 0; count < target && round < 16 * words.length + 16; round++) {
    const start = Math.floor(opts.random() * words.length);
    const span = Math.min(poisson(meanSpan, opts.random), target - count);
    if (span === 0) {
      inserted.add(start);
      continue;
    }
    for (let i = start; i < Math.min(words.length, start + span); i++) {
      if (!masked[i]) count++;
      masked[i] = true;
    }
  }
  const out: string[] = [];
  for (let i = 0; i <= words.length; i++) {
    if (inserted.has(i) && out[out.length - 1] !== mask) out.push(mask);
    if (i === words.length) break;
    if (!masked[i]) out.push(words[i]);
    else if (out[out.length - 1] !== mask) out.push(mask);
  }
  return out.join(' ');
}
