/**
 * The geometry the benchmarks measure (`blockprune bench`, scripts/load.ts, the training benchmarks): bert-base,
 * and its compact form after block pruning (the reference's speed figures).
 */
import type { BertConfigJson } from '../model/model';
import { compactLayersConfig } from '../pruning/latency-profile';

export const BERT_BASE: BertConfigJson = {
  vocab_size: 30522,
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  max_position_embeddings: 512,
  type_vocab_size: 2,
};

/** The compact geometry of the reference's speed figures: `heads` heads and FFN `ffn` in every layer of `base`. */
export function compactConfig(heads = 4, ffn = 552, base: BertConfigJson = BERT_BASE): BertConfigJson {
  return compactLayersConfig(base, base.num_attention_heads, Array.from({ length: base.num_hidden_layers }, () => ({ heads, intermediateSize: ffn })));
}
