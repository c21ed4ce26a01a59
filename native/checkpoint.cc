#include "checkpoint.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "atomic_file.h"
#include "errors.h"
#include "patch.h"
#include "quantize.h"
#include "safetensors.h"
#include "torch_bin.h"

namespace bp {
namespace {

bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool dir_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}


bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

NamedTensors read_sharded(const std::string& dir, const std::string& index_path) {
  const nlohmann::json j = read_json_file(index_path, "E_BAD_CHECKPOINT", "index");
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw Error("E_BAD_CHECKPOINT", "invalid index " + index_path + ": no 'weight_map' object");
  std::map<std::string, std::string> where;  // tensor -> shard
  std::set<std::string> shards;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string()) throw Error("E_BAD_CHECKPOINT", "invalid index " + index_path + ": weight_map['" + it.key() + "'] is not a file name");
    const auto shard = it.value().get<std::string>();
    if (shard.find('/') != std::string::npos || shard.find("..") != std::string::npos)
      throw Error("E_BAD_CHECKPOINT", "invalid index " + index_path + ": shard name '" + shard + "' leaves the directory");
    where[it.key()] = shard;
    shards.insert(shard);
  }
  NamedTensors out;
  for (const auto& shard : shards) {
    auto file = read_safetensors(join_path(dir, shard));
    for (auto& [name, t] : file.tensors) {
      auto w = where.find(name);
      if (w == where.end() || w->second != shard)
        throw Error("E_BAD_CHECKPOINT", "shard " + join_path(dir, shard) + " holds tensor '" + name + "' that " + index_path + " does not map to it");
      out.emplace_back(name, std::move(t));
      where.erase(w);
    }
  }
  if (!where.empty())
    throw Error("E_MISSING_TENSOR", "tensor '" + where.begin()->first + "' listed in " + index_path + " is missing from shard " +
                                        join_path(dir, where.begin()->second));
  return out;
}

// The tensors whose shapes come from config fields alone must be in the checkpoint, with those shapes,
// before the model is built: building allocates and randomly initialises (writes) every parameter, so a
// config asking for 1000 layers of width 2^26 or 2^26 positions used to fill tens of GiB before the first
// shape check. It must fail here, with a coded error naming the tensor and the config fields.
void check_config_against_weights(const BertConfig& config, TaskKind kind, const std::map<std::string, at::Tensor>& tensors,
                                  bool prefixed, const std::string& src, const std::string& config_path) {
  const Family& fam = *config.family;
  const std::string base = fam.prefix + ".";
  auto hf = [&](const std::string& name) { return prefixed || !starts_with(name, base) ? name : name.substr(base.size()); };
  auto need = [&](const std::string& name) -> const at::Tensor& {
    auto it = tensors.find(name);
    if (it == tensors.end())
      throw Error("E_MISSING_TENSOR", src + " lacks tensor '" + hf(name) + "' that a " + architecture_name(fam, kind) + " needs");
    return it->second;
  };
  auto expect = [&](const std::string& name, const std::vector<int64_t>& shape, const std::string& fields) {
    const auto got = need(name).sizes().vec();
    if (got != shape)
      throw Error("E_SHAPE", src + ": tensor '" + hf(name) + "' has shape " + shape_str(got) + " but " + config_path +
                                 " implies " + shape_str(shape) + " (" + fields + ")");
  };
  const std::string e = base + "embeddings.";
  expect(e + "word_embeddings.weight", {config.vocab_size, config.hidden_size}, "vocab_size x hidden_size");
  expect(e + "position_embeddings.weight", {config.max_position_embeddings, config.hidden_size}, "max_position_embeddings x hidden_size");
  if (fam.token_types)
    expect(e + "token_type_embeddings.weight", {config.type_vocab_size, config.hidden_size}, "type_vocab_size x hidden_size");
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string p = fam.layer_prefix(i);
    need(p + fam.query + ".weight");
    const auto& f = need(p + fam.inter + ".weight");
    if (f.dim() != 2 || f.size(1) != config.hidden_size)
      throw Error("E_SHAPE", src + ": tensor '" + hf(p + fam.inter + ".weight") + "' has shape " + shape_str(f.sizes().vec()) +
                                 ", not [width, " + std::to_string(config.hidden_size) + "] (hidden_size in " + config_path + ")");
  }
  const std::string cls = fam.cls_out + ".weight";
  if (kind == TaskKind::SequenceClassification && tensors.count(cls)) {
    const auto got = tensors.at(cls).sizes().vec();
    const std::vector<int64_t> shape{config.num_labels, config.hidden_size};
    if (got != shape)
      throw Error("E_SHAPE", src + ": tensor '" + cls + "' has shape " + shape_str(got) + " but the config implies " +
                                 shape_str(shape) + " (num_labels x hidden_size)");
  }
}

}  // namespace

std::vector<std::string> load_state(torch::nn::Module& module, const std::string& path, bool strict,
                                    const std::function<std::string(const std::string&)>& key_of) {
  auto file = read_safetensors(path);
  auto params = module.named_parameters();
  at::NoGradGuard no_grad;
  std::vector<std::string> loaded;
  std::vector<std::pair<at::Tensor*, const at::Tensor*>> plan;
  for (auto& [name, t] : file.tensors) {
    const std::string key = key_of ? key_of(name) : name;
    auto* p = params.find(key);
    if (!p) {
      if (strict) throw Error("E_UNEXPECTED_TENSOR", path + " holds tensor '" + name + "' that this model does not have");
      continue;
    }
    if (p->sizes() != t.sizes())
      throw Error("E_SHAPE", path + ": tensor '" + name + "' has shape " + shape_str(t.sizes().vec()) + " but the model's is " +
                                 shape_str(p->sizes().vec()));
    // A quantized weight or scale takes only its own dtype (converting into it would requantize nothing) and
    // values quantization allows, as from_pretrained reads them.
    const bool scale = is_weight_scale(key);
    if (p->scalar_type() != at::kFloat || scale) {
      if (t.scalar_type() != p->scalar_type())
        throw Error("E_BAD_CHECKPOINT", path + ": tensor '" + name + "' has dtype " + safetensors_dtype(t.scalar_type()) +
                                            " but the model's is " + safetensors_dtype(p->scalar_type()));
      check_quantized_values(t, p->scalar_type(), scale, path + ": tensor '" + name + "'");
    }
    if (t.is_floating_point() && !at::isfinite(t).all().item<bool>())
      throw Error("E_BAD_CHECKPOINT", path + ": tensor '" + name + "' holds NaN or infinite values");
    plan.emplace_back(p, &t);
    loaded.push_back(name);
  }
  for (auto& [p, t] : plan) p->copy_(t->to(p->scalar_type()));
  return loaded;
}

at::Device parse_device(const std::string& device) {
  c10::optional<at::Device> d;
  try {
    d = at::Device(device);
  } catch (const c10::Error&) {
    throw Error("E_INVALID_ARG", "Expected device 'cpu', 'cuda' or 'cuda:N' but received '" + device + "'");
  }
  if (d->is_cuda()) {
    if (!at::hasCUDA())
      throw Error("E_INVALID_ARG", "device '" + device + "' requested but this build of blockprune/libtorch has no CUDA or no GPU is visible");
  } else if (!d->is_cpu()) {
    throw Error("E_INVALID_ARG", "Expected device 'cpu', 'cuda' or 'cuda:N' but received '" + device + "'");
  }
  return *d;
}

TaskKind parse_task(const std::string& task) {
  if (task == "bare" || task == "feature-extraction") return TaskKind::Bare;
  if (task == "text-classification" || task == "sequence-classification") return TaskKind::SequenceClassification;
  if (task == "question-answering") return TaskKind::QuestionAnswering;
  throw Error("E_INVALID_ARG", "Expected task 'auto', 'bare', 'text-classification' or 'question-answering' but received '" + task + "'");
}

NamedTensors read_weights(const std::string& dir, std::string* source) {
  if (!dir_exists(dir)) throw Error("E_FILE_NOT_FOUND", "model directory " + dir + " does not exist");
  const auto st = join_path(dir, "model.safetensors");
  const auto idx = join_path(dir, "model.safetensors.index.json");
  const auto bin = join_path(dir, "pytorch_model.bin");
  if (file_exists(st)) {
    if (source) *source = st;
    return read_safetensors(st).tensors;
  }
  if (file_exists(idx)) {
    if (source) *source = idx;
    return read_sharded(dir, idx);
  }
  if (file_exists(bin)) {
    if (source) *source = bin;
    return read_torch_zip(bin);
  }
  throw Error("E_FILE_NOT_FOUND", "no weights in " + dir + ": looked for model.safetensors, model.safetensors.index.json and pytorch_model.bin");
}

int64_t count_parameters(const Bert& model) { return count_parameters(*model); }

int64_t count_parameters(const torch::nn::Module& model) {
  // Mask scores are training state, not part of the model users deploy, and a quantized linear's scales are
  // part of its weight: not counted.
  int64_t n = 0;
  for (const auto& item : model.named_parameters())
    if (item.key().find("mask_scores") == std::string::npos && item.key().find("weight_scale") == std::string::npos) n += item.value().numel();
  return n;
}

ModelInfo describe_model(const Bert& model) {
  ModelInfo info;
  const auto& c = model->config();
  info.kind = model->kind();
  info.config = c;
  info.config_json = c.to_json(model->kind()).dump();
  info.num_parameters = count_parameters(model);
  info.device = model->device().str();
  for (int64_t i = 0; i < model->num_layers(); ++i)
    info.layers.push_back({c.kept_heads(i), model->layer(i).inter->weight.size(0)});
  info.patched = is_patched(model);
  if (info.patched) {
    info.threshold = model->pruning_state->threshold;
    info.pruning_plan = model->pruning_plan.dump();
  }
  info.parameters = state_dict_shapes(model);
  for (const auto& p : model->parameters()) {
    info.weight_bytes += p.numel() * p.element_size();
    if (p.is_cpu()) info.cpu_bytes += p.numel() * p.element_size();
  }
  info.dtype = dtype_name(quant_spec(c, "model configuration"));
  return info;
}

Bert create_random(const BertConfig& config, TaskKind kind, uint64_t seed, const std::string& device) {
  const QuantSpec q = quant_spec(config, "model configuration");
  if (q.quantized) {
    // Random fp32 weights, quantized as quantize() would: the config's quantization_config describes the result.
    BertConfig fp32 = config;
    fp32.raw.erase("quantization_config");
    return quantize_model(create_random(fp32, kind, seed, device), dtype_name(q), q.per_channel);
  }
  Bert m(config, kind);
  m->init_weights(seed);
  m->to(parse_device(device));
  m->eval();
  return m;
}

Loaded load_pretrained(const std::string& dir, const LoadOptions& opts) {
  const auto config_path = join_path(dir, "config.json");
  if (!dir_exists(dir)) throw Error("E_FILE_NOT_FOUND", "model directory " + dir + " does not exist");
  BertConfig config = BertConfig::from_file(config_path);
  const QuantSpec quant = quant_spec(config, config_path);
  if (quant.quantized && config.raw.contains("pruning_plan"))
    throw Error("E_BAD_CONFIG", "invalid config " + config_path + ": a quantized model cannot carry a pruning_plan (compact before quantizing)");
  Loaded out;
  NamedTensors raw = read_weights(dir, &out.report.weights_file);
  const std::string& src = out.report.weights_file;

  // A bare model's checkpoint (BertModel, RobertaModel, ...) has no "bert." prefix; we keep everything under
  // the family's prefix internally.
  const Family& fam = *config.family;
  const std::string base = fam.prefix + ".";
  bool prefixed = false;
  for (const auto& [name, t] : raw)
    if (starts_with(name, base)) prefixed = true;
  std::map<std::string, at::Tensor> tensors;
  for (auto& [name, t] : raw) {
    std::string key = name;
    if (!prefixed && (starts_with(name, "embeddings.") || starts_with(name, fam.layers.substr(0, fam.layers.find('.') + 1)) ||
                      starts_with(name, "pooler.")))
      key = base + name;
    if (!tensors.emplace(key, t).second) throw Error("E_BAD_CHECKPOINT", src + " holds tensor '" + name + "' twice");
  }

  TaskKind kind;
  if (opts.task != "auto") {
    kind = parse_task(opts.task);
  } else if (tensors.count(fam.qa_out + ".weight")) {
    kind = TaskKind::QuestionAnswering;
  } else if (tensors.count(fam.cls_out + ".weight")) {
    kind = TaskKind::SequenceClassification;
  } else {
    kind = TaskKind::Bare;
    for (const auto& a : config.architectures) {
      if (a.find("QuestionAnswering") != std::string::npos) kind = TaskKind::QuestionAnswering;
      if (a.find("SequenceClassification") != std::string::npos) kind = TaskKind::SequenceClassification;
    }
  }
  if (opts.num_labels > 0) config.num_labels = opts.num_labels;
  check_config_against_weights(config, kind, tensors, prefixed, src, config_path);

  // Per-layer sizes come from the weights (compact models differ layer by layer) and must agree with
  // whatever the config says about them.
  const int64_t hd = config.head_dim();
  std::vector<int64_t> widths;
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string p = fam.layer_prefix(i);
    auto q = tensors.find(p + fam.query + ".weight");
    if (q != tensors.end()) {
      if (q->second.dim() != 2 || q->second.size(0) % hd != 0)
        throw Error("E_SHAPE", src + ": tensor '" + q->first + "' has shape " + shape_str(q->second.sizes().vec()) +
                                   ", not [heads x " + std::to_string(hd) + ", hidden]");
      const int64_t heads = q->second.size(0) / hd;
      if (heads != config.layer_heads(i))
        throw Error("E_SHAPE", src + ": tensor '" + q->first + "' has " + std::to_string(heads) + " heads but " + config_path +
                                   " implies " + std::to_string(config.layer_heads(i)) +
                                   " for layer " + std::to_string(i) + " (num_attention_heads minus pruned_heads)");
    }
    auto f = tensors.find(p + fam.inter + ".weight");
    widths.push_back(f != tensors.end() && f->second.dim() == 2 ? f->second.size(0) : config.layer_intermediate(i));
  }
  if (!config.intermediate_sizes.empty()) {
    for (int64_t i = 0; i < config.num_hidden_layers; ++i)
      if (widths[i] != config.intermediate_sizes[i])
        throw Error("E_SHAPE", src + ": layer " + std::to_string(i) + " FFN width is " + std::to_string(widths[i]) +
                                   " but " + config_path + " intermediate_sizes says " + std::to_string(config.intermediate_sizes[i]));
  } else {
    bool uniform = true;
    for (int64_t w : widths) uniform = uniform && w == config.intermediate_size;
    if (!uniform) config.intermediate_sizes = widths;
  }

  Bert model(config, kind);
  // A checkpoint saved while patched carries its plan: patch again so the scores load by name.
  if (config.raw.contains("pruning_plan") && config.raw["pruning_plan"].is_object()) {
    // The plan comes from the file: its faults are the config's (E_BAD_CONFIG naming it), not an argument's.
    try {
      patch_model(model, config.raw["pruning_plan"]);
    } catch (const Error& e) {
      throw Error("E_BAD_CONFIG", "invalid config " + config_path + ": its pruning_plan cannot be applied (" + e.what() + ")");
    }
  }
  // Quantized linears take the dtypes the checkpoint must hold (int8 + fp32 scales, or bf16).
  apply_quant_layout(model);
  {
    at::NoGradGuard no_grad;
    std::set<std::string> used;
    for (auto& item : model->named_parameters()) {
      const std::string& name = item.key();
      at::Tensor& param = item.value();
      auto it = tensors.find(name);
      // Task heads, and a pooler where the family's task checkpoints have none (RobertaModel from a
      // RobertaForSequenceClassification checkpoint), are created when missing, as HF does.
      const bool head = fam.is_head(name) || (!fam.cls_pre_is_pooler && starts_with(name, base + "pooler."));
      if (it == tensors.end()) {
        if (head) {
          out.report.newly_initialized.push_back(name);
          continue;
        }
        throw Error("E_MISSING_TENSOR", src + " lacks tensor '" + (prefixed || !starts_with(name, base) ? name : name.substr(base.size())) +
                                            "' that a " + architecture_name(fam, kind) + " needs");
      }
      if (it->second.sizes() != param.sizes())
        throw Error("E_SHAPE", src + ": tensor '" + it->first + "' has shape " + shape_str(it->second.sizes().vec()) +
                                   " but the config implies " + shape_str(param.sizes().vec()));
      const bool scale = is_weight_scale(name);
      if (param.scalar_type() != at::kFloat || scale) {
        // A quantized weight or its scales are read as stored: another dtype is not what quantization_config says.
        if (it->second.scalar_type() != param.scalar_type())
          throw Error("E_BAD_CHECKPOINT", src + ": tensor '" + it->first + "' has dtype " + safetensors_dtype(it->second.scalar_type()) + " but " +
                                              config_path + " (quantization_config: " + dtype_name(quant) + ") implies " +
                                              safetensors_dtype(param.scalar_type()));
        check_quantized_values(it->second, param.scalar_type(), scale, src + ": tensor '" + it->first + "'");
      } else if (!it->second.is_floating_point()) {
        throw Error("E_BAD_CHECKPOINT", src + ": tensor '" + it->first + "' has integer dtype " + c10::toString(it->second.scalar_type()) +
                                            (quant.quantized ? "" : " (a quantized checkpoint needs quantization_config in config.json)"));
      }
      // A NaN or infinite weight would only show up later as NaN outputs: refuse it here, by name.
      if (!at::isfinite(it->second).all().item<bool>()) {
        const int64_t bad = it->second.numel() - at::isfinite(it->second).sum().item<int64_t>();
        throw Error("E_BAD_CHECKPOINT", src + ": tensor '" + it->first + "' holds " + std::to_string(bad) + " NaN or infinite value(s)");
      }
      param.copy_(it->second.to(param.scalar_type()));
      used.insert(name);
    }
    for (const auto& [name, t] : tensors) {
      if (used.count(name)) continue;
      // Known extras: the position_ids buffer, pretraining heads (BERT's cls.*, RoBERTa's lm_head.*,
      // DistilBERT's vocab_*), a pooler the model does not use (QA, RoBERTa's classifier), or a task head of
      // another task than the one asked for.
      bool pretraining = false;
      for (const char* p : {"cls.", "lm_head.", "vocab_transform.", "vocab_layer_norm.", "vocab_projector."})
        pretraining = pretraining || starts_with(name, p);
      if (name == base + "embeddings.position_ids" || pretraining || (!model->has_pooler() && starts_with(name, base + "pooler.")) ||
          (fam.is_head(name) && opts.task != "auto")) {
        out.report.ignored.push_back(name);
        continue;
      }
      throw Error("E_UNEXPECTED_TENSOR", src + " holds unexpected tensor '" + name + "' (shape " + shape_str(t.sizes().vec()) +
                                             ") that a " + architecture_name(fam, kind) + " does not have");
    }
  }
  if (!out.report.newly_initialized.empty())
    model->init_head(opts.seed, std::set<std::string>(out.report.newly_initialized.begin(), out.report.newly_initialized.end()));
  model->to(parse_device(opts.device));
  model->eval();
  out.model = model;
  return out;
}

namespace {
// The state-dict key of an internal parameter name: a bare model (BertModel, ...) has no "bert." prefix.
std::string hf_key(const Bert& model, const std::string& name) {
  const std::string base = model->family().prefix + ".";
  return model->kind() == TaskKind::Bare && starts_with(name, base) ? name.substr(base.size()) : name;
}
}  // namespace

NamedTensors state_dict(const Bert& model) {
  NamedTensors out;
  for (const auto& item : model->named_parameters())
    out.emplace_back(hf_key(model, item.key()), item.value().detach().to(at::kCPU));
  return out;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> state_dict_shapes(const Bert& model) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const auto& item : model->named_parameters()) out.emplace_back(hf_key(model, item.key()), item.value().sizes().vec());
  return out;
}

void save_pretrained(const Bert& model, const std::string& dir, const std::vector<std::string>& copy_files) {
  // Everything is read from the model before the directory is touched.
  const NamedTensors tensors = state_dict(model);
  auto j = model->config().to_json(model->kind());
  if (is_patched(model)) {
    j["pruning_plan"] = model->pruning_plan;
    j["pruning_plan"]["threshold"] = model->pruning_state->threshold;
  }
  write_model_directory(dir, tensors, j.dump(2) + "\n", copy_files);
}

void write_model_directory(const std::string& dir, const NamedTensors& tensors, const std::string& config, const std::vector<std::string>& copy_files) {
  // Staged whole, then swapped in: weights and config of one save are never paired with another's.
  write_directory_atomic(dir, [&](const std::string& staging) {
    write_safetensors(join_path(staging, "model.safetensors"), tensors, {{"format", "pt"}});
    write_file_atomic(join_path(staging, "config.json"), config);
    for (const auto& src : copy_files) {
      const auto slash = src.find_last_of('/');
      copy_file_atomic(src, join_path(staging, slash == std::string::npos ? src : src.substr(slash + 1)));
    }
  });
}

}  // namespace bp
