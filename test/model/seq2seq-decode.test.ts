/**
 * The batch-1 decoding path (issue 18): one row per step goes through native/matvec.cc's matrix-vector product
 * (rows_linear) and the self-attention keys/values grow in place (native/kv_append.h, past its first 64-position
 * buffer here). On random BART and T5 models with widths that are not multiples of 16 (the kernels' SIMD tails:
 * d_model 36, head size 9, FFN 50), batch-1 steps give the full forward's logits at every position, and
 * onnxruntime's greedy ids on the exported graphs equal generate()'s; so do steps of 3 and 8 rows at once (beams, a
 * batch: matvec_rows). A model's large weights land on 2 MiB pages.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Seq2SeqModel } from '../../lib/model/seq2seq';
import { native } from '../../lib/runtime/native';
import { maxAbsDiff, rows, tempDir } from '../helpers';
import { loadOnnxSeq2Seq, onnxGreedy } from './onnx-seq2seq-run';

// forward (GEMM over all positions) and steps (matrix-vector products, one query row) sum in other orders;
// logits of these random models are O(1): float32 rounding ~1e-6.
const ATOL = 1e-5;
const TARGET = 70; // past the kv buffer's first capacity (64 positions): one regrowth

const ODD = {
  bart: {
    model_type: 'bart',
    architectures: ['BartForConditionalGeneration'],
    vocab_size: 203,
    d_model: 36,
    encoder_layers: 2,
    decoder_layers: 2,
    encoder_attention_heads: 4,
    decoder_attention_heads: 4,
    encoder_ffn_dim: 50,
    decoder_ffn_dim: 50,
    max_position_embeddings: 96,
    pad_token_id: 1,
    eos_token_id: 2,
    decoder_start_token_id: 2,
  },
  t5: {
    model_type: 't5',
    architectures: ['T5ForConditionalGeneration'],
    vocab_size: 203,
    d_model: 36,
    d_kv: 9,
    d_ff: 50,
    num_layers: 2,
    num_decoder_layers: 2,
    num_heads: 4,
    relative_attention_num_buckets: 8,
    pad_token_id: 0,
    eos_token_id: 1,
    decoder_start_token_id: 0,
  },
};

for (const [family, config] of Object.entries(ODD)) {
  test(`${family}, odd widths: batch-1 steps equal forward at ${TARGET} positions; onnxruntime greedy = generate`, async (t) => {
    native().setNumThreads(1);
    const model = await Seq2SeqModel.fromConfig(config, { seed: 5 });
    const dir = tempDir('blockprune-s2s-decode-');
    try {
      await model.save(dir.path + '/model');
      const handle = await native().loadSeq2Seq(dir.path + '/model');
      const S = 11;
      const source = { inputIds: BigInt64Array.from({ length: S }, (_, i) => BigInt(i === S - 1 ? config.eos_token_id : 3 + ((i * 37) % 190))), batchSize: 1, seqLen: S };
      const decoderInputIds = BigInt64Array.from({ length: TARGET }, (_, i) => BigInt(i === 0 ? config.decoder_start_token_id : 3 + ((i * 53) % 190)));
      const inputs = { ...source, targetLen: TARGET, decoderInputIds };
      const steps = (await handle.decodeSteps(inputs)).logits;
      const full = (await handle.forward(inputs)).logits;
      const d = maxAbsDiff(steps.data as Float32Array, full.data as Float32Array);
      t.log(`${family}: ${TARGET} batch-1 steps vs forward, max |diff| = ${d.toExponential(3)} (atol ${ATOL})`);
      t.true(d <= ATOL, `${d} > ${ATOL}`);
      // Several rows per step (beams, a batch: matvec_rows reads each weight row once for all of them), 3 and the
      // most (8), each row its own source and target.
      for (const M of [3, 8]) {
        const ids = (len: number, salt: number, first: (r: number) => number, last?: number) =>
          BigInt64Array.from({ length: M * len }, (_, i) => {
            const [r, j] = [Math.floor(i / len), i % len];
            return BigInt(j === 0 ? first(r) : j === len - 1 && last !== undefined ? last : 3 + ((j * salt + r * 17) % 190));
          });
        const many = {
          inputIds: ids(S, 37, (r) => 3 + r, config.eos_token_id),
          batchSize: M,
          seqLen: S,
          targetLen: TARGET,
          decoderInputIds: ids(TARGET, 53, () => config.decoder_start_token_id),
        };
        const dm = maxAbsDiff((await handle.decodeSteps(many)).logits.data as Float32Array, (await handle.forward(many)).logits.data as Float32Array);
        t.log(`${family}: ${M} rows x ${TARGET} steps vs forward, max |diff| = ${dm.toExponential(3)}`);
        t.true(dm <= ATOL, `${M} rows: ${dm} > ${ATOL}`);
      }
      handle.dispose();

      await model.exportOnnx(dir.path + '/onnx');
      const sessions = await loadOnnxSeq2Seq(dir.path + '/onnx', { intraOpNumThreads: 1, interOpNumThreads: 1 });
      const maxLength = 24;
      const ours = await model.generate({ ...source, attentionMask: new BigInt64Array(S).fill(1n) }, { maxLength, minLength: maxLength, numBeams: 1 });
      const ort = await onnxGreedy(sessions, { ...source, attentionMask: new BigInt64Array(S).fill(1n) }, { start: config.decoder_start_token_id, eos: config.eos_token_id, pad: config.pad_token_id, maxLength, minLength: maxLength });
      t.deepEqual(ort.sequences, rows(ours.sequences));
    } finally {
      model.dispose();
      dir.cleanup();
    }
  });
}

/** AnonHugePages (kB) of a child process before and after it builds a model with a 4 MiB token table. */
function hugePagesDelta(env: Record<string, string>): number {
  const script = `
    const { Seq2SeqModel } = require(${JSON.stringify(require.resolve('../../lib/model/seq2seq'))});
    const huge = () => Number(/AnonHugePages:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/smaps_rollup', 'utf8'))[1]);
    (async () => {
      const before = huge();
      const m = await Seq2SeqModel.fromConfig(${JSON.stringify({ ...ODD.t5, vocab_size: 8192, d_model: 128, d_kv: 32 })});
      console.log(huge() - before);
      m.dispose();
    })();`;
  const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return Number(r.stdout.trim());
}

const thp = (() => {
  try {
    return /\[(always|madvise)\]/.test(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'));
  } catch {
    return false;
  }
})();

(thp ? test : test.skip)(`a model's large weights land on 2 MiB pages (native/huge_pages.h), and not with BLOCKPRUNE_HUGE_PAGES=0${thp ? '' : ' (skipped: no transparent huge pages on this machine)'}`, (t) => {
  const on = hugePagesDelta({});
  const off = hugePagesDelta({ BLOCKPRUNE_HUGE_PAGES: '0' });
  t.log(`AnonHugePages: +${on} kB placed, +${off} kB with BLOCKPRUNE_HUGE_PAGES=0`);
  t.true(on >= 4096, `${on} kB on huge pages`);
  t.true(off < on, `${off} kB with the placement off`);
});
