/**
 * The t5-tiny fixture (../shared/fixtures/t5-tiny) and the model variants the T5 tests build from it: shared by
 * t5.test.ts (forward parity) and t5-generate.test.ts (incremental decoding).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Seq2SeqInputs } from '../../lib/model/seq2seq';
import type { TensorData } from '../../lib/runtime/native';
import { readTensors, shared, tempDir, withShared, writeSafetensorsFile } from '../helpers';

export const FIX = 'fixtures/t5-tiny';
export const t5Test = withShared(FIX);

export type Weights = Record<string, TensorData>;

export async function fixture() {
  const dir = shared(FIX);
  return { dir, io: await readTensors(join(dir, 'io.safetensors')), weights: await readTensors(join(dir, 'model.safetensors')) };
}

export function inputs(io: Weights, extra: Partial<Seq2SeqInputs> = {}): Seq2SeqInputs {
  const [batchSize, seqLen] = io.input_ids.shape;
  return {
    inputIds: io.input_ids.data as BigInt64Array,
    attentionMask: io.attention_mask.data as BigInt64Array,
    batchSize,
    seqLen,
    targetLen: io.labels.shape[1],
    labels: io.labels.data as BigInt64Array,
    ...extra,
  };
}

/** A copy of the fixture's model directory with `weights` (and the config changed by `config`) in a temp dir. */
export function modelCopy(dir: string, weights: Weights, config: (c: Record<string, unknown>) => void = () => {}) {
  const tmp = tempDir('blockprune-t5-');
  const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  config(c);
  writeFileSync(join(tmp.path, 'config.json'), JSON.stringify(c));
  writeSafetensorsFile(join(tmp.path, 'model.safetensors'), weights as Parameters<typeof writeSafetensorsFile>[1]);
  return tmp;
}

export function f32(shape: number[], fill: (i: number) => number): TensorData {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = fill(i);
  return { data, shape, dtype: 'F32' };
}

export const zerosLike = (t: TensorData) => f32(t.shape, () => 0);

/**
 * The weights of a gated-gelu (t5 v1.1) FFN: every `wi` becomes `wi_0`, and `wi_1` is the same matrix rolled by
 * `d` values (another matrix, so the gate matters). Load with feed_forward_proj "gated-gelu".
 */
export function gatedGelu(weights: Weights, d: number): Weights {
  const w: Weights = {};
  for (const [k, v] of Object.entries(weights)) {
    const m = /^(.*DenseReluDense\.)wi\.weight$/.exec(k);
    if (!m) {
      w[k] = v;
      continue;
    }
    const src = v.data as Float32Array;
    w[`${m[1]}wi_0.weight`] = v;
    w[`${m[1]}wi_1.weight`] = f32(v.shape, (i) => src[(i + d) % src.length]);
  }
  return w;
}
