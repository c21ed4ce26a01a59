#include "seq2seq.h"

#include <c10/core/GradMode.h>

#include <map>
#include <set>

#include "checkpoint.h"
#include "config.h"
#include "errors.h"
#include "huge_pages.h"

namespace bp {

std::unique_ptr<DecoderCache> Seq2SeqImpl::start(const at::Tensor&, const at::Tensor&) {
  throw Error("E_INVALID_ARG", "a " + info().architecture + " does not generate text");
}

at::Tensor Seq2SeqImpl::step(DecoderCache&, const at::Tensor&, int64_t) {
  throw Error("E_INVALID_ARG", "a " + info().architecture + " does not generate text");
}

void Seq2SeqImpl::select(DecoderCache&, const at::Tensor&) {
  throw Error("E_INVALID_ARG", "a " + info().architecture + " does not generate text");
}

namespace {

const char* const kHeadFields[] = {"encoder_pruned_heads", "decoder_pruned_heads", "cross_pruned_heads"};
const char* const kWidthFields[] = {"encoder_intermediate_sizes", "decoder_intermediate_sizes"};

}  // namespace

Seq2SeqStructure Seq2SeqStructure::from_json(const nlohmann::json& j, const std::string& source, int64_t encoder_layers, int64_t decoder_layers,
                                             int64_t encoder_heads, int64_t decoder_heads, int64_t encoder_ffn, int64_t decoder_ffn) {
  const auto bad = [&](const std::string& what) { throw Error("E_BAD_CONFIG", "invalid config " + source + ": " + what); };
  Seq2SeqStructure s;
  std::map<int64_t, std::set<int64_t>>* heads_out[] = {&s.encoder_pruned_heads, &s.decoder_pruned_heads, &s.cross_pruned_heads};
  const int64_t layers_of[] = {encoder_layers, decoder_layers, decoder_layers}, heads_of[] = {encoder_heads, decoder_heads, decoder_heads};
  for (int f = 0; f < 3; ++f) {
    const std::string field = kHeadFields[f];
    if (!j.contains(field) || j[field].is_null()) continue;
    const auto& ph = j[field];
    if (!ph.is_object()) bad("field '" + field + "' must be an object {\"layer\": [heads]}");
    for (auto it = ph.begin(); it != ph.end(); ++it) {
      const std::string at = field + "['" + it.key() + "']";
      int64_t layer = -1;
      try {
        size_t used = 0;
        layer = std::stoll(it.key(), &used);
        if (used != it.key().size()) layer = -1;
      } catch (const std::exception&) {
      }
      if (layer < 0 || layer >= layers_of[f]) bad(at + ": not a layer of the " + std::to_string(layers_of[f]));
      if (!it.value().is_array()) bad(at + " must be a list of head indices");
      auto& set = (*heads_out[f])[layer];
      for (const auto& h : it.value()) {
        if (!h.is_number_integer() || h.get<int64_t>() < 0 || h.get<int64_t>() >= heads_of[f])
          bad(at + " holds " + h.dump() + ", not a head index below " + std::to_string(heads_of[f]));
        set.insert(h.get<int64_t>());
      }
      // Compaction keeps head 0 of a block whose heads all die: a block without heads is no model of ours.
      if (static_cast<int64_t>(set.size()) >= heads_of[f]) bad(at + " removes every head of the block (one must stay)");
    }
  }
  std::vector<int64_t>* widths_out[] = {&s.encoder_intermediate_sizes, &s.decoder_intermediate_sizes};
  const int64_t layers2[] = {encoder_layers, decoder_layers}, full[] = {encoder_ffn, decoder_ffn};
  for (int f = 0; f < 2; ++f) {
    const std::string field = kWidthFields[f];
    if (!j.contains(field) || j[field].is_null()) continue;
    const auto& w = j[field];
    if (!w.is_array() || static_cast<int64_t>(w.size()) != layers2[f])
      bad("field '" + field + "' must be a list of " + std::to_string(layers2[f]) + " per-layer FFN widths, got " + w.dump());
    for (const auto& v : w) {
      if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > full[f])
        bad("field '" + field + "' holds " + v.dump() + ", not a width in [1, " + std::to_string(full[f]) + "]");
      widths_out[f]->push_back(v.get<int64_t>());
    }
  }
  return s;
}

void Seq2SeqStructure::to_json(nlohmann::json& j) const {
  const std::map<int64_t, std::set<int64_t>>* heads[] = {&encoder_pruned_heads, &decoder_pruned_heads, &cross_pruned_heads};
  for (int f = 0; f < 3; ++f) {
    nlohmann::json o = nlohmann::json::object();
    for (const auto& [layer, set] : *heads[f])
      if (!set.empty()) o[std::to_string(layer)] = std::vector<int64_t>(set.begin(), set.end());
    if (o.empty()) j.erase(kHeadFields[f]);
    else j[kHeadFields[f]] = o;
  }
  const std::vector<int64_t>* widths[] = {&encoder_intermediate_sizes, &decoder_intermediate_sizes};
  for (int f = 0; f < 2; ++f) {
    if (widths[f]->empty()) j.erase(kWidthFields[f]);
    else j[kWidthFields[f]] = *widths[f];
  }
}

std::vector<int64_t> Seq2SeqStructure::kept_heads(const std::string& stack, const std::string& role, int64_t layer, int64_t heads) const {
  const auto& pruned = role == "cross" ? cross_pruned_heads : stack == "decoder" ? decoder_pruned_heads : encoder_pruned_heads;
  const auto it = pruned.find(layer);
  std::vector<int64_t> kept;
  for (int64_t h = 0; h < heads; ++h)
    if (it == pruned.end() || !it->second.count(h)) kept.push_back(h);
  return kept;
}

int64_t Seq2SeqStructure::ffn_width(const std::string& stack, int64_t layer, int64_t full) const {
  const auto& w = stack == "decoder" ? decoder_intermediate_sizes : encoder_intermediate_sizes;
  return w.empty() ? full : w.at(static_cast<size_t>(layer));
}

std::shared_ptr<Seq2SeqImpl> load_seq2seq(const std::string& dir, const std::string& device) {
  const auto path = dir + "/config.json";
  const nlohmann::json j = read_json_file(path, "E_BAD_CONFIG", "config");
  const std::string type = j.contains("model_type") && j["model_type"].is_string() ? j["model_type"].get<std::string>() : "";
  if (type != "bart" && type != "t5") throw Error("E_BAD_CONFIG", path + ": model_type '" + type + "' is not an encoder-decoder family blockprune knows (bart, t5)");
  auto model = type == "bart" ? load_bart(j, path, dir, device) : load_t5(j, path, dir, device);
  place_weights_on_huge_pages(*model);
  return model;
}

void load_named(torch::nn::Module& module, const NamedTensors& weights, const std::vector<std::pair<std::string, std::string>>& aliases,
                const std::string& source) {
  std::map<std::string, at::Tensor> given;
  for (const auto& [name, t] : weights)
    if (!given.emplace(name, t).second) throw Error("E_BAD_CHECKPOINT", source + " holds tensor '" + name + "' twice");
  std::map<std::string, std::string> alias(aliases.begin(), aliases.end());
  std::set<std::string> used;
  at::NoGradGuard no_grad;
  auto copy = [&](const std::string& name, at::Tensor& target) {
    const auto a = alias.find(name);
    const std::string stored = a == alias.end() ? name : a->second;
    const auto it = given.find(stored);
    if (it == given.end()) throw Error("E_BAD_CHECKPOINT", source + " has no tensor '" + stored + "'" + (stored != name ? " (for " + name + ")" : ""));
    if (it->second.sizes() != target.sizes())
      throw Error("E_BAD_CHECKPOINT", source + ": '" + stored + "' is " + shape_str(it->second.sizes().vec()) + ", the model's " + name + " is " +
                                          shape_str(target.sizes().vec()));
    if (!it->second.is_floating_point()) throw Error("E_BAD_CHECKPOINT", source + ": '" + stored + "' is not a floating-point tensor");
    target.copy_(it->second.to(target.dtype()));
    used.insert(stored);
  };
  for (auto& item : module.named_parameters()) copy(item.key(), item.value());
  for (auto& item : module.named_buffers()) copy(item.key(), item.value());
  // A checkpoint that also stores a tied copy under the module's own name (older ones keep lm_head.weight):
  // the tie wins, the copy is known and left.
  for (const auto& [name, t] : weights)
    if (!used.count(name) && !alias.count(name)) throw Error("E_BAD_CHECKPOINT", source + " holds tensor '" + name + "' that this model does not have");
}

}  // namespace bp
