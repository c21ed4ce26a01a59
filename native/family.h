// Model families: what differs between BERT, RoBERTa, XLM-RoBERTa and DistilBERT is data, not code. As
// nn_pruning's ModelStructure table, a Family names where each linear and norm of an encoder layer lives
// (so the state-dict keys are the family's own), and says how the embeddings compute positions, whether
// there are token types, which pooler and classification head the family has. The encoder layer (post-LN,
// the same math in all four) is one C++ class (bert.h).
#pragma once

#include <string>
#include <vector>

namespace bp {

enum class PositionIds {
  Arange,        // 0..S-1 (BERT, DistilBERT)
  FromInputIds,  // RoBERTa: pad + cumsum(ids != pad) on real tokens, pad on padding (positions follow input_ids)
};

struct Family {
  std::string model_type;  // config.json "model_type": "bert" | "roberta" | "xlm-roberta" | "distilbert"
  std::string arch;        // architectures prefix: "Bert" -> BertModel, BertForSequenceClassification, ...
  std::string prefix;      // the base model's attribute in task models: "bert", "roberta", "distilbert"
  std::string layers;      // the layer list under the prefix: "encoder.layer" | "transformer.layer"
  // Paths inside one layer, by role.
  std::string query, key, value, attn_out, attn_norm, inter, out, out_norm;
  bool token_types;        // has token_type_embeddings
  PositionIds positions;
  bool pooler;             // the base model has "<prefix>.pooler.dense" (+ tanh), not in QA models
  // Classification head: pre (hidden -> hidden) + activation, then out (hidden -> num_labels), on h[:, 0].
  // BERT's pre is its pooler; pooler_output is reported only then.
  std::string cls_pre, cls_act, cls_out;
  bool cls_pre_is_pooler;
  std::string qa_out;      // "qa_outputs" everywhere
  // config.json uses DistilBERT's field names ("dim", "n_layers", "hidden_dim", "activation", ...).
  bool distil_config;

  // "bert.encoder.layer.3."
  std::string layer_prefix(int64_t i) const { return prefix + "." + layers + "." + std::to_string(i) + "."; }
  // Full names of the six linears of layer i, in the order query, key, value, attn_out, inter, out.
  std::vector<std::string> layer_linears(int64_t i) const;
  std::string pooler_dense() const { return prefix + ".pooler.dense"; }
  // Whether a parameter name is a task head's (created and initialised when a checkpoint lacks it).
  bool is_head(const std::string& name) const;
};

const Family& family_bert();
// By config.json model_type; throws E_BAD_CONFIG naming `source` and the families known.
const Family& family_for(const std::string& model_type, const std::string& source);
// The family whose architectures prefix starts `architecture` ("DistilBertForQuestionAnswering"), or null.
const Family* family_for_architecture(const std::string& architecture);
const std::vector<const Family*>& all_families();

}  // namespace bp
