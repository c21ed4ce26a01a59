#!/usr/bin/env node
/**
 * Decoding speed of an encoder-decoder model (issue 18): ms per generated token with the decoder cache
 * (Seq2SeqImpl start + one step per token: encoder once, cross-attention keys and values once, self-attention
 * ones appended) vs recomputing the full forward (encoder and every decoder position) for each new token, as a
 * model without a cache must. A random T5 of t5-small's geometry (d_model 512, 6+6 layers, 8 heads, d_ff 2048,
 * vocab 32128), batch 1, source 128, in one run (alternating rounds).
 *
 *   node dist/scripts/bench-generate.js [--steps 32] [--source 128] [--rounds 3] [--warmup 1]
 *
 * Both paths are teacher-forced on the same tokens (what greedy search feeds costs the same: the argmax is
 * not timed here), so the figures compare the decoding work alone. Absolute figures drift 15-25% on these VMs:
 * compare within one run.
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getNumThreads } from '../lib/index';
import { native } from '../lib/runtime/native';
import { intFlag, str } from '../lib/cli/flags';
import { runScript, scriptFlags, T5_SMALL } from './common';

const USAGE = 'usage: node dist/scripts/bench-generate.js [--steps 32] [--source 128] [--rounds 3] [--warmup 1]';

/** Every tensor name and shape of a T5ForConditionalGeneration of `c` (tied: shared once). */
function t5Shapes(c: typeof T5_SMALL): [string, number[]][] {
  const { d_model: D, d_ff: F, num_heads: H, d_kv: K, relative_attention_num_buckets: R } = c;
  const out: [string, number[]][] = [['shared.weight', [c.vocab_size, D]]];
  const attn = (p: string) => ['q', 'k', 'v', 'o'].map((n): [string, number[]] => [`${p}.${n}.weight`, n === 'o' ? [D, H * K] : [H * K, D]]);
  for (const [stack, layers] of [['encoder', c.num_layers], ['decoder', c.num_decoder_layers]] as const) {
    for (let i = 0; i < layers; i++) {
      const b = `${stack}.block.${i}.layer`;
      out.push(...attn(`${b}.0.SelfAttention`), [`${b}.0.layer_norm.weight`, [D]]);
      if (i === 0) out.push([`${b}.0.SelfAttention.relative_attention_bias.weight`, [R, H]]);
      const ff = stack === 'encoder' ? 1 : 2;
      if (stack === 'decoder') out.push(...attn(`${b}.1.EncDecAttention`), [`${b}.1.layer_norm.weight`, [D]]);
      out.push([`${b}.${ff}.DenseReluDense.wi.weight`, [F, D]], [`${b}.${ff}.DenseReluDense.wo.weight`, [D, F]], [`${b}.${ff}.layer_norm.weight`, [D]]);
    }
    out.push([`${stack}.final_layer_norm.weight`, [D]]);
  }
  return out;
}

/**
 * A random T5 in `dir` (config.json, model.safetensors written tensor by tensor): uniform weights of scale
 * 0.05 (norm weights 1), from a fixed xorshift so every run times the same model.
 */
function writeRandomT5(dir: string): void {
  writeFileSync(join(dir, 'config.json'), JSON.stringify(T5_SMALL));
  const shapes = t5Shapes(T5_SMALL);
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [name, shape] of shapes) {
    const bytes = 4 * shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: 'F32', shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  const fd = openSync(join(dir, 'model.safetensors'), 'w');
  try {
    writeSync(fd, len);
    writeSync(fd, h);
    let s = 0x9e3779b9;
    for (const [name, shape] of shapes) {
      const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
      if (name.endsWith('layer_norm.weight')) data.fill(1);
      else
        for (let i = 0; i < data.length; i++) {
          s ^= s << 13;
          s ^= s >>> 17;
          s ^= s << 5;
          data[i] = ((s >>> 0) / 0x100000000 - 0.5) * 0.1;
        }
      writeSync(fd, new Uint8Array(data.buffer));
    }
  } finally {
    closeSync(fd);
  }
}

async function main(): Promise<void> {
  const { steps, source, rounds, warmup } = scriptFlags('bench-generate', USAGE, { steps: str, source: str, rounds: str, warmup: str }, (f) => ({
    steps: intFlag(f, 'steps', 1, 512) ?? 32,
    source: intFlag(f, 'source', 1, 4096) ?? 128,
    rounds: intFlag(f, 'rounds', 1) ?? 3,
    warmup: intFlag(f, 'warmup', 0) ?? 1,
  }));
  const dir = mkdtempSync(join(tmpdir(), 'blockprune-bench-t5-'));
  try {
    writeRandomT5(dir);
    const model = await native().loadSeq2Seq(dir);
    const vocab = T5_SMALL.vocab_size;
    const inputIds = BigInt64Array.from({ length: source }, (_, i) => BigInt(i === source - 1 ? 1 : 100 + ((i * 7919) % (vocab - 100))));
    const decoder = BigInt64Array.from({ length: steps }, (_, i) => BigInt(i === 0 ? 0 : 100 + ((i * 104729) % (vocab - 100))));
    const batch = { inputIds, batchSize: 1, seqLen: source };
    console.log(`t5-small geometry (random, ${model.info().numParameters} parameters), batch 1, source ${source}, ${steps} tokens, threads ${getNumThreads()}; ${warmup} warm-up and ${rounds} alternating rounds`);
    // cached: start, then one step per token. recompute: for token t, the full forward on tokens 0..t.
    const cached = () => model.decodeSteps({ ...batch, targetLen: steps, decoderInputIds: decoder });
    const recompute = async () => {
      for (let t = 1; t <= steps; t++) await model.forward({ ...batch, targetLen: t, decoderInputIds: decoder.subarray(0, t) });
    };
    // start alone (encoder, cross-attention keys and values) with its first step: the rest of `cached` is steps.
    const first = () => model.decodeSteps({ ...batch, targetLen: 1, decoderInputIds: decoder.subarray(0, 1) });
    const runs = [
      { name: 'cached', run: cached, ms: [] as number[] },
      { name: 'recompute', run: recompute, ms: [] as number[] },
      { name: 'start', run: first, ms: [] as number[] },
    ];
    for (let i = 0; i < warmup; i++) for (const r of runs) await r.run();
    for (let i = 0; i < rounds; i++)
      for (const r of runs) {
        const t0 = performance.now();
        await r.run();
        r.ms.push((performance.now() - t0) / (r.name === 'start' ? 1 : steps));
      }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const [c, f, s0] = runs.map((r) => mean(r.ms));
    console.log(`ms per generated token: cached ${c.toFixed(2)} (rounds ${runs[0].ms.map((x) => x.toFixed(2)).join(', ')}), full forward each step ${f.toFixed(2)} (rounds ${runs[1].ms.map((x) => x.toFixed(2)).join(', ')}); cache speed-up ${(f / c).toFixed(2)}x`);
    const perStep = (c * steps - s0) / Math.max(1, steps - 1);
    console.log(`cached, split: start with its first step ${s0.toFixed(1)} ms (encoder over ${source} tokens, cross-attention keys and values), then ${perStep.toFixed(2)} ms per further step`);
    model.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

runScript('bench-generate', main);
