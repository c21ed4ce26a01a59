/**
 * Evaluation metrics.
 *
 * Classification metrics take predicted and gold class indices (any ArrayLike<number>, e.g. Int32Array) and
 * return fractions in [0, 1] (accuracy, F1) or [-1, 1] (Matthews), like HF `evaluate` / scikit-learn.
 * `squadMetrics` returns percentages, like the official SQuAD scripts; `rouge` F-measures as fractions.
 */
import * as jsRouge from 'js-rouge';
import { BlockpruneError, invalidArg } from '../runtime/errors';

function checkPair(pred: ArrayLike<number>, gold: ArrayLike<number>): number {
  if (!pred || typeof pred.length !== 'number') throw invalidArg('pred', 'an array of class indices', pred);
  if (!gold || typeof gold.length !== 'number') throw invalidArg('gold', 'an array of class indices', gold);
  if (pred.length !== gold.length) throw invalidArg('gold', `an array as long as pred (${pred.length})`, gold);
  if (pred.length === 0) throw invalidArg('pred', 'a non-empty array', pred);
  return pred.length;
}

/** Fraction of positions where pred equals gold. */
export function accuracy(pred: ArrayLike<number>, gold: ArrayLike<number>): number {
  const n = checkPair(pred, gold);
  let ok = 0;
  for (let i = 0; i < n; i++) if (pred[i] === gold[i]) ok++;
  return ok / n;
}

/** Precision, recall and F1 of class `positive` (default 1); 0 where undefined (scikit-learn zero_division=0). */
export function precisionRecallF1(pred: ArrayLike<number>, gold: ArrayLike<number>, positive = 1): { precision: number; recall: number; f1: number } {
  const n = checkPair(pred, gold);
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let i = 0; i < n; i++) {
    const p = pred[i] === positive;
    const g = gold[i] === positive;
    if (p && g) tp++;
    else if (p) fp++;
    else if (g) fn++;
  }
  const precision = tp + fp > 0 ? tp / (tp + fp) : 0;
  const recall = tp + fn > 0 ? tp / (tp + fn) : 0;
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, f1 };
}

/** Binary F1 of class `positive` (default 1), as GLUE MRPC / QQP report it. */
export function f1Binary(pred: ArrayLike<number>, gold: ArrayLike<number>, positive = 1): number {
  return precisionRecallF1(pred, gold, positive).f1;
}

/**
 * Matthews correlation coefficient (GLUE CoLA), scikit-learn's `matthews_corrcoef` including its multiclass
 * generalization; 0 when undefined (a constant prediction or gold).
 */
export function matthews(pred: ArrayLike<number>, gold: ArrayLike<number>): number {
  const n = checkPair(pred, gold);
  const classes = new Map<number, number>();
  const cls = (v: number): number => {
    let k = classes.get(v);
    if (k === undefined) {
      k = classes.size;
      classes.set(v, k);
    }
    return k;
  };
  const pIdx = new Int32Array(n);
  const gIdx = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    pIdx[i] = cls(pred[i]);
    gIdx[i] = cls(gold[i]);
  }
  const k = classes.size;
  const tSum = new Float64Array(k);
  const pSum = new Float64Array(k);
  let correct = 0;
  for (let i = 0; i < n; i++) {
    tSum[gIdx[i]]++;
    pSum[pIdx[i]]++;
    if (pIdx[i] === gIdx[i]) correct++;
  }
  let tp = 0;
  let pp = 0;
  let tt = 0;
  for (let c = 0; c < k; c++) {
    tp += tSum[c] * pSum[c];
    pp += pSum[c] * pSum[c];
    tt += tSum[c] * tSum[c];
  }
  const covYtYp = correct * n - tp;
  const covYpYp = n * n - pp;
  const covYtYt = n * n - tt;
  if (covYpYp * covYtYt === 0) return 0;
  return covYtYp / Math.sqrt(covYtYt * covYpYp);
}

/** Row-wise argmax of row-major logits [rows, numClasses] (first maximum wins). */
export function argmax(logits: ArrayLike<number>, numClasses: number): Int32Array {
  if (!Number.isInteger(numClasses) || numClasses < 1) throw invalidArg('numClasses', 'a positive integer', numClasses);
  if (!logits || logits.length % numClasses !== 0) throw invalidArg('logits', `an array whose length is a multiple of ${numClasses}`, logits);
  const rows = logits.length / numClasses;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < numClasses; c++) if (logits[r * numClasses + c] > logits[r * numClasses + best]) best = c;
    out[r] = best;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// SQuAD
// ---------------------------------------------------------------------------------------------------------

/** Python's `string.punctuation`. */
const PUNCT = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');
/** `\b(a|an|the)\b` with Python 3's Unicode word characters. */
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;

/** The official SQuAD answer normalization: lowercase, drop punctuation, drop articles, collapse whitespace. */
export function normalizeAnswer(s: string): string {
  let t = s.toLowerCase();
  let noPunct = '';
  for (const ch of t) if (!PUNCT.has(ch)) noPunct += ch;
  t = noPunct.replace(ARTICLES, ' ');
  return t.split(/\s+/).filter((w) => w.length > 0).join(' ');
}

function answerTokens(s: string): string[] {
  const n = normalizeAnswer(s);
  return n ? n.split(' ') : [];
}

/** 1 when the normalized strings are equal, else 0. */
export function squadExact(prediction: string, gold: string): number {
  return normalizeAnswer(prediction) === normalizeAnswer(gold) ? 1 : 0;
}

/** Token-overlap F1 of the normalized answers (official v2 script: 1 when both are empty, 0 when only one is). */
export function squadF1(prediction: string, gold: string): number {
  const p = answerTokens(prediction);
  const g = answerTokens(gold);
  if (p.length === 0 || g.length === 0) return p.length === g.length ? 1 : 0;
  const counts = new Map<string, number>();
  for (const t of g) counts.set(t, (counts.get(t) ?? 0) + 1);
  let same = 0;
  for (const t of p) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      same++;
      counts.set(t, c - 1);
    }
  }
  if (same === 0) return 0;
  const precision = same / p.length;
  const recall = same / g.length;
  return (2 * precision * recall) / (precision + recall);
}

/** What `squadMetrics` needs of an example (a `QAExample` fits). */
export interface SquadGold {
  id: string;
  answers: ReadonlyArray<{ text: string }>;
  isImpossible?: boolean;
}

export interface SquadScore {
  /** Percent. */
  exactMatch: number;
  /** Percent. */
  f1: number;
  total: number;
}

export interface SquadMetrics extends SquadScore {
  /** Examples with no prediction (scored 0). */
  missing: number;
  /** Answerable questions only (present when there are both kinds, as in the official v2 script). */
  hasAns?: SquadScore;
  /** Unanswerable questions only. */
  noAns?: SquadScore;
}

/**
 * Exact match and F1 in percent, the official SQuAD way: each prediction is scored against every gold answer
 * and the maximum is kept. Gold answers that normalize to '' are dropped; a question with none left
 * (an impossible v2 question) has the gold answer '' — so predicting '' scores 100, anything else 0.
 * Every example counts: a missing prediction scores 0 (reported in `missing`).
 */
export function squadMetrics(predictions: Readonly<Record<string, string>> | ReadonlyMap<string, string>, examples: readonly SquadGold[]): SquadMetrics {
  if (!predictions || typeof predictions !== 'object') throw invalidArg('predictions', 'an object {id: answer text}', predictions);
  if (!Array.isArray(examples as unknown)) throw invalidArg('examples', 'an array of QA examples', examples);
  const get = (id: string): string | undefined => {
    if (predictions instanceof Map) return (predictions as ReadonlyMap<string, string>).get(id);
    const rec = predictions as Readonly<Record<string, string>>;
    return Object.prototype.hasOwnProperty.call(rec, id) ? rec[id] : undefined;
  };
  const all = { em: 0, f1: 0, n: 0 };
  const has = { em: 0, f1: 0, n: 0 };
  const no = { em: 0, f1: 0, n: 0 };
  let missing = 0;
  for (const ex of examples) {
    const golds = ex.answers.map((a) => a.text).filter((t) => normalizeAnswer(t) !== '');
    const answerable = golds.length > 0;
    if (!answerable) golds.push('');
    const pred = get(ex.id);
    let em = 0;
    let f1 = 0;
    if (typeof pred !== 'string') missing++;
    else {
      for (const g of golds) {
        em = Math.max(em, squadExact(pred, g));
        f1 = Math.max(f1, squadF1(pred, g));
      }
    }
    for (const acc of [all, answerable ? has : no]) {
      acc.em += em;
      acc.f1 += f1;
      acc.n++;
    }
  }
  const score = (a: { em: number; f1: number; n: number }): SquadScore => ({
    exactMatch: a.n ? (100 * a.em) / a.n : 0,
    f1: a.n ? (100 * a.f1) / a.n : 0,
    total: a.n,
  });
  const out: SquadMetrics = { ...score(all), missing };
  if (has.n > 0 && no.n > 0) {
    out.hasAns = score(has);
    out.noAns = score(no);
  }
  return out;
}

/** ROUGE F-measures (fractions), averaged over the pairs: what summarization reports. */
export interface RougeScores {
  rouge1: number;
  rouge2: number;
  rougeL: number;
}

/** rouge-score's default tokenizer: lower case, every run of characters other than a-z and 0-9 is a space. */
function rougeTokens(s: string): string[] {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, ' ')
    .trim()
    .split(' ')
    .filter((w) => w !== '');
}

/**
 * ROUGE-1, ROUGE-2 and ROUGE-L F1 of each prediction against its reference, averaged, as Google's rouge-score
 * computes them (its tokenizer, no stemming; ROUGE-L over the whole text as one sequence), by js-rouge's n-gram
 * and LCS scores. An empty prediction or reference scores 0.
 */
export function rouge(predictions: readonly string[], references: readonly string[]): RougeScores {
  if (!Array.isArray(predictions) || !Array.isArray(references)) throw new BlockpruneError('E_INVALID_ARG', 'rouge: predictions and references must be arrays of strings');
  if (predictions.length !== references.length)
    throw new BlockpruneError('E_INVALID_ARG', `rouge: ${predictions.length} predictions for ${references.length} references`);
  if (predictions.length === 0) throw new BlockpruneError('E_INVALID_ARG', 'rouge: no predictions');
  const opts = { tokenizer: rougeTokens, caseSensitive: true };
  const sum = { rouge1: 0, rouge2: 0, rougeL: 0 };
  predictions.forEach((p, i) => {
    const r = references[i];
    if (typeof p !== 'string' || typeof r !== 'string') throw new BlockpruneError('E_INVALID_ARG', `rouge: pair ${i} is not two strings`);
    if (rougeTokens(p).length === 0 || rougeTokens(r).length === 0) return;
    sum.rouge1 += jsRouge.n(p, r, { ...opts, n: 1 });
    sum.rouge2 += rougeTokens(p).length > 1 && rougeTokens(r).length > 1 ? jsRouge.n(p, r, { ...opts, n: 2 }) : 0;
    sum.rougeL += jsRouge.l(p, r, { ...opts, segmenter: (s: string) => [s] });
  });
  const n = predictions.length;
  return { rouge1: sum.rouge1 / n, rouge2: sum.rouge2 / n, rougeL: sum.rougeL / n };
}
