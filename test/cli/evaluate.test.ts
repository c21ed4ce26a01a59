/**
 * `blockprune evaluate` on the shared data with small models trained here: its figures against a direct
 * computation (the text-classification pipeline and hand counting for SST-2; the official SQuAD scorer,
 * written out again here, over the predictions it writes), and models whose head or labels do not fit refused.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { ClassificationDataset } from '../../lib/data/classification-dataset';
import { loadGlue } from '../../lib/data/glue';
import { QADataset } from '../../lib/data/qa-dataset';
import { loadSquad } from '../../lib/data/squad';
import { TASK_LABELS } from '../../lib/data/tasks';
import { BertModel } from '../../lib/model/model';
import { pipeline } from '../../lib/model/pipelines';
import { BertTokenizer } from '../../lib/tokenizer/tokenizer';
import { SparseTrainer, TrainData } from '../../lib/training/trainer';
import { runCli, shared, tempDir, withShared } from '../helpers';

const cli = (args: string[]) => runCli(args);
const TOK = 'data/bert-base-uncased';
const GEOMETRY = { hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 128 };

/** A small model trained a few steps on `train` and saved with the shared bert-base-uncased tokenizer. */
async function trainSmall(dir: string, task: 'text-classification' | 'question-answering', train: TrainData, extra: Record<string, unknown> = {}): Promise<void> {
  const tok = BertTokenizer.fromDir(shared(TOK));
  const model = await BertModel.fromConfig({ vocab_size: tok.vocabSize, ...GEOMETRY, ...extra }, { task, seed: 3 });
  const r = await new SparseTrainer({ model, train, maxSteps: 12, batchSize: 16, learningRate: 2e-3, seed: 3, handleSigint: false, progress: false }).train();
  await r.model.save(dir);
  for (const f of ['tokenizer.json', 'vocab.txt']) copyFileSync(join(shared(TOK), f), join(dir, f));
  r.model.dispose();
}

withShared('data/sst2/train.tsv', 'data/sst2/dev.tsv', TOK).serial('evaluate sst2 --split dev: accuracy and F1 as the pipeline and hand counting give them; a head or labels that do not fit are refused', async (t) => {
  const tmp = tempDir();
  try {
    const tok = BertTokenizer.fromDir(shared(TOK));
    const train = new ClassificationDataset((await loadGlue('sst2', shared('data/sst2/train.tsv'), { limit: 192 })).examples, tok, { maxLength: 64 });
    const dir = join(tmp.path, 'cls');
    const id2label = { 0: 'negative', 1: 'positive' };
    await trainSmall(dir, 'text-classification', train, { num_labels: 2, id2label, label2id: { negative: 0, positive: 1 }, architectures: ['BertForSequenceClassification'] });

    const r = cli(['evaluate', dir, '--task', 'sst2', '--data', shared('data'), '--split', 'dev', '--limit', '150', '--json']);
    t.is(r.code, 0, r.err);
    t.regex(r.err, /sst2: 150 examples from .*dev\.tsv; labels matched by name/);
    const got = JSON.parse(r.out);

    // Direct: the pipeline's label for each text, counted by hand against the gold names.
    const dev = (await loadGlue('sst2', shared('data/sst2/dev.tsv'), { limit: 150 })).examples;
    const classify = await pipeline('text-classification', dir, { maxLength: 128 });
    const preds = await classify(dev.map((e) => e.text));
    classify.dispose();
    let ok = 0, tp = 0, fp = 0, fn = 0;
    preds.forEach((p, i) => {
      const gold = TASK_LABELS.sst2[dev[i].label];
      if (p.label === gold) ok++;
      if (p.label === 'positive' && gold === 'positive') tp++;
      else if (p.label === 'positive') fp++;
      else if (gold === 'positive') fn++;
    });
    const accuracy = (100 * ok) / dev.length;
    const f1 = (100 * 2 * tp) / (2 * tp + fp + fn);
    t.log(`evaluate: accuracy ${got.accuracy.toFixed(2)}% F1 ${got.f1.toFixed(2)}%; direct: ${accuracy.toFixed(2)}% / ${f1.toFixed(2)}% over ${dev.length}`);
    t.is(got.examples, 150);
    t.true(Math.abs(got.accuracy - accuracy) < 1e-9);
    t.true(Math.abs(got.f1 - f1) < 1e-9);

    // The human form says the same figures.
    const h = cli(['evaluate', dir, '--task', 'sst2', '--data', shared('data'), '--split', 'dev', '--limit', '150']);
    t.is(h.code, 0, h.err);
    t.true(h.out.includes(`accuracy ${accuracy.toFixed(2)}%, F1 ${f1.toFixed(2)}% over 150 examples`), h.out);

    // GLUE's own test.tsv has no labels: refused, naming it; a split the folder lacks: named with where it was looked for.
    const glue = join(tmp.path, 'glue', 'sst2');
    mkdirSync(glue, { recursive: true });
    writeFileSync(join(glue, 'test.tsv'), 'index\tsentence\n0\ta fine film\n');
    const unlabelled = cli(['evaluate', dir, '--task', 'sst2', '--data', join(tmp.path, 'glue'), '--split', 'test']);
    t.is(unlabelled.code, 1);
    t.regex(unlabelled.err, /\[E_BAD_DATA\] sst2: .*test\.tsv has no labels .*--split dev/);
    const missing = cli(['evaluate', dir, '--task', 'sst2', '--data', join(tmp.path, 'glue'), '--split', 'train']);
    t.is(missing.code, 1);
    t.regex(missing.err, /\[E_FILE_NOT_FOUND\] sst2: no train split under .*glue \(looked for sst2\/train\.tsv/);

    // Another task's labels, or a question-answering head: refused before any data is read, naming both.
    const rte = cli(['evaluate', dir, '--task', 'rte', '--data', shared('data')]);
    t.is(rte.code, 2, rte.err);
    t.regex(rte.err, /--task rte has the labels entailment, not_entailment, but .* has negative, positive/);
    const squad = cli(['evaluate', dir, '--task', 'squad', '--data', shared('data')]);
    t.is(squad.code, 2, squad.err);
    t.regex(squad.err, /--task squad asks for question-answering, but .* is a text-classification model/);
  } finally {
    tmp.cleanup();
  }
});

/** The official SQuAD v2.0 evaluation script's normalize_answer, compute_exact and compute_f1, written again here. */
function officialScores(prediction: string, golds: string[]): { em: number; f1: number } {
  const normalize = (s: string) =>
    s
      .toLowerCase()
      .split('')
      .filter((c) => !'!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'.includes(c))
      .join('')
      .replace(/\b(a|an|the)\b/g, ' ')
      .split(/\s+/)
      .filter(Boolean)
      .join(' ');
  const toks = (s: string) => (normalize(s) ? normalize(s).split(' ') : []);
  const f1Of = (p: string, g: string) => {
    const pt = toks(p);
    const gt = toks(g);
    if (pt.length === 0 || gt.length === 0) return pt.length === gt.length ? 1 : 0;
    const left = [...gt];
    let same = 0;
    for (const w of pt) {
      const k = left.indexOf(w);
      if (k >= 0) {
        same++;
        left.splice(k, 1);
      }
    }
    return same === 0 ? 0 : (2 * same) / (pt.length + gt.length);
  };
  const answers = golds.filter((g) => normalize(g) !== '');
  const gs = answers.length ? answers : [''];
  return { em: Math.max(...gs.map((g) => (normalize(g) === normalize(prediction) ? 1 : 0))), f1: Math.max(...gs.map((g) => f1Of(prediction, g))) };
}

withShared('data/squad/dev-v2.0-first5articles.json', TOK).serial('evaluate squad: EM and F1 as the official scorer gives them over the predictions it writes; a classifier is refused', async (t) => {
  const tmp = tempDir();
  try {
    const tok = BertTokenizer.fromDir(shared(TOK));
    const file = shared('data/squad/dev-v2.0-first5articles.json');
    const all = (await loadSquad(file)).examples;
    const train = new QADataset(all.slice(200, 296), tok, { maxLength: 128, docStride: 48 });
    const dir = join(tmp.path, 'qa');
    await trainSmall(dir, 'question-answering', train, { architectures: ['BertForQuestionAnswering'] });

    // run_qa's null threshold this high makes every answer a span (a model this small prefers the null answer).
    const preds = join(tmp.path, 'predictions.json');
    const r = cli(['evaluate', dir, '--task', 'squad', '--data', shared('data'), '--limit', '60', '--max-length', '128', '--null-score-diff-threshold', '1e9', '--predictions', preds, '--json']);
    t.is(r.code, 0, r.err);
    t.regex(r.err, /squad 2\.0: 60 questions \(\d+ windows of 128 tokens, stride 42\) from .*dev-v2\.0-first5articles\.json/);
    const got = JSON.parse(r.out);
    const answers: Record<string, string> = JSON.parse(readFileSync(preds, 'utf8'));
    const held = all.slice(0, 60);
    t.deepEqual(Object.keys(answers).sort(), held.map((e) => e.id).sort());
    let em = 0;
    let f1 = 0;
    for (const ex of held) {
      const a = answers[ex.id];
      t.true(a !== '' && ex.context.includes(a), `${ex.id}: a span of the context`);
      const s = officialScores(a, ex.answers.map((x) => x.text));
      em += s.em;
      f1 += s.f1;
    }
    t.log(`evaluate: EM ${got.exactMatch.toFixed(2)} F1 ${got.f1.toFixed(2)} (answerable ${got.hasAns.total}: F1 ${got.hasAns.f1.toFixed(2)}); official scorer: ${((100 * em) / 60).toFixed(2)} / ${((100 * f1) / 60).toFixed(2)}`);
    t.is(got.total, 60);
    t.true(Math.abs(got.exactMatch - (100 * em) / 60) < 1e-9);
    t.true(Math.abs(got.f1 - (100 * f1) / 60) < 1e-9);
    t.is(got.hasAns.total + got.noAns.total, 60);
    t.is(got.noAns.exactMatch, 0, 'no null answer was given');

    // The default threshold (0): the null answer where it scores best; the human form names both parts.
    const d = cli(['evaluate', dir, '--task', 'squad', '--data', shared('data'), '--limit', '60', '--max-length', '128']);
    t.is(d.code, 0, d.err);
    t.regex(d.out, /exact match [\d.]+%, F1 [\d.]+% over 60 questions\n  answerable: .* over 25\n  unanswerable: .* over 35/);

    const cls = cli(['evaluate', dir, '--task', 'sst2', '--data', shared('data')]);
    t.is(cls.code, 2, cls.err);
    t.regex(cls.err, /--task sst2 asks for text-classification, but .* is a question-answering model/);
  } finally {
    tmp.cleanup();
  }
});

test('evaluate: bad command lines exit 2 naming the flag, before any model is loaded (\'.\' is never read)', (t) => {
  for (const [args, re] of [
    [['evaluate', '.'], /evaluate needs --task \(spam, sst2, boolq, rte, squad\)/],
    [['evaluate', '.', '--task', 'sst3'], /--task/],
    [['evaluate', '.', '--task', 'sst2', '--split', 'validation'], /--split/],
    [['evaluate', '.', '--task', 'sst2', '--limit', '0'], /--limit/],
    [['evaluate', '.', '--task', 'sst2', '--doc-stride', '64'], /--doc-stride is for --task squad/],
    [['evaluate', '.', '--task', 'squad', '--null-score-diff-threshold', 'x'], /--null-score-diff-threshold/],
    [['evaluate', '.', '--task', 'sst2', '--limt', '5'], /did you mean --limit/],
    [['evaluate', '--task', 'sst2'], /evaluate needs exactly one <model-dir>/],
  ] as Array<[string[], RegExp]>) {
    const r = cli(args);
    t.is(r.code, 2, `${args.join(' ')}: ${r.err}`);
    t.regex(r.err, re);
    t.notRegex(r.err, /\n\s+at /, 'no stack');
  }
});
