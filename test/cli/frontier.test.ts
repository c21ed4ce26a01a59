/**
 * `blockprune frontier` on a tiny SST-2 set in GLUE's layout (hidden 32, 1 layer, 2 lambdas, 1 epoch): one
 * point per lambda plus the dense model in frontier.json and frontier.md, a PNG whose IHDR gives the plot's
 * size, an SVG with the axis titles and the legend; bad options refused before anything is written.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { plotFrontier } from '../../lib/report/plot';
import { runCli as cli, tempDir } from '../helpers';

const rows = (n: number, from = 0) => 'sentence\tlabel\n' + Array.from({ length: n }, (_, i) => `${(from + i) % 2 ? 'a fine good film' : 'a dull bad film'} ${from + i}\t${(from + i) % 2}\n`).join('');

/** GLUE's SST-2 layout: train.tsv, dev.tsv and an unlabelled test.tsv. */
function glueSst2(dir: string): string {
  mkdirSync(join(dir, 'sst2'), { recursive: true });
  writeFileSync(join(dir, 'sst2', 'train.tsv'), rows(48));
  writeFileSync(join(dir, 'sst2', 'dev.tsv'), rows(16, 100));
  writeFileSync(join(dir, 'sst2', 'test.tsv'), 'index\tsentence\n' + Array.from({ length: 9 }, (_, i) => `${i}\ta film ${i}\n`).join(''));
  return dir;
}

/** Width and height from a PNG's signature and IHDR chunk. */
function pngSize(buf: Buffer): { width: number; height: number } {
  if (!buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) throw new Error('not a PNG signature');
  if (buf.toString('ascii', 12, 16) !== 'IHDR') throw new Error('no IHDR first');
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

const SMALL = ['--dense-epochs', '1', '--epochs', '1', '--hidden', '32', '--layers', '1', '--heads', '2', '--ffn', '64', '--max-length', '16', '--batch-size', '8', '--latency-runs', '2'];

test.serial('frontier on GLUE-layout SST-2: one point per lambda plus dense, a table, a PNG of the expected size and an SVG with axes and legend', (t) => {
  const tmp = tempDir();
  try {
    const out = join(tmp.path, 'out');
    const r = cli(['frontier', '--task', 'sst2', '--data', glueSst2(tmp.path), '--lambdas', '1,20', ...SMALL, '--output', out]);
    t.is(r.code, 0, r.err + r.out.slice(-2000));

    const json = JSON.parse(readFileSync(join(out, 'frontier.json'), 'utf8'));
    t.deepEqual(json.rows.map((x: { lambda?: number }) => x.lambda), [undefined, 1, 20], 'the dense model first, then each lambda');
    t.deepEqual(json.rows[0].speedups.map((s: { speedup: number }) => s.speedup), [1, 1], 'the dense model is its own reference');
    for (const row of json.rows.slice(1)) {
      t.true(row.accuracy >= 0 && row.accuracy <= 100);
      t.true(row.density > 0 && row.density <= 1);
      t.true(row.speedups.every((s: { speedup: number }) => s.speedup > 0 && Number.isFinite(s.speedup)));
      t.true(existsSync(join(row.outputDir, 'compact', 'config.json')), `${row.outputDir}/compact saved`);
      // Its figures are the job's own report of that lambda.
      const rep = JSON.parse(readFileSync(join(row.outputDir, 'report.json'), 'utf8'));
      t.is(row.accuracy, rep.compact.accuracy);
      t.is(row.parameters, rep.parameters.compact);
      // The int8 point: the job's quantized compact model, its speed-up over the dense fp32 model of that run.
      const q = rep.quantized.find((x: { dtype: string }) => x.dtype === 'int8');
      t.is(row.int8.accuracy, q.metrics.accuracy);
      t.deepEqual(row.int8.speedups.map((s: { speedup: number }) => s.speedup), q.latency.map((l: { ms: number }, i: number) => rep.latency[i].denseMs / l.ms));
    }
    t.is(json.rows[0].int8, undefined, 'no int8 point for the dense model');

    const md = readFileSync(join(out, 'frontier.md'), 'utf8');
    t.regex(md, /\| lambda \| encoder density \| accuracy \(%\) \| parameters \| speed-up 1x16 \| speed-up 8x16 \| int8 accuracy \(%\) \| int8 speed-up 1x16 \| int8 speed-up 8x16 \|/);
    t.is(md.split('\n').filter((l) => /^\| (dense|1|20) \|/.test(l)).length, 3, md);

    // The PNG is the SVG drawn at scale 2: its IHDR size is twice the SVG's.
    const svg = readFileSync(join(out, 'frontier.svg'), 'utf8');
    const m = /^<svg[^>]* width="(\d+)" height="(\d+)"/.exec(svg);
    t.truthy(m, svg.slice(0, 200));
    const size = pngSize(readFileSync(join(out, 'frontier.png')));
    t.deepEqual(size, { width: 2 * Number(m![1]), height: 2 * Number(m![2]) });
    t.true(size.width > 2 * 480 && size.height > 2 * 320, 'at least the plotting area');
    t.regex(r.out, new RegExp(`frontier\\.png \\(${size.width}x${size.height}\\)`));
    for (const text of ['accuracy (%)', 'speed-up over the dense model (x, batch 8 x 16)', 'sst2: accuracy vs speed-up', 'dense model', 'fine-pruned (compact)', 'fine-pruned (compact, int8)', 'λ 1', 'λ 20', 'λ 20 int8'])
      t.true(svg.includes(`>${text}<`), `the SVG draws "${text}"`);
  } finally {
    tmp.cleanup();
  }
});

test.serial('frontier --speedups: one point per speed-up target, each pruned to its budget, the table says target and measurement', (t) => {
  const tmp = tempDir();
  try {
    const out = join(tmp.path, 'out');
    const args = ['--dense-epochs', '1', '--epochs', '1', '--hidden', '64', '--layers', '2', '--heads', '4', '--ffn', '128', '--max-length', '16',
      '--batch-size', '8', '--latency-runs', '2', '--attention-block', '16x16', '--mask-lr', '0.1'];
    const r = cli(['frontier', '--task', 'sst2', '--data', glueSst2(tmp.path), '--speedups', '1.05,1.1', '--shape', '16x32', ...args, '--output', out]);
    t.is(r.code, 0, r.err + r.out.slice(-2000));
    const json = JSON.parse(readFileSync(join(out, 'frontier.json'), 'utf8'));
    t.is(json.rows.length, 3);
    t.deepEqual(json.rows.map((x: { budget?: { target: number } }) => x.budget?.target), [undefined, 1.05, 1.1]);
    for (const row of json.rows.slice(1)) {
      t.like(row.budget, { kind: 'speedup', shape: [16, 32] });
      t.true(row.budget.predicted >= row.budget.target - 1e-9, `the masks fitted to ${row.budget.target}x: predicted ${row.budget.predicted}`);
      t.true(existsSync(join(out, `speedup-${row.budget.target}`, 'compact', 'config.json')));
      t.like(JSON.parse(readFileSync(join(row.outputDir, 'report.json'), 'utf8')).budget, { target: row.budget.target });
    }
    const md = readFileSync(join(out, 'frontier.md'), 'utf8');
    t.regex(md, /\| target speed-up \| encoder density \|/);
    t.regex(md, /\| 1\.05x \(measured [\d.]+x at 16x32\) \|/);
  } finally {
    tmp.cleanup();
  }
});

test('frontier refuses bad options before any work, naming the flag, and writes nothing', (t) => {
  const tmp = tempDir();
  try {
    const data = glueSst2(tmp.path);
    const out = join(tmp.path, 'out');
    const cases: Array<[string[], RegExp]> = [
      [[], /frontier needs --lambdas/],
      [['--lambdas', '1,x'], /--lambdas/],
      [['--lambdas', '5,5'], /distinct lambdas for --lambdas/],
      [['--lambdas', '-1'], /--lambdas/],
      [['--lambdas', '1', '--lambda', '3'], /unknown option --lambda for frontier.*did you mean --lambdas/],
      [['--lambdas', '1', '--nproc', '2'], /unknown option --nproc/],
      [['--lambdas', '1', '--batch-size', '0'], /--batch-size/],
      [['--lambdas', '1', '--speedups', '2'], /--lambdas .* or --speedups .*not both/],
      [['--speedups', '1,2'], /--speedups/],
      [['--lambdas', '1', '--shape', '1x16'], /--shape is the shape of --speedups targets/],
      [['--speedups', '2', '--target-speedup', '3'], /the frontier sweeps --speedups/],
    ];
    for (const [args, why] of cases) {
      const r = cli(['frontier', '--task', 'sst2', '--data', data, '--output', out, ...args]);
      t.is(r.code, 2, `${args.join(' ')}: ${r.err}`);
      t.regex(r.err, why);
      t.false(existsSync(out), `${args.join(' ')}: nothing written`);
    }
  } finally {
    tmp.cleanup();
  }
});

test('plotFrontier checks its points before writing anything (coded errors that name the point)', async (t) => {
  const tmp = tempDir();
  try {
    const file = join(tmp.path, 'p.png');
    const bad: Array<[unknown, RegExp]> = [
      [[], /points/],
      [[{ label: 'dense', accuracy: 80, speedup: 0 }], /points\[0\]\.speedup/],
      [[{ label: 'dense', accuracy: 80, speedup: 1 }, { label: 'x', accuracy: Number.NaN, speedup: 2, lambda: 1 }], /points\[1\]\.accuracy/],
    ];
    for (const [points, why] of bad) {
      const e = await t.throwsAsync(plotFrontier(points as never, file), { message: why });
      t.is((e as { code?: string }).code, 'E_INVALID_ARG');
    }
    t.false(existsSync(file));
  } finally {
    tmp.cleanup();
  }
});
