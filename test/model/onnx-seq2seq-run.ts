/**
 * Greedy decoding in onnxruntime on Seq2SeqModel.exportOnnx's three graphs, as HF's ORT pipelines run them:
 * the encoder once, decoder_model for the first step (it makes the cross-attention keys and values), then
 * decoder_with_past per token on the presents of the step before. Shared by test/model/onnx-seq2seq.test.ts
 * and scripts/bench-decode.ts.
 */
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';

export interface OnnxSeq2Seq {
  encoder: ort.InferenceSession;
  decoder: ort.InferenceSession;
  withPast: ort.InferenceSession;
}

export async function loadOnnxSeq2Seq(dir: string, options: ort.InferenceSession.SessionOptions): Promise<OnnxSeq2Seq> {
  const open = (f: string) => ort.InferenceSession.create(join(dir, f), options);
  return { encoder: await open('encoder_model.onnx'), decoder: await open('decoder_model.onnx'), withPast: await open('decoder_with_past_model.onnx') };
}

export interface GreedyRules {
  start: number;
  eos: number;
  pad: number;
  maxLength: number;
  /** 4.4.2's ForcedEOS: at the step that writes position maxLength - 1 only this token (BART's config). */
  forcedEos?: number;
  /** 4.4.2's MinLength: eos is not chosen while a row is shorter (benchmarks decode a fixed count). */
  minLength?: number;
}

export interface GreedyOut {
  /** Per row: the start token, then one token per step (pad after eos). */
  sequences: number[][];
  /** Per step: the raw logits [rows, vocab] (before any processing). */
  logits: Float32Array[];
}

/** Greedy search on `source` ([rows, seqLen] ids and mask): 4.4.2's loop (pad after eos, stop when all have it). */
export async function onnxGreedy(m: OnnxSeq2Seq, source: { inputIds: BigInt64Array; attentionMask: BigInt64Array; batchSize: number; seqLen: number }, r: GreedyRules): Promise<GreedyOut> {
  const rows = source.batchSize;
  const mask = new ort.Tensor('int64', source.attentionMask, [rows, source.seqLen]);
  const enc = await m.encoder.run({ input_ids: new ort.Tensor('int64', source.inputIds, [rows, source.seqLen]), attention_mask: mask });
  const seqs = Array.from({ length: rows }, () => [r.start]);
  const finished = new Array<boolean>(rows).fill(false);
  const logits: Float32Array[] = [];
  let past: Record<string, ort.Tensor> = {};
  while (seqs[0].length < r.maxLength) {
    const ids = new ort.Tensor('int64', BigInt64Array.from(seqs, (s) => BigInt(s[s.length - 1])), [rows, 1]);
    const first = seqs[0].length === 1;
    const out = first
      ? await m.decoder.run({ input_ids: ids, encoder_attention_mask: mask, encoder_hidden_states: enc.last_hidden_state })
      : await m.withPast.run({ input_ids: ids, encoder_attention_mask: mask, ...past });
    // Every present becomes the next step's past; the encoder ones only come from the first step.
    const next: Record<string, ort.Tensor> = first ? {} : Object.fromEntries(Object.entries(past).filter(([k]) => k.includes('.encoder.')));
    for (const [k, t] of Object.entries(out)) if (k.startsWith('present.')) next[k.replace('present.', 'past_key_values.')] = t;
    past = next;
    const l = out.logits.data as Float32Array;
    const V = l.length / rows;
    logits.push(l.slice());
    for (let b = 0; b < rows; b++) {
      let best = 0;
      if (r.forcedEos !== undefined && seqs[b].length === r.maxLength - 1) best = r.forcedEos;
      else {
        const banned = seqs[b].length < (r.minLength ?? 0) ? r.eos : -1;
        if (banned === 0) best = 1;
        for (let j = best + 1; j < V; j++) if (j !== banned && l[b * V + j] > l[b * V + best]) best = j;
      }
      const token = finished[b] ? r.pad : best;
      seqs[b].push(token);
      if (token === r.eos) finished[b] = true;
    }
    if (finished.every(Boolean)) break;
  }
  return { sequences: seqs, logits };
}
