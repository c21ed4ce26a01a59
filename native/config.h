// Encoder configuration (BERT and the families of family.h), read from and written to HF's config.json in
// the family's own field names (DistilBERT's "dim", "n_layers", ... are read into the BERT-named fields). Per-layer sizes (heads, FFN width) are not
// a single config value here: they come from `pruned_heads` and our own `intermediate_sizes` field, and are
// checked against the weights, because after pruning every layer differs.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "family.h"

namespace bp {

enum class TaskKind { Bare, SequenceClassification, QuestionAnswering };

// Reads and parses a JSON file: E_FILE_NOT_FOUND if it cannot be read, `bad_code` (naming `what` and the
// path) if it is not valid JSON.
nlohmann::json read_json_file(const std::string& path, const char* bad_code, const std::string& what);

const char* task_name(TaskKind k);            // "bare" | "text-classification" | "question-answering"
// "BertModel" | "BertForSequenceClassification" | "RobertaForQuestionAnswering" | ...
std::string architecture_name(const Family& f, TaskKind k);

struct BertConfig {
  const Family* family = &family_bert();
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  std::string hidden_act = "gelu";
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  double initializer_range = 0.02;
  // Dropout before the classification head's output linear, and before qa_outputs (DistilBERT's
  // seq_classif_dropout and qa_dropout; BERT uses hidden_dropout_prob for the first and none for QA).
  double classifier_dropout = 0.1;
  double qa_dropout = 0.0;
  int64_t pad_token_id = 0;
  int64_t num_labels = 2;
  // layer -> heads removed (HF `pruned_heads`, indices into the layer's original heads)
  std::map<int64_t, std::set<int64_t>> pruned_heads;
  // per-layer FFN width; empty = intermediate_size everywhere (our field `intermediate_sizes`)
  std::vector<int64_t> intermediate_sizes;
  std::vector<std::string> architectures;
  nlohmann::json raw = nlohmann::json::object();  // everything else in config.json, kept on save

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  // The longest sequence the position table allows (RoBERTa's positions start after padding_idx).
  int64_t max_sequence_length() const;
  int64_t layer_heads(int64_t layer) const;
  int64_t layer_intermediate(int64_t layer) const;
  // Kept heads of a layer, as indices into the original heads (ascending).
  std::vector<int64_t> kept_heads(int64_t layer) const;

  // Throws bp::Error E_BAD_CONFIG naming `source` and the field.
  static BertConfig from_json(const nlohmann::json& j, const std::string& source);
  static BertConfig from_file(const std::string& path);
  nlohmann::json to_json(TaskKind kind) const;
  void validate(const std::string& source) const;
};

}  // namespace bp
