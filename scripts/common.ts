/** What the benchmark scripts share: the bert-base geometry, its compact form, and where ../shared is. */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { BertConfigJson } from '../lib/model';

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
  return {
    ...base,
    pruned_heads: Object.fromEntries(
      Array.from({ length: base.num_hidden_layers }, (_, i) => [String(i), Array.from({ length: base.num_attention_heads - heads }, (_, k) => heads + k)]),
    ),
    intermediate_sizes: Array(base.num_hidden_layers).fill(ffn),
  };
}

/**
 * ../shared beside the checkout (or BLOCKPRUNE_SHARED): the first `shared/` found walking up from here that
 * holds one of `marks` (default data/ or fixtures/); undefined when absent.
 */
export function sharedDir(marks: readonly string[] = ['data', 'fixtures']): string | undefined {
  if (process.env.BLOCKPRUNE_SHARED) return resolve(process.env.BLOCKPRUNE_SHARED);
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'shared');
    if (marks.some((m) => existsSync(join(candidate, m)))) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}
