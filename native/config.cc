#include "config.h"

#include <fstream>
#include <sstream>

#include "errors.h"

namespace bp {

const char* task_name(TaskKind k) {
  switch (k) {
    case TaskKind::Bare: return "bare";
    case TaskKind::SequenceClassification: return "text-classification";
    case TaskKind::QuestionAnswering: return "question-answering";
  }
  return "?";
}

std::string architecture_name(const Family& f, TaskKind k) {
  switch (k) {
    case TaskKind::Bare: return f.arch + "Model";
    case TaskKind::SequenceClassification: return f.arch + "ForSequenceClassification";
    case TaskKind::QuestionAnswering: return f.arch + "ForQuestionAnswering";
  }
  return "?";
}

int64_t BertConfig::max_sequence_length() const {
  return family->positions == PositionIds::FromInputIds ? max_position_embeddings - pad_token_id - 1 : max_position_embeddings;
}

int64_t BertConfig::layer_heads(int64_t layer) const {
  auto it = pruned_heads.find(layer);
  return num_attention_heads - (it == pruned_heads.end() ? 0 : static_cast<int64_t>(it->second.size()));
}

int64_t BertConfig::layer_intermediate(int64_t layer) const {
  return intermediate_sizes.empty() ? intermediate_size : intermediate_sizes.at(static_cast<size_t>(layer));
}

std::vector<int64_t> BertConfig::kept_heads(int64_t layer) const {
  std::vector<int64_t> out;
  auto it = pruned_heads.find(layer);
  for (int64_t h = 0; h < num_attention_heads; ++h)
    if (it == pruned_heads.end() || !it->second.count(h)) out.push_back(h);
  return out;
}

namespace {

[[noreturn]] void bad(const std::string& source, const std::string& what) {
  throw Error("E_BAD_CONFIG", "invalid config " + source + ": " + what);
}

int64_t get_int(const nlohmann::json& j, const char* key, int64_t def, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_number_integer()) bad(source, std::string("field '") + key + "' must be an integer, got " + j[key].dump());
  return j[key].get<int64_t>();
}

double get_num(const nlohmann::json& j, const char* key, double def, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_number()) bad(source, std::string("field '") + key + "' must be a number, got " + j[key].dump());
  return j[key].get<double>();
}

}  // namespace

BertConfig BertConfig::from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) bad(source, "not a JSON object");
  BertConfig c;
  c.raw = j;
  if (j.contains("model_type") && !j["model_type"].is_null()) {
    if (!j["model_type"].is_string()) bad(source, "field 'model_type' must be a string");
    c.family = &family_for(j["model_type"].get<std::string>(), source);
  } else if (j.contains("architectures") && j["architectures"].is_array()) {
    // Old configs without model_type: transformers guesses from the name; so do we, by architecture.
    for (const auto& a : j["architectures"])
      if (a.is_string())
        if (const Family* f = family_for_architecture(a.get<std::string>())) c.family = f;
  }
  if (j.contains("position_embedding_type") && j["position_embedding_type"].is_string() &&
      j["position_embedding_type"] != "absolute")
    bad(source, "position_embedding_type '" + j["position_embedding_type"].get<std::string>() +
                    "' is not supported (only 'absolute')");
  // DistilBERT names the same quantities differently and has fixed ones (LayerNorm eps, no token types).
  const bool distil = c.family->distil_config;
  if (!distil && c.family->model_type != "bert") c.pad_token_id = 1;  // RobertaConfig's default
  if (distil && j.contains("sinusoidal_pos_embds") && j["sinusoidal_pos_embds"] == true)
    bad(source, "sinusoidal_pos_embds true is not supported (learned position embeddings only)");
  c.vocab_size = get_int(j, "vocab_size", c.vocab_size, source);
  c.hidden_size = get_int(j, distil ? "dim" : "hidden_size", c.hidden_size, source);
  c.num_hidden_layers = get_int(j, distil ? "n_layers" : "num_hidden_layers", distil ? 6 : c.num_hidden_layers, source);
  c.num_attention_heads = get_int(j, distil ? "n_heads" : "num_attention_heads", c.num_attention_heads, source);
  c.intermediate_size = get_int(j, distil ? "hidden_dim" : "intermediate_size", c.intermediate_size, source);
  const char* act_key = distil ? "activation" : "hidden_act";
  if (j.contains(act_key)) {
    if (!j[act_key].is_string()) bad(source, std::string("field '") + act_key + "' must be a string");
    c.hidden_act = j[act_key].get<std::string>();
  }
  c.hidden_dropout_prob = get_num(j, distil ? "dropout" : "hidden_dropout_prob", c.hidden_dropout_prob, source);
  c.attention_probs_dropout_prob =
      get_num(j, distil ? "attention_dropout" : "attention_probs_dropout_prob", c.attention_probs_dropout_prob, source);
  c.max_position_embeddings = get_int(j, "max_position_embeddings", c.max_position_embeddings, source);
  c.type_vocab_size = distil ? 1 : get_int(j, "type_vocab_size", c.type_vocab_size, source);
  c.layer_norm_eps = distil ? 1e-12 : get_num(j, "layer_norm_eps", c.layer_norm_eps, source);
  c.initializer_range = get_num(j, "initializer_range", c.initializer_range, source);
  c.pad_token_id = get_int(j, "pad_token_id", c.pad_token_id, source);
  c.classifier_dropout = distil ? get_num(j, "seq_classif_dropout", 0.2, source) : c.hidden_dropout_prob;
  c.qa_dropout = distil ? get_num(j, "qa_dropout", 0.1, source) : 0.0;
  if (j.contains("id2label") && j["id2label"].is_object()) {
    c.num_labels = static_cast<int64_t>(j["id2label"].size());
  }
  c.num_labels = get_int(j, "num_labels", c.num_labels, source);
  if (j.contains("pruned_heads") && !j["pruned_heads"].is_null()) {
    const auto& ph = j["pruned_heads"];
    if (!ph.is_object()) bad(source, "field 'pruned_heads' must be an object {\"layer\": [heads]}");
    for (auto it = ph.begin(); it != ph.end(); ++it) {
      int64_t layer;
      try {
        size_t used = 0;
        layer = std::stoll(it.key(), &used);
        if (used != it.key().size()) throw std::invalid_argument("trailing");
      } catch (const std::exception&) {
        bad(source, "pruned_heads key '" + it.key() + "' is not a layer number");
      }
      if (!it.value().is_array()) bad(source, "pruned_heads['" + it.key() + "'] must be a list of head indices");
      for (const auto& h : it.value()) {
        if (!h.is_number_integer()) bad(source, "pruned_heads['" + it.key() + "'] holds a non-integer");
        c.pruned_heads[layer].insert(h.get<int64_t>());
      }
    }
  }
  if (j.contains("intermediate_sizes") && !j["intermediate_sizes"].is_null()) {
    const auto& is = j["intermediate_sizes"];
    if (!is.is_array()) bad(source, "field 'intermediate_sizes' must be a list of per-layer FFN widths");
    for (const auto& v : is) {
      if (!v.is_number_integer()) bad(source, "field 'intermediate_sizes' holds a non-integer");
      c.intermediate_sizes.push_back(v.get<int64_t>());
    }
  }
  if (j.contains("architectures") && j["architectures"].is_array())
    for (const auto& a : j["architectures"])
      if (a.is_string()) c.architectures.push_back(a.get<std::string>());
  c.validate(source);
  return c;
}

void BertConfig::validate(const std::string& source) const {
  auto positive = [&](const char* name, int64_t v) {
    if (v <= 0) bad(source, std::string("field '") + name + "' must be positive, got " + std::to_string(v));
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("intermediate_size", intermediate_size);
  positive("max_position_embeddings", max_position_embeddings);
  positive("type_vocab_size", type_vocab_size);
  positive("num_labels", num_labels);
  // Caps on what no BERT needs. num_labels matters most: a head missing from a checkpoint is created (and
  // initialised, i.e. written) at num_labels x hidden_size, so 2^27 labels would fill 16 GiB.
  auto at_most = [&](const char* name, int64_t v, int64_t cap) {
    if (v > cap)
      bad(source, std::string("field '") + name + "' is " + std::to_string(v) + ", implausibly large (at most " +
                      std::to_string(cap) + ")");
  };
  at_most("num_hidden_layers", num_hidden_layers, 1000);
  at_most("hidden_size", hidden_size, int64_t{1} << 16);
  at_most("vocab_size", vocab_size, int64_t{1} << 24);
  at_most("num_labels", num_labels, int64_t{1} << 20);
  if (num_labels * hidden_size > (int64_t{1} << 30))
    bad(source, "num_labels " + std::to_string(num_labels) + " x hidden_size " + std::to_string(hidden_size) +
                    " makes a classifier of more than 2^30 weights");
  if (hidden_size % num_attention_heads != 0)
    bad(source, "hidden_size " + std::to_string(hidden_size) + " is not a multiple of num_attention_heads " +
                    std::to_string(num_attention_heads));
  if (!(layer_norm_eps > 0)) bad(source, "field 'layer_norm_eps' must be positive");
  // Weights are drawn from N(0, initializer_range) when a model (or a missing head) is built.
  if (!(initializer_range >= 0 && initializer_range <= 1e6))
    bad(source, "field 'initializer_range' must be a standard deviation in [0, 1e6], got " + nlohmann::json(initializer_range).dump());
  if (!(hidden_dropout_prob >= 0 && hidden_dropout_prob < 1) ||
      !(attention_probs_dropout_prob >= 0 && attention_probs_dropout_prob < 1) ||
      !(classifier_dropout >= 0 && classifier_dropout < 1) || !(qa_dropout >= 0 && qa_dropout < 1))
    bad(source, "dropout probabilities must be in [0, 1)");
  if (pad_token_id < 0 || pad_token_id >= vocab_size) bad(source, "pad_token_id is outside the vocabulary");
  if (max_sequence_length() < 1)
    bad(source, "max_position_embeddings " + std::to_string(max_position_embeddings) + " leaves no position after padding_idx " +
                    std::to_string(pad_token_id) + " (RoBERTa positions start at pad_token_id + 1)");
  static const std::set<std::string> acts = {"gelu", "relu", "gelu_new", "gelu_pytorch_tanh", "silu", "swish", "tanh"};
  if (!acts.count(hidden_act)) bad(source, "hidden_act '" + hidden_act + "' is not supported");
  for (const auto& [layer, heads] : pruned_heads) {
    if (layer < 0 || layer >= num_hidden_layers)
      bad(source, "pruned_heads names layer " + std::to_string(layer) + " but the model has " +
                      std::to_string(num_hidden_layers) + " layers");
    for (int64_t h : heads)
      if (h < 0 || h >= num_attention_heads)
        bad(source, "pruned_heads['" + std::to_string(layer) + "'] names head " + std::to_string(h) + " of " +
                        std::to_string(num_attention_heads));
  }
  if (!intermediate_sizes.empty()) {
    if (static_cast<int64_t>(intermediate_sizes.size()) != num_hidden_layers)
      bad(source, "intermediate_sizes has " + std::to_string(intermediate_sizes.size()) + " entries for " +
                      std::to_string(num_hidden_layers) + " layers");
    for (int64_t v : intermediate_sizes)
      if (v < 0) bad(source, "intermediate_sizes holds a negative width");
  }
}

nlohmann::json read_json_file(const std::string& path, const char* bad_code, const std::string& what) {
  std::ifstream in(path);
  if (!in) throw Error("E_FILE_NOT_FOUND", "missing " + what + " file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  // Nesting is capped while parsing: copying, comparing and dumping a json recurse once per level, so a
  // file of 100k nested brackets (which parses fine) would overflow the worker thread's stack later, when
  // the config is copied. No HF config or index nests more than a few levels.
  constexpr int kMaxDepth = 64;
  const auto limit_depth = [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > kMaxDepth)
      throw Error(bad_code, "invalid " + what + " " + path + ": nested deeper than " + std::to_string(kMaxDepth) + " levels");
    return true;
  };
  try {
    return nlohmann::json::parse(ss.str(), limit_depth);
  } catch (const nlohmann::json::exception& e) {
    throw Error(bad_code, "invalid " + what + " " + path + ": not valid JSON (" + e.what() + ")");
  }
}

BertConfig BertConfig::from_file(const std::string& path) {
  return from_json(read_json_file(path, "E_BAD_CONFIG", "config"), path);
}

nlohmann::json BertConfig::to_json(TaskKind kind) const {
  nlohmann::json j = raw;
  j.erase("pruning_plan");  // written by save_pretrained only while the model is patched
  const Family& f = *family;
  j["model_type"] = f.model_type;
  j["vocab_size"] = vocab_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["initializer_range"] = initializer_range;
  j["pad_token_id"] = pad_token_id;
  if (f.distil_config) {
    j["dim"] = hidden_size;
    j["n_layers"] = num_hidden_layers;
    j["n_heads"] = num_attention_heads;
    j["hidden_dim"] = intermediate_size;
    j["activation"] = hidden_act;
    j["dropout"] = hidden_dropout_prob;
    j["attention_dropout"] = attention_probs_dropout_prob;
    j["seq_classif_dropout"] = classifier_dropout;
    j["qa_dropout"] = qa_dropout;
    j["sinusoidal_pos_embds"] = false;
  } else {
    j["hidden_size"] = hidden_size;
    j["num_hidden_layers"] = num_hidden_layers;
    j["num_attention_heads"] = num_attention_heads;
    j["intermediate_size"] = intermediate_size;
    j["hidden_act"] = hidden_act;
    j["hidden_dropout_prob"] = hidden_dropout_prob;
    j["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
    j["type_vocab_size"] = type_vocab_size;
    j["layer_norm_eps"] = layer_norm_eps;
  }
  j["architectures"] = nlohmann::json::array({architecture_name(f, kind)});
  if (kind == TaskKind::SequenceClassification && num_labels != 2 && !j.contains("id2label")) {
    nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
    for (int64_t i = 0; i < num_labels; ++i) {
      id2label[std::to_string(i)] = "LABEL_" + std::to_string(i);
      label2id["LABEL_" + std::to_string(i)] = i;
    }
    j["id2label"] = id2label;
    j["label2id"] = label2id;
  }
  if (kind == TaskKind::SequenceClassification && num_labels != 2) j["num_labels"] = num_labels;
  nlohmann::json ph = nlohmann::json::object();
  for (const auto& [layer, heads] : pruned_heads)
    if (!heads.empty()) ph[std::to_string(layer)] = std::vector<int64_t>(heads.begin(), heads.end());
  j["pruned_heads"] = ph;
  if (intermediate_sizes.empty())
    j.erase("intermediate_sizes");
  else
    j["intermediate_sizes"] = intermediate_sizes;
  return j;
}

}  // namespace bp
