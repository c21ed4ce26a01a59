/**
 * `blockprune bench --dtype` (issue 16): the flag's parsing, and the dtype table on a tiny model with
 * --vs-onnxruntime: ours measured in every dtype (model.quantize()), onnxruntime's fp32 and int8 (int8 on
 * exportOnnx's quantized file), onnxruntime's bf16 "not available" with the reason, never a number. No timing
 * is asserted.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BertModel } from '../../lib/model/model';
import { runCli, tempDir } from '../helpers';

const quick = ['--runs', '2', '--warmup', '1', '--rounds', '2'];

test('--dtype is checked like every list flag: unknown dtypes, empty items', (t) => {
  for (const [args, re] of [
    [['bench', '--synthetic', '--dtype', 'fp16'], /Expected one of .*fp32.*bf16.*int8.* for --dtype but received the string "fp16"/],
    [['bench', '--synthetic', '--dtype', 'int8,'], /for --dtype/],
    [['bench', '--synthetic', '--dtype'], /--dtype/],
  ] as Array<[string[], RegExp]>) {
    const r = runCli(args);
    t.is(r.code, 2, `${args.join(' ')}: ${r.err}`);
    t.regex(r.err, re);
  }
  t.regex(runCli(['bench', '--help']).out, /--dtype fp32,bf16,int8/);
});

/** The rows of one shape's dtype table: "model dtype ours ort ours/ort ours-vs-fp32 ort-vs-fp32". */
function tableRows(out: string, shape: string): string[][] {
  const at = out.indexOf(`dtypes at ${shape} `);
  if (at < 0) return [];
  const lines = out.slice(at).split('\n').slice(2);
  const rows: string[][] = [];
  for (const l of lines) {
    if (!/^ {2}\S/.test(l) || l.startsWith('  (')) break;
    rows.push(l.trim().split(/ {2,}/));
  }
  return rows;
}

test.serial('bench --vs-onnxruntime --dtype fp32,bf16,int8 on a tiny model: ours in every dtype, onnxruntime in fp32 and int8, its bf16 not available', async (t) => {
  const tmp = tempDir();
  try {
    const dir = join(tmp.path, 'm');
    const m = await BertModel.fromConfig({ vocab_size: 128, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 32 }, { task: 'text-classification', seed: 1 });
    await m.save(dir);
    m.dispose();
    const json = join(tmp.path, 'bench.json');
    const r = runCli(['bench', dir, ...quick, '--shapes', '1x16,2x8', '--vs-onnxruntime', '--dtype', 'fp32,bf16,int8', '--json', json]);
    t.is(r.code, 0, r.err);
    t.regex(r.out, /the same weights exported with exportOnnx quantize 'int8'/);
    const num = /^\d+\.\d\d$/;
    const ratio = /^\d+\.\d\dx$/;
    for (const shape of ['1x16', '2x8']) {
      const rows = tableRows(r.out, shape);
      t.deepEqual(rows.map((x) => x[1]), ['fp32', 'bf16', 'int8'], `${shape}: ${r.out}`);
      const [fp32, bf16, int8] = rows;
      // fp32: both runtimes measured, ratios 1.00x against themselves.
      t.regex(fp32[2], num);
      t.regex(fp32[3], num);
      t.regex(fp32[4], ratio);
      t.deepEqual(fp32.slice(5), ['1.00x', '1.00x']);
      // bf16: ours only (onnxruntime has no bf16 file), with its speed-up over our fp32; int8: both.
      t.regex(bf16[2], num);
      t.deepEqual([bf16[3], bf16[4], bf16[6]], ['not available', '-', '-']);
      t.regex(bf16[5], ratio);
      for (const c of [2, 3]) t.regex(int8[c], num);
      for (const c of [4, 5, 6]) t.regex(int8[c], ratio);
    }
    t.regex(r.out, /\(onnxruntime bf16: not available: no bf16 ONNX file/);
    const rows = JSON.parse(readFileSync(json, 'utf8')).results.filter((x: { dtype?: string }) => x.dtype);
    t.is(rows.length, 6);
    for (const x of rows) {
      t.true(x.ours_mean_ms > 0, `${x.dtype} ours`);
      t.is(x.ort_mean_ms === null, x.dtype === 'bf16', `${x.dtype} ort`);
      if (x.ort_mean_ms !== null) t.true(x.ort_mean_ms > 0);
      if (x.dtype === 'int8') t.true(x.ort_speedup_over_fp32 > 0);
    }

    // Without --vs-onnxruntime: onnxruntime's cells are "not measured", not numbers.
    const alone = runCli(['bench', dir, ...quick, '--shapes', '1x8', '--dtype', 'int8']);
    t.is(alone.code, 0, alone.err);
    const [f, i8] = tableRows(alone.out, '1x8');
    t.deepEqual([f[1], i8[1]], ['fp32', 'int8']);
    t.deepEqual([f[3], i8[3]], ['not available', 'not available']);
    t.regex(i8[2], /^\d+\.\d\d$/);
    t.regex(alone.out, /\(onnxruntime int8: not measured \(add --vs-onnxruntime\)\)/);
  } finally {
    tmp.cleanup();
  }
});
