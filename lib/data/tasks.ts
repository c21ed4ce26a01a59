/** The task table: label names and the columns each GLUE / SuperGLUE task's files use, and label parsing. */
import { describe, RowError } from './rows';

export const GLUE_TASKS = ['sst2', 'rte', 'mrpc', 'mnli', 'qnli', 'qqp', 'cola'] as const;
export type GlueTask = (typeof GLUE_TASKS)[number];

/**
 * Label names per task; a label is the index into its list. Integer labels in files (HF ClassLabel values, GLUE
 * 0/1 columns) use the same order as the HF `glue` / `super_glue` datasets.
 */
export const TASK_LABELS: Readonly<Record<GlueTask | 'boolq' | 'spam', readonly string[]>> = Object.freeze({
  sst2: Object.freeze(['negative', 'positive']),
  rte: Object.freeze(['entailment', 'not_entailment']),
  mrpc: Object.freeze(['not_equivalent', 'equivalent']),
  mnli: Object.freeze(['entailment', 'neutral', 'contradiction']),
  qnli: Object.freeze(['entailment', 'not_entailment']),
  qqp: Object.freeze(['not_duplicate', 'duplicate']),
  cola: Object.freeze(['unacceptable', 'acceptable']),
  boolq: Object.freeze(['false', 'true']),
  spam: Object.freeze(['ham', 'spam']),
});

/**
 * Where each field of a classification row is looked up: the first candidate column / key present wins
 * (exact name first, then case-insensitive). `headerless` names the columns of a TSV file whose first line is not
 * a header (GLUE CoLA train/dev).
 */
export interface ClassificationColumns {
  text: readonly string[];
  textPair?: readonly string[];
  label: readonly string[];
  id?: readonly string[];
  labelNames: readonly string[];
  headerless?: readonly string[];
}

/**
 * Column names per task (TSV headers, jsonl keys and parquet columns alike):
 * - sst2: `sentence`, `label` (0/1 or negative/positive); id `idx`/`index`/`id`
 * - cola: `sentence`, `label`; GLUE train/dev TSVs have no header: `source  label  original_label  sentence`
 * - rte:  `sentence1`|`premise`, `sentence2`|`hypothesis`, `label` (entailment/not_entailment or 0/1)
 * - mrpc: `#1 String`|`sentence1`, `#2 String`|`sentence2`, `Quality`|`label` (0/1)
 * - mnli: `sentence1`|`premise`, `sentence2`|`hypothesis`, `gold_label`|`label` (names or 0/1/2)
 * - qnli: `question`, `sentence`, `label` (entailment/not_entailment or 0/1)
 * - qqp:  `question1`, `question2`, `is_duplicate`|`label` (0/1)
 * - boolq: `question`, `passage`, `label`|`answer` ("true"/"false", booleans or 0/1)
 */
export const TASK_COLUMNS: Readonly<Record<GlueTask | 'boolq', ClassificationColumns>> = Object.freeze({
  sst2: { text: ['sentence'], label: ['label'], id: ['idx', 'index', 'id'], labelNames: TASK_LABELS.sst2 },
  cola: {
    text: ['sentence'],
    label: ['label'],
    id: ['idx', 'index', 'id'],
    labelNames: TASK_LABELS.cola,
    headerless: ['source', 'label', 'original_label', 'sentence'],
  },
  rte: {
    text: ['sentence1', 'premise'],
    textPair: ['sentence2', 'hypothesis'],
    label: ['label'],
    id: ['idx', 'index', 'id'],
    labelNames: TASK_LABELS.rte,
  },
  mrpc: {
    text: ['#1 String', 'sentence1', '#1_String'],
    textPair: ['#2 String', 'sentence2', '#2_String'],
    label: ['Quality', 'label'],
    id: ['idx', 'index', 'id'],
    labelNames: TASK_LABELS.mrpc,
  },
  mnli: {
    text: ['sentence1', 'premise'],
    textPair: ['sentence2', 'hypothesis'],
    label: ['gold_label', 'label'],
    id: ['idx', 'index', 'pairID', 'id'],
    labelNames: TASK_LABELS.mnli,
  },
  qnli: {
    text: ['question'],
    textPair: ['sentence'],
    label: ['label'],
    id: ['idx', 'index', 'id'],
    labelNames: TASK_LABELS.qnli,
  },
  qqp: {
    text: ['question1'],
    textPair: ['question2'],
    label: ['is_duplicate', 'label'],
    id: ['idx', 'id', 'index'],
    labelNames: TASK_LABELS.qqp,
  },
  boolq: {
    text: ['question'],
    textPair: ['passage'],
    label: ['label', 'answer'],
    id: ['idx', 'id', 'index'],
    labelNames: TASK_LABELS.boolq,
  },
});

/** A label value (string name or number, boolean, integer, bigint) → class index in `names`. */
export function parseLabel(v: unknown, names: readonly string[]): number {
  if (typeof v === 'boolean') {
    if (names.length !== 2) throw new RowError(`boolean label ${v} for a ${names.length}-class task`);
    return v ? 1 : 0;
  }
  let n: number | undefined;
  if (typeof v === 'bigint') n = Number(v);
  else if (typeof v === 'number') n = v;
  else if (typeof v === 'string') {
    const s = v.trim();
    if (/^[+-]?\d+$/.test(s)) n = Number(s);
    else {
      const lc = s.toLowerCase();
      const i = names.findIndex((name) => name.toLowerCase() === lc);
      if (i >= 0) return i;
      throw new RowError(`unknown label ${describe(v)} (expected one of ${names.join(', ')} or 0..${names.length - 1})`);
    }
  } else throw new RowError(`label is ${describe(v)}`);
  if (!Number.isInteger(n) || n < 0 || n >= names.length) {
    const hint = n === -1 ? ' (unlabelled test split?)' : '';
    throw new RowError(`label ${describe(v)} is not a class index 0..${names.length - 1}${hint}`);
  }
  return n;
}
