/** lib/data/glue: GLUE / SuperGLUE classification files (real shared data and hand-made bad files). */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hasLabels, loadBoolQ, loadGlue } from '../../lib/data/glue';
import { TASK_COLUMNS, TASK_LABELS } from '../../lib/data/tasks';
import { tempDir } from '../helpers';
import { count, rejectsWith, shared, withShared } from './helpers';

const BOOLQ = 'data/boolq/val.jsonl';
const SST2 = 'data/sst2';
const RTE = 'data/superglue_rte/val.jsonl';

withShared(BOOLQ)('BoolQ validation jsonl: 3,270 examples, 2,033 true / 1,237 false', async (t) => {
  const file = shared(BOOLQ);
  const { examples, skipped } = await loadBoolQ(file);
  t.is(examples.length, 3270);
  t.is(skipped, 0);
  t.is(count(examples, (e) => e.label === 1), 2033);
  t.is(count(examples, (e) => e.label === 0), 1237);
  t.is(TASK_LABELS.boolq[1], 'true');
  t.true(examples.every((e) => typeof e.textPair === 'string' && e.textPair.includes(' -- ')));
  t.deepEqual(new Set(examples.map((e) => e.id)).size, 3270);
  const first = await loadBoolQ(file, { limit: 5 });
  t.is(first.examples.length, 5);
  t.deepEqual(first.examples, examples.slice(0, 5));
});

withShared(SST2)('SST-2 (ALPS split) TSV: test 872 (444/428), train 60,614, dev 6,735', async (t) => {
  const dir = shared(SST2);
  const test872 = await loadGlue('sst2', join(dir, 'test.tsv'));
  t.is(test872.examples.length, 872);
  t.is(count(test872.examples, (e) => e.label === 1), 444);
  t.is(count(test872.examples, (e) => e.label === 0), 428);
  t.is(test872.examples[0].text.trim(), "it 's a charming and often affecting journey .");
  const train = await loadGlue('sst2', join(dir, 'train.tsv'));
  const dev = await loadGlue('sst2', join(dir, 'dev.tsv'));
  t.is(train.examples.length, 60614);
  t.is(count(train.examples, (e) => e.label === 1), 33828);
  t.is(dev.examples.length, 6735);
  t.is(count(dev.examples, (e) => e.label === 1), 3741);
});

withShared(RTE)('SuperGLUE RTE jsonl: 277 examples, 146 entailment / 131 not_entailment', async (t) => {
  const file = shared(RTE);
  const { examples } = await loadGlue('rte', file);
  t.is(examples.length, 277);
  t.is(count(examples, (e) => TASK_LABELS.rte[e.label] === 'entailment'), 146);
  t.is(count(examples, (e) => TASK_LABELS.rte[e.label] === 'not_entailment'), 131);
  t.true(examples.every((e) => e.text.length > 0 && (e.textPair ?? '').length > 0));
});

test('bad jsonl rows name the file and line; skipInvalid skips and counts them', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const file = join(tmp.path, 'boolq.jsonl');
  const rows = [
    JSON.stringify({ question: 'q1', passage: 'p1', label: 'true', idx: 0 }),
    JSON.stringify({ question: 'q2', passage: 'p2', label: false, idx: 1 }),
    '{"question": "q3", "passage": ', // line 3: bad JSON
    JSON.stringify({ question: 'q4', passage: 'p4', label: 1, idx: 3 }),
    JSON.stringify({ question: 'q5', label: 'true', idx: 4 }), // line 5: no passage
    JSON.stringify({ question: 'q6', passage: 'p6', label: 'maybe', idx: 5 }), // line 6: unknown label
    '',
    JSON.stringify({ question: 'q8', passage: 'p8', answer: true }), // HF google/boolq style
  ];
  writeFileSync(file, rows.join('\n') + '\n');
  await rejectsWith(t, loadBoolQ(file), 'E_BAD_DATA', file, ':3:', 'invalid JSON');
  const r = await loadBoolQ(file, { skipInvalid: true });
  t.is(r.skipped, 3);
  t.deepEqual(
    r.examples.map((e) => [e.text, e.label]),
    [
      ['q1', 1],
      ['q2', 0],
      ['q4', 1],
      ['q8', 1],
    ],
  );
  t.is(r.skippedReasons.length, 3);
  t.true(r.skippedReasons[0].includes(`${file}:3:`));
  t.true(r.skippedReasons[1].includes(`${file}:5:`) && r.skippedReasons[1].includes('passage'));
  t.true(r.skippedReasons[2].includes(`${file}:6:`) && r.skippedReasons[2].includes('maybe'));
  // limit counts valid examples
  t.is((await loadBoolQ(file, { skipInvalid: true, limit: 3 })).examples.length, 3);
});

test('bad TSV rows: wrong column count, unknown label; missing header column', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const file = join(tmp.path, 'dev.tsv');
  writeFileSync(file, 'sentence\tlabel\ngood movie \t1\nbad \t0\nno label here\nweird \t7\n"quoted" text \t0\n');
  await rejectsWith(t, loadGlue('sst2', file), 'E_BAD_DATA', `${file}:4:`, 'columns');
  const r = await loadGlue('sst2', file, { skipInvalid: true });
  t.is(r.skipped, 2);
  t.true(r.skippedReasons[1].includes(`${file}:5:`));
  t.deepEqual(
    r.examples.map((e) => e.label),
    [1, 0, 0],
  );
  t.is(r.examples[2].text, '"quoted" text ', 'QUOTE_NONE: quotes are data');
  const noLabel = join(tmp.path, 'test.tsv');
  writeFileSync(noLabel, 'index\tsentence\n0\tsome text\n');
  await rejectsWith(t, loadGlue('sst2', noLabel), 'E_BAD_DATA', noLabel, 'label');
});

test('GLUE TSV layouts: MRPC (BOM, Quality), MNLI (gold_label by name), CoLA (no header), QQP, QNLI, RTE', async (t) => {
  const tmp = tempDir();
  t.teardown(tmp.cleanup);
  const w = (name: string, text: string): string => {
    const p = join(tmp.path, name);
    writeFileSync(p, text);
    return p;
  };
  const mrpc = await loadGlue(
    'mrpc',
    w('mrpc.tsv', '\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n1\t702876\t702977\tAmrozi accused his brother .\tReferring to him as " the witness " .\r\n0\t2108705\t2108831\tYucaipa owned Dominick \'s .\tYucaipa bought it .\r\n'),
  );
  t.deepEqual(
    mrpc.examples.map((e) => [e.label, e.textPair]),
    [
      [1, 'Referring to him as " the witness " .'],
      [0, 'Yucaipa bought it .'],
    ],
  );
  const mnliHeader = 'index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label';
  const mnli = await loadGlue(
    'mnli',
    w('mnli.tsv', `${mnliHeader}\n0\t1\t1e\tgov\t(x)\t(y)\t(X)\t(Y)\tThe cat sat.\tA cat sat.\tneutral\tentailment\n1\t2\t2c\tgov\t(x)\t(y)\t(X)\t(Y)\tIt rained.\tIt was dry.\tcontradiction\tcontradiction\n`),
  );
  t.deepEqual(
    mnli.examples.map((e) => [e.text, e.textPair, TASK_LABELS.mnli[e.label]]),
    [
      ['The cat sat.', 'A cat sat.', 'entailment'],
      ['It rained.', 'It was dry.', 'contradiction'],
    ],
  );
  const cola = await loadGlue('cola', w('cola.tsv', 'gj04\t1\t\tOur friends won\'t buy this analysis.\ngj04\t0\t*\tThey drank the pub.\n'));
  t.deepEqual(
    cola.examples.map((e) => [e.label, e.text]),
    [
      [1, "Our friends won't buy this analysis."],
      [0, 'They drank the pub.'],
    ],
  );
  const qqp = await loadGlue('qqp', w('qqp.tsv', 'id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n7\t15\t16\tHow are you?\tHow do you do?\t1\n'));
  t.deepEqual(qqp.examples[0], { text: 'How are you?', textPair: 'How do you do?', label: 1, id: '7' });
  const qnli = await loadGlue('qnli', w('qnli.tsv', 'index\tquestion\tsentence\tlabel\n0\tWhat?\tThis.\tnot_entailment\n'));
  t.is(qnli.examples[0].label, 1);
  const rte = await loadGlue('rte', w('rte.tsv', 'index\tsentence1\tsentence2\tlabel\n0\tA man sleeps.\tSomeone sleeps.\tentailment\n'));
  t.deepEqual(rte.examples[0], { text: 'A man sleeps.', textPair: 'Someone sleeps.', label: 0, id: '0' });
});

test('hasLabels: an unlabelled GLUE test.tsv, a jsonl test split (label -1) and labelled files', async (t) => {
  const tmp = tempDir();
  try {
    const cases: Array<[string, string, boolean]> = [
      ['test.tsv', 'index\tsentence\n0\ta film\n', false],
      ['dev.tsv', '\nsentence\tlabel\na film\t1\n', true],
      ['test.jsonl', '{"sentence": "a film", "label": -1, "idx": 0}\n', false],
      ['nolabel.jsonl', '{"sentence": "a film", "idx": 0}\n', false],
      ['dev.jsonl', '{"sentence": "a film", "label": 1}\n', true],
      ['rows.json', '[{"sentence": "a film", "label": "positive"}]', true],
      // No recognisable header: counted as labelled, so that the loader says what is wrong.
      ['odd.tsv', 'text\tclass\na film\t1\n', true],
    ];
    for (const [name, text, expected] of cases) {
      writeFileSync(join(tmp.path, name), text);
      t.is(await hasLabels(join(tmp.path, name), TASK_COLUMNS.sst2), expected, name);
    }
  } finally {
    tmp.cleanup();
  }
});
