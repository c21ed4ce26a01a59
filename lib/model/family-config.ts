/**
 * configForFamily: one BERT-named geometry as the config.json of any family, for models built from scratch
 * (`BertModel.fromConfig`, the CLI's random model with --family). The sizes keep their meaning: the result
 * takes sequences as long as the input's max_position_embeddings in every family.
 */
import * as v from '../runtime/validate';
import type { BertConfigJson, ModelConfigJson, ModelFamily } from './model';
import { MODEL_FAMILIES } from './model';

/** BERT's field names and DistilBERT's for the same quantity. */
const DISTILBERT_NAMES: Array<[keyof BertConfigJson, string]> = [
  ['hidden_size', 'dim'],
  ['num_hidden_layers', 'n_layers'],
  ['num_attention_heads', 'n_heads'],
  ['intermediate_size', 'hidden_dim'],
  ['hidden_act', 'activation'],
  ['hidden_dropout_prob', 'dropout'],
  ['attention_probs_dropout_prob', 'attention_dropout'],
];

/**
 * `config` (BERT's names) as a `family` config.json. RoBERTa and XLM-R: one token type, pad_token_id 1 unless
 * given, and their position table's padding_idx + 1 extra rows (roberta-base: 514 for 512 tokens). DistilBERT:
 * its own names ("dim", "n_layers", ...); it has no token types and a fixed LayerNorm eps, so type_vocab_size
 * and layer_norm_eps are dropped.
 */
export function configForFamily(family: ModelFamily, config: BertConfigJson): ModelConfigJson {
  v.oneOf('family', family, MODEL_FAMILIES);
  v.object('config', config);
  if (family === 'bert') return { ...config, model_type: 'bert' };
  if (family === 'distilbert') {
    const out: Record<string, unknown> = { ...config, model_type: 'distilbert' };
    for (const [bert, distil] of DISTILBERT_NAMES) {
      if (out[bert] !== undefined) out[distil] = out[bert];
      delete out[bert];
    }
    delete out.type_vocab_size;
    delete out.layer_norm_eps;
    return out as ModelConfigJson;
  }
  const pad = config.pad_token_id ?? 1;
  return { ...config, model_type: family, type_vocab_size: 1, pad_token_id: pad, max_position_embeddings: (config.max_position_embeddings ?? 512) + pad + 1 };
}
