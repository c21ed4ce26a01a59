#include "compact.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include "checkpoint.h"
#include "errors.h"
#include "patch.h"
#include "quantize.h"

namespace bp {
namespace {

// A deep copy through the state dict (the model may be patched: compile the copy, never the original).
Bert clone_model(const Bert& model) {
  Bert copy(model->config(), model->kind());
  at::NoGradGuard no_grad;
  if (is_patched(model)) {
    Bert& mutable_copy = copy;
    patch_model(mutable_copy, model->pruning_plan);
  }
  auto src = model->named_parameters();
  for (auto& item : copy->named_parameters()) item.value().copy_(src[item.key()]);
  if (model->pruning_state) copy->pruning_state->threshold = model->pruning_state->threshold;
  copy->to(model->device());
  copy->eval();
  return copy;
}

}  // namespace

Bert compact_model(const Bert& model_in, const std::string& mode, CompactReport* report, const std::string& rule) {
  if (mode != "dense" && mode != "heads")
    throw Error("E_INVALID_ARG", "Expected compaction mode 'dense' or 'heads' but received '" + mode + "'");
  if (rule != "exact" && rule != "reference") throw Error("E_INVALID_ARG", "Expected dead-head rule 'exact' or 'reference' but received '" + rule + "'");
  const bool exact = rule == "exact";
  refuse_quantized(model_in, "compaction");
  at::NoGradGuard no_grad;
  Bert model = clone_model(model_in);
  if (is_patched(model)) compile_model(model);
  const BertConfig& c = model->config();
  const Family& f = model->family();
  const int64_t hd = c.head_dim();
  auto params = model->named_parameters();
  auto P = [&](const std::string& name) -> at::Tensor& {
    auto* t = params.find(name);
    if (!t) throw Error("E_NATIVE", "compact: no parameter " + name);
    return *t;
  };

  BertConfig nc = c;
  nc.intermediate_sizes.clear();
  std::vector<at::Tensor> keep_heads_idx, keep_ffn_idx;
  CompactReport rep;
  rep.parameters_before = count_parameters(model_in);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const auto p = f.layer_prefix(i);
    // FFN cross-zeroing.
    auto& wi = P(p + f.inter + ".weight");
    auto& wo = P(p + f.out + ".weight");
    // (exact: a row counts as zero only with its bias: gelu(bias) need not be 0.)
    auto dead_rows = wi.abs().sum(1).eq(0);
    if (exact) dead_rows = dead_rows.logical_and(P(p + f.inter + ".bias").eq(0));
    auto dead_cols = wo.abs().sum(0).eq(0);
    wi.index_put_({dead_cols}, 0.0);
    wo.index_put_({at::indexing::Slice(), dead_rows}, 0.0);

    // Heads alive in q, k and v.
    const auto kept = c.kept_heads(i);
    const int64_t h = static_cast<int64_t>(kept.size());
    std::vector<int64_t> alive;
    if (h > 0) {
      auto any = [&](const std::string& n) { return P(p + n + ".weight").view({h, hd, -1}).ne(0).flatten(1).any(1); };
      // exact: a head goes only when its output is zero whatever it attends to (value rows with their bias, or
      // output columns); reference: alive in q, k AND v.
      const auto values = any(f.value).logical_or(P(p + f.value + ".bias").view({h, hd}).ne(0).any(1));
      const auto out_cols = P(p + f.attn_out + ".weight").view({-1, h, hd}).ne(0).any(2).any(0);
      auto alive_mask = (exact ? values & out_cols : any(f.query) & any(f.key) & any(f.value)).to(at::kCPU);
      for (int64_t k = 0; k < h; ++k)
        if (alive_mask[k].item<bool>()) alive.push_back(k);
      if (alive.empty()) alive.push_back(0);
    }
    std::vector<int64_t> removed;
    for (int64_t k = 0, a = 0; k < h; ++k) {
      if (a < static_cast<int64_t>(alive.size()) && alive[a] == k) {
        ++a;
      } else {
        removed.push_back(kept[k]);
        nc.pruned_heads[i].insert(kept[k]);
      }
    }
    rep.removed_heads.push_back(removed);
    rep.heads.push_back(static_cast<int64_t>(alive.size()));
    std::vector<int64_t> rows;
    for (int64_t k : alive)
      for (int64_t d = 0; d < hd; ++d) rows.push_back(k * hd + d);
    keep_heads_idx.push_back(at::tensor(rows, at::kLong).to(wi.device()));

    // FFN units kept.
    at::Tensor units;
    if (mode == "dense") {
      units = dead_rows.logical_or(dead_cols).logical_not().nonzero().flatten();
      if (units.numel() == 0) units = at::zeros({1}, at::TensorOptions().dtype(at::kLong).device(wi.device()));
    } else {
      units = at::arange(wi.size(0), at::TensorOptions().dtype(at::kLong).device(wi.device()));
    }
    keep_ffn_idx.push_back(units);
    nc.intermediate_sizes.push_back(units.numel());
    rep.ffn_widths.push_back(units.numel());
  }
  bool uniform = true;
  for (int64_t w : nc.intermediate_sizes) uniform = uniform && w == nc.intermediate_size;
  if (uniform) nc.intermediate_sizes.clear();
  nc.validate("compacted configuration");

  Bert out(nc, model->kind());
  out->to(model->device());
  for (auto& item : out->named_parameters()) {
    const std::string& name = item.key();
    at::Tensor src = P(name);
    // Which slice of the source this parameter is.
    const std::string layers = f.prefix + "." + f.layers + ".";
    if (name.rfind(layers, 0) == 0) {
      const int64_t i = std::stoll(name.substr(layers.size()));
      const auto rest = name.substr(name.find('.', layers.size()) + 1);
      const auto& heads = keep_heads_idx[i];
      const auto& units = keep_ffn_idx[i];
      auto is = [&](const std::string& role, const char* what) { return rest == role + what; };
      if (is(f.query, ".weight") || is(f.key, ".weight") || is(f.value, ".weight") || is(f.query, ".bias") ||
          is(f.key, ".bias") || is(f.value, ".bias"))
        src = src.index_select(0, heads);
      else if (is(f.attn_out, ".weight"))
        src = src.index_select(1, heads);
      else if (is(f.inter, ".weight") || is(f.inter, ".bias"))
        src = src.index_select(0, units);
      else if (is(f.out, ".weight"))
        src = src.index_select(1, units);
    }
    if (src.sizes() != item.value().sizes())
      throw Error("E_SHAPE", "compact: " + name + " slice " + shape_str(src.sizes().vec()) + " vs " + shape_str(item.value().sizes().vec()));
    item.value().copy_(src);
  }
  out->eval();
  rep.parameters_after = count_parameters(out);
  if (report) *report = rep;
  return out;
}

int64_t fill_zeros(Bert& model, uint64_t seed) {
  if (is_patched(model)) throw Error("E_INVALID_ARG", "compile or compact the model before filling it");
  refuse_quantized(model, "fillZeros");
  at::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  int64_t filled = 0;
  for (const auto& item : model->named_modules("", false)) {
    if (item.key().rfind(model->family().prefix + "." + model->family().layers + ".", 0) != 0) continue;
    auto* lin = item.value()->as<LinearImpl>();
    if (!lin || lin->weight.numel() == 0) continue;
    at::Tensor& v = lin->weight;
    auto zero = v.eq(0).to(v.scalar_type());
    const double sd = v.std().item<double>(), mean = v.mean().item<double>();
    auto noise = at::randn(v.sizes(), gen, v.options().device(at::kCPU)).to(v.device()) * (sd * 0.01) + mean;
    filled += zero.sum().item<int64_t>();
    v.add_(zero * noise);
  }
  return filled;
}

Bert pad_ffn_to_config(const Bert& model) {
  if (is_patched(model)) throw Error("E_INVALID_ARG", "compile or compact the model before exporting it");
  refuse_quantized(model, "padFfn");
  at::NoGradGuard no_grad;
  BertConfig nc = model->config();
  const int64_t full = nc.intermediate_size;
  for (int64_t i = 0; i < nc.num_hidden_layers; ++i)
    if (nc.layer_intermediate(i) > full)
      throw Error("E_INVALID_ARG", "layer " + std::to_string(i) + " FFN width exceeds intermediate_size " + std::to_string(full));
  nc.intermediate_sizes.clear();
  Bert out(nc, model->kind());
  out->to(model->device());
  auto src = model->named_parameters();
  for (auto& item : out->named_parameters()) {
    at::Tensor s = src[item.key()];
    at::Tensor& d = item.value();
    d.zero_();
    // FFN tensors are padded with zeros: zero rows/bias give gelu(0) = 0 into zero output columns.
    if (s.dim() == 2)
      d.slice(0, 0, s.size(0)).slice(1, 0, s.size(1)).copy_(s);
    else
      d.slice(0, 0, s.size(0)).copy_(s);
  }
  out->eval();
  return out;
}

}  // namespace bp
