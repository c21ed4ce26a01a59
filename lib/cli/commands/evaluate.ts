/**
 * `blockprune evaluate <model>`: a model's figures on one split of a task (transformers' `run_glue --do_eval`,
 * `run_qa --do_eval`): accuracy (and F1 of the positive class for two-class tasks) for classification, exact
 * match and F1 with SQuAD's official normalisation for squad. The model's own tokenizer; a model whose head
 * does not fit the task is refused, naming both.
 */
import { ClassificationDataset } from '../../data/classification-dataset';
import { QADataset } from '../../data/qa-dataset';
import { TASK_LABELS } from '../../data/tasks';
import { resolveModel, type HubOptions } from '../../hub/hub';
import { BertModel } from '../../model/model';
import { loadTokenizer } from '../../model/pipelines';
import { qaWindowOptions } from '../../model/qa-options';
import { writeFileAtomicSync } from '../../runtime/atomic';
import * as v from '../../runtime/validate';
import { checkModelTask, Command, configTask, HUB_FLAGS, HUB_HELP, hubFlags, modelDirArg } from '../command';
import { EVAL_SPLITS, EVAL_TASKS, EvalSplit, EvalTask, loadClassificationSplit, loadSquadSplit } from '../eval-data';
import { bool, choiceFlag, deviceFlag, intFlag, numFlag, str, UsageError } from '../flags';
import { evaluateClassifier, evaluateQuestionAnswering } from '../job';

interface EvaluateArgs {
  model: string;
  task: EvalTask;
  data?: string;
  split?: EvalSplit;
  limit?: number;
  seed: number;
  batchSize?: number;
  maxLength?: number;
  docStride?: number;
  nullThreshold?: number;
  predictions?: string;
  json: boolean;
  tokenizer?: string;
  device: string;
  hub: HubOptions;
}

const HELP = `Usage: blockprune evaluate <model-dir|org/name> --task sst2|boolq|rte|spam|squad [--data DIR] [--split dev|test|train]
                           [--limit N] [--json]

Evaluates a model on a split of a task's data with its own tokenizer: accuracy, and F1 of the positive class
(${['sst2', 'boolq', 'rte', 'spam'].map((t) => `${t}: ${TASK_LABELS[t as 'sst2'][1]}`).join(', ')}) for classification; exact match and F1 (SQuAD's
official normalisation; SQuAD 2.0 also per answerable / unanswerable question) for squad. The model's head must
fit the task (config.json's architectures): a classifier for squad, or a question-answering model for sst2, is
refused (exit 2), as is a classifier whose labels are not the task's.

  --task TASK          sst2, boolq, rte, spam (classification) or squad (question answering)
  --data DIR           data folder laid out as ../shared/data (sst2/, boolq/, superglue_rte/, squad/), the task's
                       own folder, or for squad the file itself
  --split dev|test|train   the file of that split (sst2: dev.tsv...; boolq, rte: val.jsonl is dev; squad:
                       dev*.json); test files without labels are refused. Default: the set \`blockprune train\`
                       evaluates on (sst2: test.tsv when labelled, else dev.tsv; boolq, rte, spam: its seeded 20%)
  --seed N (42)        the job's seed, for the splits it makes (spam; boolq and rte without a train file)
  --limit N            the first N examples (questions for squad)
  --batch-size N (64; squad 32)  --max-length N (128; squad 384, at most the model's positions)
  --doc-stride N       squad: tokens shared by consecutive windows (128, at most a third of the window)
  --null-score-diff-threshold X   squad 2.0: answer '' when the null score beats the best span by more (0)
  --predictions FILE   squad: write the answers as JSON {id: answer} (run_qa's predictions.json)
  --json               print the figures as one JSON object
  --tokenizer DIR      another tokenizer than the model's   --device cpu|cuda|cuda:N (cpu)

What was read is said on stderr; the figures go to stdout.

${HUB_HELP}`;

/**
 * The dataset's class of each of the model's classes: by name when the model's id2label holds the task's label
 * names (any case, any order), by position when it holds transformers' placeholders (LABEL_0, LABEL_1...).
 * Other names, or another count, are refused: the figures would compare unrelated classes.
 */
function labelMapFor(modelLabels: readonly string[], task: Exclude<EvalTask, 'squad'>, shown: string): { map: number[]; byName: boolean } {
  const names = TASK_LABELS[task];
  const idx = modelLabels.map((l) => names.indexOf(l.toLowerCase()));
  if (modelLabels.length === names.length && new Set(idx).size === names.length && !idx.includes(-1)) return { map: idx, byName: true };
  if (modelLabels.length === names.length && modelLabels.every((l, k) => l === `LABEL_${k}`)) return { map: names.map((_, k) => k), byName: false };
  throw new UsageError(`--task ${task} has the labels ${names.join(', ')}, but ${shown} has ${modelLabels.join(', ')} (config.json's id2label)`);
}

export const evaluateCommand: Command<EvaluateArgs> = {
  name: 'evaluate',
  synopsis: 'evaluate <model-dir>',
  summary: 'accuracy and F1 (classification) or EM and F1 (squad) of a model on a split of a task',
  help: HELP,
  flags: {
    task: str, data: str, split: str, limit: str, seed: str, 'batch-size': str, 'max-length': str, 'doc-stride': str,
    'null-score-diff-threshold': str, predictions: str, json: bool, tokenizer: str, device: str, ...HUB_FLAGS,
  },
  args({ values, positionals }) {
    const model = modelDirArg(positionals, 1, 'evaluate needs exactly one <model-dir>');
    if (values.task === undefined) throw new UsageError(`evaluate needs --task (${EVAL_TASKS.join(', ')})`);
    const task = choiceFlag(values, 'task', EVAL_TASKS) as EvalTask;
    if (values.data !== undefined) v.string('--data', values.data, { nonEmpty: true });
    if (values.tokenizer !== undefined) v.modelDirectory('--tokenizer', values.tokenizer, 'tokenizer directory');
    if (task !== 'squad') for (const f of ['doc-stride', 'null-score-diff-threshold', 'predictions']) if (values[f] !== undefined) throw new UsageError(`--${f} is for --task squad`);
    const predictions = values.predictions === undefined ? undefined : v.writableFile('--predictions', values.predictions);
    return {
      model,
      task,
      data: values.data as string | undefined,
      split: choiceFlag(values, 'split', EVAL_SPLITS),
      limit: intFlag(values, 'limit', 1),
      seed: intFlag(values, 'seed', 0) ?? 42,
      batchSize: intFlag(values, 'batch-size', 1),
      maxLength: intFlag(values, 'max-length', 8),
      docStride: intFlag(values, 'doc-stride', 0),
      nullThreshold: numFlag(values, 'null-score-diff-threshold'),
      predictions,
      json: values.json === true,
      tokenizer: values.tokenizer as string | undefined,
      device: deviceFlag(values),
      hub: hubFlags(values),
    };
  },
  async run(a) {
    const dir = await resolveModel(a.model, a.hub, '<model-dir>');
    const head = a.task === 'squad' ? 'question-answering' : 'text-classification';
    // Refused before anything is read: a bare encoder or another head would be evaluated with a random head.
    checkModelTask(dir, a.model, head, `--task ${a.task}`);
    if (!configTask(dir)) throw new UsageError(`${a.model}: its config.json names no architecture, so its head cannot be told (--task ${a.task} needs ${head})`);
    const tokenizer = loadTokenizer(dir, a.tokenizer);
    const model = await BertModel.fromPretrained(dir, { task: head, device: a.device });
    try {
      const positions = Math.min(512, model.dimensions.maxSequenceLength);
      if (a.maxLength !== undefined && a.maxLength > positions)
        throw new UsageError(`--max-length must be at most ${positions} (the model's positions), got ${a.maxLength}`);
      const say = (line: string) => console.error(line);
      let result: Record<string, unknown>;
      if (a.task === 'squad') {
        const data = await loadSquadSplit(a.data, a.split, a.limit);
        const window = qaWindowOptions({ maxSeqLength: a.maxLength, docStride: a.docStride }, positions);
        const set = new QADataset(data.examples, tokenizer, window);
        say(`squad${data.version2 ? ' 2.0' : ''}: ${data.examples.length} questions (${set.length} windows of ${window.maxLength} tokens, stride ${window.docStride}) from ${data.source}`);
        const { metrics, predictions } = await evaluateQuestionAnswering(model, set, a.batchSize ?? 32, { nullScoreDiffThreshold: a.nullThreshold });
        if (a.predictions) writeFileAtomicSync(a.predictions, JSON.stringify(predictions, null, 2));
        result = { ...metrics };
      } else {
        const labels = labelMapFor(model.labels, a.task, a.model);
        const data = await loadClassificationSplit(a.task, a.data, a.split, { seed: a.seed, limit: a.limit });
        const set = new ClassificationDataset(data.examples, tokenizer, { maxLength: a.maxLength ?? Math.min(128, positions), tokenTypes: model.dimensions.typeVocabSize > 1 });
        say(`${a.task}: ${data.examples.length} examples from ${data.source}; labels ${labels.byName ? 'matched by name' : 'taken in order'}: ${model.labels.join(', ')} -> ${TASK_LABELS[a.task].join(', ')}`);
        result = { ...(await evaluateClassifier(model, set, a.batchSize ?? 64, labels.map)), examples: data.examples.length };
      }
      const out = { model: a.model, task: a.task, split: a.split ?? 'default', ...result };
      if (a.json) console.log(JSON.stringify(out));
      else console.log(formatResult(out));
    } finally {
      model.dispose();
    }
  },
};

/** One line per figure: `accuracy 81.19%`, and SQuAD 2.0's answerable / unanswerable parts. */
function formatResult(r: Record<string, unknown>): string {
  const pct = (x: unknown) => `${(x as number).toFixed(2)}%`;
  const lines = [`${r.model} on ${r.task} (${r.split}):`];
  if (r.task === 'squad') {
    lines.push(`  exact match ${pct(r.exactMatch)}, F1 ${pct(r.f1)} over ${r.total} questions${r.missing ? ` (${r.missing} without a prediction)` : ''}`);
    for (const [k, name] of [['hasAns', 'answerable'], ['noAns', 'unanswerable']] as const) {
      const s = r[k] as { exactMatch: number; f1: number; total: number } | undefined;
      if (s) lines.push(`  ${name}: exact match ${pct(s.exactMatch)}, F1 ${pct(s.f1)} over ${s.total}`);
    }
  } else lines.push(`  accuracy ${pct(r.accuracy)}${r.f1 !== undefined ? `, F1 ${pct(r.f1)}` : ''} over ${r.examples} examples`);
  return lines.join('\n');
}
