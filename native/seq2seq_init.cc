#include "seq2seq_init.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <cmath>

#include "atomic_file.h"
#include "bart.h"
#include "checkpoint.h"
#include "config.h"
#include "errors.h"
#include "huge_pages.h"
#include "safetensors.h"
#include "t5.h"

namespace bp {

namespace {

void draw(at::Tensor& t, double std, at::Generator& gen) { t.copy_(at::normal(0.0, std, t.sizes(), gen)); }

// A number field of the raw config (init_std, initializer_factor: read only here, so the families' configs do
// not carry them); E_BAD_CONFIG when present but not a positive number.
double positive_field(const nlohmann::json& j, const char* key, double def) {
  if (!j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_number() || !(j[key].get<double>() > 0))
    throw Error("E_BAD_CONFIG", std::string("invalid config: field '") + key + "' must be a positive number, got " + j[key].dump());
  return j[key].get<double>();
}

void init_bart(BartImpl& model, at::Generator& gen) {
  const double std = positive_field(nlohmann::json::parse(model.config().config_json), "init_std", 0.02);
  for (auto& m : model.modules(/*include_self=*/false)) {
    if (auto* lin = m->as<LinearImpl>()) {
      draw(lin->weight, std, gen);
      if (lin->bias.defined()) lin->bias.zero_();
    } else if (auto* emb = m->as<EmbeddingImpl>()) {
      draw(emb->weight, std, gen);
      if (emb->padding_idx >= 0) emb->weight[emb->padding_idx].zero_();
    } else if (auto* ln = m->as<LayerNormImpl>()) {
      ln->weight.fill_(1.0);
      ln->bias.zero_();
    }
  }
  if (model.final_logits_bias.defined()) model.final_logits_bias.zero_();
}

void init_t5(T5Model& model, at::Generator& gen) {
  const auto& c = model.config;
  const double f = positive_field(c.raw, "initializer_factor", 1.0);
  const double d_model = static_cast<double>(c.d_model);
  draw(model.shared->weight, f, gen);
  for (auto& m : model.modules(/*include_self=*/false)) {
    if (auto* ln = m->as<T5LayerNormImpl>()) {
      ln->weight.fill_(f);
    } else if (auto* a = m->as<T5AttentionImpl>()) {
      draw(a->q->weight, f * std::pow(d_model * static_cast<double>(c.d_kv), -0.5), gen);
      draw(a->k->weight, f * std::pow(d_model, -0.5), gen);
      draw(a->v->weight, f * std::pow(d_model, -0.5), gen);
      draw(a->o->weight, f * std::pow(static_cast<double>(c.num_heads * c.d_kv), -0.5), gen);
      if (a->relative_attention_bias) draw(a->relative_attention_bias->weight, f * std::pow(d_model, -0.5), gen);
    } else if (auto* b = m->as<T5BlockImpl>()) {
      for (Linear* wi : {&b->wi, &b->wi_0, &b->wi_1})
        if (*wi) draw((*wi)->weight, f * std::pow(d_model, -0.5), gen);
      draw(b->wo->weight, f * std::pow(static_cast<double>(c.d_ff), -0.5), gen);
    }
  }
  if (model.lm_head) {
    const double bound = std::pow(d_model, -0.5);
    model.lm_head->weight.copy_(at::rand(model.lm_head->weight.sizes(), gen).mul_(2 * bound).sub_(bound));
  }
}

}  // namespace

void init_seq2seq_weights(Seq2SeqImpl& model, uint64_t seed) {
  at::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  // Drawn on the CPU (one generator, one sequence whatever the device), then copied into place.
  const auto device = model.parameters().at(0).device();
  model.to(at::kCPU);
  if (auto* bart = dynamic_cast<BartImpl*>(&model)) init_bart(*bart, gen);
  else if (auto* t5 = dynamic_cast<T5Model*>(&model)) init_t5(*t5, gen);
  else throw Error("E_INVALID_ARG", "no random init for a " + model.info().architecture);
  model.to(device);
}

std::shared_ptr<Seq2SeqImpl> build_seq2seq(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw Error("E_BAD_CONFIG", "invalid config " + source + ": not a JSON object");
  const std::string type = j.contains("model_type") && j["model_type"].is_string() ? j["model_type"].get<std::string>() : "";
  if (type == "bart") return std::make_shared<BartImpl>(BartConfig::from_json(j, source));
  if (type == "t5") return std::make_shared<T5Model>(T5Config::from_json(j, source), j.dump());
  throw Error("E_BAD_CONFIG", source + ": model_type '" + type + "' is not an encoder-decoder family blockprune knows (bart, t5)");
}

std::shared_ptr<Seq2SeqImpl> create_seq2seq(const std::string& config_json, uint64_t seed, const std::string& device) {
  const std::string source = "configJson";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(config_json);
  } catch (const nlohmann::json::exception& e) {
    throw Error("E_BAD_CONFIG", "invalid config " + source + ": not JSON (" + e.what() + ")");
  }
  auto model = build_seq2seq(j, source);
  init_seq2seq_weights(*model, seed);
  model->to(parse_device(device));
  model->eval();
  place_weights_on_huge_pages(*model);
  return model;
}

void save_seq2seq(const Seq2SeqImpl& model, const std::string& dir, const std::vector<std::string>& copy_files) {
  NamedTensors tensors;
  // named_parameters holds each tied table once (the modules that share it do not register it again).
  for (const auto& item : model.named_parameters()) tensors.emplace_back(item.key(), item.value().detach().to(at::kCPU).contiguous());
  for (const auto& item : model.named_buffers()) tensors.emplace_back(item.key(), item.value().detach().to(at::kCPU).contiguous());
  write_model_directory(dir, tensors, model.info().config_json, copy_files);
}

}  // namespace bp
