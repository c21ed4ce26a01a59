#include "seq2seq.h"

#include <c10/core/GradMode.h>

#include <map>
#include <set>

#include "checkpoint.h"
#include "config.h"
#include "errors.h"

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

std::shared_ptr<Seq2SeqImpl> load_seq2seq(const std::string& dir, const std::string& device) {
  const auto path = dir + "/config.json";
  const nlohmann::json j = read_json_file(path, "E_BAD_CONFIG", "config");
  const std::string type = j.contains("model_type") && j["model_type"].is_string() ? j["model_type"].get<std::string>() : "";
  if (type == "bart") return load_bart(dir, device);
  if (type == "t5") return load_t5(dir, device);
  throw Error("E_BAD_CONFIG", path + ": model_type '" + type + "' is not an encoder-decoder family blockprune knows (bart, t5)");
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
