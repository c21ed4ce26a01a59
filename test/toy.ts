/**
 * A tiny synthetic classification set (is token 7 in the sequence?) and a tiny BERT config, for tests of
 * training options and resume that need a few real steps, fast.
 */
import type { BertConfigJson, ForwardBatch } from '../lib/model/model';
import type { TrainData } from '../lib/training/trainer';

export const TINY: BertConfigJson = {
  vocab_size: 64,
  hidden_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 64,
  max_position_embeddings: 32,
};

function lcg(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
}

/** `length` rows of 8-17 tokens; label 1 when token 7 occurs. The same `seed` gives the same rows. */
export class ToyData implements TrainData {
  readonly rows: Array<{ ids: number[]; label: number }> = [];
  constructor(
    readonly length: number,
    seed: number,
  ) {
    const r = lcg(seed);
    for (let i = 0; i < length; i++) {
      const n = 6 + Math.floor(r() * 10);
      const ids = Array.from({ length: n }, () => 8 + Math.floor(r() * 56));
      const label = r() < 0.5 ? 1 : 0;
      if (label) ids[Math.floor(r() * n)] = 7;
      this.rows.push({ ids: [1, ...ids, 2], label });
    }
  }
  *batches(batchSize: number, o: { shuffle?: boolean; seed?: number; epoch?: number } = {}): Iterable<ForwardBatch> {
    const order = this.rows.map((_, i) => i);
    if (o.shuffle) {
      const r = lcg((o.seed ?? 0) * 1000 + (o.epoch ?? 0));
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(r() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
    }
    for (let b = 0; b < order.length; b += batchSize) {
      const rows = order.slice(b, b + batchSize).map((i) => this.rows[i]);
      const seqLen = Math.max(...rows.map((x) => x.ids.length));
      const inputIds = new Int32Array(rows.length * seqLen);
      const attentionMask = new Int32Array(rows.length * seqLen);
      rows.forEach((x, k) => {
        inputIds.set(x.ids, k * seqLen);
        attentionMask.fill(1, k * seqLen, k * seqLen + x.ids.length);
      });
      yield { inputIds, attentionMask, batchSize: rows.length, seqLen, labels: Int32Array.from(rows.map((x) => x.label)) };
    }
  }
}

/** A tiny BART (2+2 layers, d_model 32, 4 heads, vocabulary 24), dropout 0: what seq2seq training tests run. */
export const TINY_BART = {
  model_type: 'bart',
  architectures: ['BartForConditionalGeneration'],
  vocab_size: 24,
  d_model: 32,
  encoder_layers: 2,
  decoder_layers: 2,
  encoder_attention_heads: 4,
  decoder_attention_heads: 4,
  encoder_ffn_dim: 64,
  decoder_ffn_dim: 64,
  max_position_embeddings: 32,
  pad_token_id: 1,
  bos_token_id: 0,
  eos_token_id: 2,
  decoder_start_token_id: 2,
  dropout: 0,
  attention_dropout: 0,
  activation_dropout: 0,
  init_std: 0.02,
};

/** The same size of T5 (ReLU FFN, 8 relative buckets). */
export const TINY_T5 = {
  model_type: 't5',
  architectures: ['T5ForConditionalGeneration'],
  vocab_size: 24,
  d_model: 32,
  d_kv: 8,
  d_ff: 64,
  num_layers: 2,
  num_decoder_layers: 2,
  num_heads: 4,
  relative_attention_num_buckets: 8,
  feed_forward_proj: 'relu',
  dropout_rate: 0,
  pad_token_id: 0,
  eos_token_id: 1,
  decoder_start_token_id: 0,
  initializer_factor: 1.0,
};
