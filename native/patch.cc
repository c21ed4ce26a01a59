#include "patch.h"

#include <c10/core/GradMode.h>
#include <torch/nn/modules/container/modulelist.h>

#include <map>
#include <set>

#include "errors.h"
#include "quantize.h"

namespace bp {
namespace {

// nn_pruning's module path for scores: <linear>.mask_module.context_modules.<i>.mask_scores
struct ScoresImpl : torch::nn::Module {
  explicit ScoresImpl(at::Tensor init) { mask_scores = register_parameter("mask_scores", std::move(init)); }
  at::Tensor mask_scores;
};
TORCH_MODULE(Scores);

template <typename T>
T field(const nlohmann::json& j, const char* key, T def, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return def;
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error("E_INVALID_ARG", "pruning plan: " + where + "." + key + " has the wrong type: " + j[key].dump());
  }
}

}  // namespace

std::map<std::string, LinearImpl*> linears_by_name(const torch::nn::Module& root) {
  std::map<std::string, LinearImpl*> out;
  for (const auto& item : root.named_modules("", /*include_self=*/false))
    if (auto* lin = item.value()->as<LinearImpl>()) out[item.key()] = lin;
  return out;
}

std::map<std::string, LinearImpl*> linears_by_name(const Bert& model) { return linears_by_name(*model); }

bool is_patched(const Bert& model) { return model->pruning_state != nullptr; }

void set_threshold(Bert& model, double threshold) {
  if (!model->pruning_state) throw Error("E_INVALID_ARG", "the model is not patched for pruning");
  model->pruning_state->threshold = threshold;
}

namespace {
// A plan's initial threshold, in the state its linears will share.
std::shared_ptr<PruningState> plan_state(const nlohmann::json& plan) {
  if (!plan.is_object() || !plan.contains("modules") || !plan["modules"].is_array())
    throw Error("E_INVALID_ARG", "pruning plan: expected {\"modules\": [...]}");
  auto state = std::make_shared<PruningState>();
  if (plan.contains("threshold") && plan["threshold"].is_number()) state->threshold = plan["threshold"].get<double>();
  return state;
}
}  // namespace

PatchReport patch_model(Bert& model, const nlohmann::json& plan) {
  if (is_patched(model)) throw Error("E_INVALID_ARG", "the model is already patched: compile() it before patching again");
  refuse_quantized(model, "patching for pruning");
  auto state = plan_state(plan);
  PatchReport report = patch_linears(*model, plan, state);
  model->pruning_state = state;
  model->pruning_plan = plan;
  return report;
}

PatchReport patch_seq2seq(Seq2SeqImpl& model, const nlohmann::json& plan) {
  if (model.is_patched()) throw Error("E_INVALID_ARG", "the model is already patched for pruning: it cannot be patched again");
  auto state = plan_state(plan);
  // Only the prunable blocks' linears: lm_head and a classification head stay dense, as in nn_pruning.
  std::set<std::string> prunable;
  for (const auto& b : model.prunable_blocks()) prunable.insert(b.linears.begin(), b.linears.end());
  for (const auto& e : plan["modules"])
    if (e.is_object() && e.contains("module") && e["module"].is_string() && !prunable.count(e["module"].get<std::string>()))
      throw Error("E_INVALID_ARG", "pruning plan: '" + e["module"].get<std::string>() +
                                       "' is not an attention or FFN linear of this model's encoder or decoder layers");
  PatchReport report = patch_linears(model, plan, state);
  model.pruning_state = state;
  model.pruning_plan = plan;
  return report;
}

void set_threshold(Seq2SeqImpl& model, double threshold) {
  if (!model.is_patched()) throw Error("E_INVALID_ARG", "the model is not patched for pruning");
  model.pruning_state->threshold = threshold;
}

NamedTensors current_masks(const Seq2SeqImpl& model) {
  std::set<std::string> prunable;
  for (const auto& b : model.prunable_blocks()) prunable.insert(b.linears.begin(), b.linears.end());
  return linear_masks(model, [&](const std::string& name) { return prunable.count(name) > 0; });
}

PatchReport patch_linears(torch::nn::Module& root, const nlohmann::json& plan, const std::shared_ptr<PruningState>& state) {
  auto linears = linears_by_name(root);

  // Validate everything first, so a bad plan leaves the model untouched.
  struct Item {
    LinearImpl* lin;
    std::string name;
    std::shared_ptr<MaskState> m;
    std::string share_with;
    double init;
  };
  std::vector<Item> items;
  std::set<std::string> seen;
  for (const auto& e : plan["modules"]) {
    if (!e.is_object() || !e.contains("module") || !e["module"].is_string())
      throw Error("E_INVALID_ARG", "pruning plan: every entry needs a \"module\" name");
    const std::string name = e["module"].get<std::string>();
    auto it = linears.find(name);
    if (it == linears.end()) throw Error("E_INVALID_ARG", "pruning plan: no linear layer named '" + name + "' in this model");
    if (!seen.insert(name).second) throw Error("E_INVALID_ARG", "pruning plan: '" + name + "' appears twice");
    auto m = std::make_shared<MaskState>();
    m->method = parse_mask_method(field<std::string>(e, "method", "topK", name));
    if (m->method == MaskMethod::Disabled) continue;
    m->layout = parse_mask_layout(field<std::string>(e, "layout", "block", name));
    m->block_rows = field<int64_t>(e, "blockRows", 1, name);
    m->block_cols = field<int64_t>(e, "blockCols", 1, name);
    m->bias_mask = field<bool>(e, "biasMask", true, name);
    m->min_elements = field<double>(e, "minElements", 0.005, name);
    m->group = field<std::string>(e, "group", "dense", name);
    m->state = state;
    const auto& w = it->second->weight;
    const int64_t out = w.size(0), in = w.size(1);
    if (m->layout == MaskLayout::Block) {
      if (m->block_rows < 1 || m->block_cols < 1 || out % m->block_rows != 0 || in % m->block_cols != 0)
        throw Error("E_INVALID_ARG", "block " + std::to_string(m->block_rows) + "x" + std::to_string(m->block_cols) +
                                         " does not divide the weight " + shape_str({out, in}) + " of " + name);
    }
    if (!(m->min_elements >= 0 && m->min_elements <= 1))
      throw Error("E_INVALID_ARG", "pruning plan: minElements of " + name + " must be in [0, 1]");
    items.push_back({it->second, name, m, field<std::string>(e, "shareWith", "", name), field<double>(e, "init", 0.0, name)});
  }

  PatchReport report;
  std::map<std::string, MaskState*> by_name;
  for (auto& item : items) by_name[item.name] = item.m.get();
  at::NoGradGuard no_grad;
  // Owners first: create and register their scores.
  for (auto& item : items) {
    if (!item.share_with.empty() || item.m->method == MaskMethod::Magnitude) {
      item.m->owns_scores = item.share_with.empty();
      continue;
    }
    const auto& w = item.lin->weight;
    const int64_t out = w.size(0), in = w.size(1);
    auto opts = w.options();
    std::vector<at::Tensor> tensors;
    switch (item.m->layout) {
      case MaskLayout::Block:
        tensors.push_back(at::full({out / item.m->block_rows, in / item.m->block_cols}, item.init, opts));
        break;
      case MaskLayout::Rows: tensors.push_back(at::full({out}, item.init, opts)); break;
      case MaskLayout::Cols: tensors.push_back(at::full({in}, item.init, opts)); break;
      case MaskLayout::RowsCols:
        tensors.push_back(at::full({out}, item.init, opts));
        tensors.push_back(at::full({in}, item.init, opts));
        break;
    }
    auto mask_module = std::make_shared<torch::nn::Module>("MaskModule");
    auto list = mask_module->register_module("context_modules", torch::nn::ModuleList());
    std::vector<Scores> holders;
    for (auto& t : tensors) {
      holders.push_back(Scores(t));
      list->push_back(holders.back());
      report.score_parameters += t.numel();
    }
    item.lin->register_module("mask_module", mask_module);
    item.m->scores = holders[0]->mask_scores;
    if (holders.size() > 1) item.m->col_scores = holders[1]->mask_scores;
  }
  // Then the linears that reuse another's scores (1d_alt FFN output columns, joint q/k/v).
  for (auto& item : items) {
    if (item.share_with.empty()) continue;
    auto owner = by_name.find(item.share_with);
    if (owner == by_name.end() || !owner->second->scores.defined())
      throw Error("E_INVALID_ARG", "pruning plan: " + item.name + " shares the scores of '" + item.share_with +
                                       "', which is not patched with scores of its own");
    const auto& w = item.lin->weight;
    const auto& s = owner->second->scores;
    const bool fits = (item.m->layout == MaskLayout::Cols && s.dim() == 1 && s.size(0) == w.size(1)) ||
                      (item.m->layout == MaskLayout::Rows && s.dim() == 1 && s.size(0) == w.size(0)) ||
                      (item.m->layout == MaskLayout::Block && s.dim() == 2 &&
                       s.size(0) * item.m->block_rows == w.size(0) && s.size(1) * item.m->block_cols == w.size(1));
    if (!fits)
      throw Error("E_INVALID_ARG", "pruning plan: the scores of " + item.share_with + " (" + shape_str(s.sizes().vec()) +
                                       ") do not fit " + item.name + " " + shape_str(w.sizes().vec()));
    item.m->scores = s;
  }
  for (auto& item : items) {
    item.lin->mask = item.m;
    report.modules.push_back(item.name);
  }
  return report;
}

void compile_model(Bert& model) {
  if (!is_patched(model)) throw Error("E_INVALID_ARG", "the model is not patched: nothing to compile");
  at::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  auto linears = linears_by_name(model);
  // Compute every mask before changing any weight: shared scores must see the same state.
  std::vector<std::pair<LinearImpl*, at::Tensor>> masks;
  for (auto& [name, lin] : linears)
    if (lin->mask) masks.emplace_back(lin, compute_mask(*lin->mask, lin->weight, false));
  for (auto& [lin, mask] : masks) {
    if (lin->bias.defined() && lin->mask->bias_mask) lin->bias.mul_(mask.ne(0).any(1).to(lin->bias.scalar_type()));
    lin->weight.mul_(mask);
  }
  for (auto& [name, lin] : linears) {
    if (!lin->mask) continue;
    if (lin->mask->owns_scores && lin->mask->method != MaskMethod::Magnitude) lin->unregister_module("mask_module");
    lin->mask.reset();
  }
  model->pruning_state.reset();
  model->pruning_plan = nlohmann::json();
  if (was_training) model->train();
}

NamedTensors current_masks(const Bert& model) {
  const std::string layers = model->family().prefix + "." + model->family().layers + ".";
  return linear_masks(*model, [&](const std::string& name) { return name.rfind(layers, 0) == 0; });
}

NamedTensors linear_masks(const torch::nn::Module& root, const std::function<bool(const std::string&)>& keep) {
  at::NoGradGuard no_grad;
  NamedTensors out;
  for (auto& [name, lin] : linears_by_name(root)) {
    if (!keep(name)) continue;
    at::Tensor m = lin->mask ? compute_mask(*lin->mask, lin->weight, false) : lin->weight.ne(0).to(at::kFloat);
    out.emplace_back("mask." + name, m);
    out.emplace_back("bias_mask." + name, m.ne(0).any(1).to(at::kFloat));
  }
  return out;
}

RegularizationResult regularization(const Bert& model, const std::string& kind, double attention_lambda,
                                    double dense_lambda) {
  return regularization(
      *model, kind, [](const std::string&, const MaskState& m) { return m.group; },
      [&](const std::string& group) { return group == "attention" ? attention_lambda : dense_lambda; });
}

RegularizationResult regularization(const Seq2SeqImpl& model, const std::string& kind, const RegularizationLambdas& lambdas) {
  std::set<std::string> decoder;
  for (const auto& b : model.prunable_blocks())
    if (b.stack == "decoder") decoder.insert(b.linears.begin(), b.linears.end());
  return regularization(
      model, kind, [&](const std::string& name, const MaskState& m) { return (decoder.count(name) ? "decoder_" : "") + m.group; },
      [&](const std::string& group) {
        if (group == "attention") return lambdas.attention;
        if (group == "decoder_attention") return lambdas.decoder_attention.value_or(lambdas.attention);
        if (group == "decoder_dense") return lambdas.decoder_dense.value_or(lambdas.dense);
        return lambdas.dense;
      });
}

RegularizationResult regularization(const torch::nn::Module& root, const std::string& kind,
                                    const std::function<std::string(const std::string& linear, const MaskState& mask)>& group_of,
                                    const std::function<double(const std::string& group)>& lambda_of) {
  struct Acc {
    std::vector<at::Tensor> terms;
    double kept = 0, total = 0;
  };
  std::map<std::string, Acc> groups;
  for (auto& [name, lin] : linears_by_name(root)) {
    if (!lin->mask) continue;
    auto& g = groups[group_of(name, *lin->mask)];
    {
      at::NoGradGuard no_grad;
      const int64_t out = lin->weight.size(0), in = lin->weight.size(1);
      g.kept += compute_factored_mask(*lin->mask, lin->weight, false).kept(out, in);
      g.total += static_cast<double>(out * in);
    }
    // Shared score tensors (1d_alt, joint) count once, under the linear that owns them.
    if (!lin->mask->owns_scores || lin->mask->method == MaskMethod::Magnitude) continue;
    g.terms.push_back(score_regularization(lin->mask->scores, kind));
    if (lin->mask->col_scores.defined()) g.terms.push_back(score_regularization(lin->mask->col_scores, kind));
  }
  RegularizationResult r;
  int64_t n_groups = 0;
  for (auto& [name, g] : groups)
    if (!g.terms.empty()) ++n_groups;
  r.loss = at::zeros({}, at::kFloat);
  for (auto& [name, g] : groups) {
    RegularizationResult::Group info;
    info.name = name;
    info.tensors = static_cast<int64_t>(g.terms.size());
    info.density = g.total > 0 ? g.kept / g.total : 0;
    if (!g.terms.empty()) {
      auto term = at::stack(g.terms).sum() / static_cast<double>(g.terms.size()) * lambda_of(name) / static_cast<double>(n_groups);
      info.loss = term.item<double>();
      r.loss = r.loss.to(term.device()) + term;
    }
    r.groups.push_back(info);
  }
  return r;
}

}  // namespace bp
