// Compaction of BART and T5 (seq2seq.h: compact_seq2seq), compact.cc's rules applied to every prunable block of
// both stacks. The family builds the compact model from its config (Seq2SeqStructure: the kept heads of each
// attention block, the width of each FFN), so this file only decides what stays and copies the slices by name.
#include <c10/core/GradMode.h>

#include <algorithm>
#include <map>

#include "checkpoint.h"
#include "errors.h"
#include "huge_pages.h"
#include "masks.h"
#include "patch.h"
#include "seq2seq.h"
#include "seq2seq_init.h"

namespace bp {
namespace {

// Every parameter and buffer of `model` as it computes now: a patched linear's W * M and (bias masks) its bias
// times the rows kept, at the current threshold, as compile_model bakes them; mask scores left out. Copies: the
// model is not changed.
std::map<std::string, at::Tensor> baked_weights(const Seq2SeqImpl& model) {
  std::map<std::string, at::Tensor> w;
  for (const auto& item : model.named_parameters())
    if (item.key().find("mask_scores") == std::string::npos) w[item.key()] = item.value().detach().clone();
  for (const auto& item : model.named_buffers()) w[item.key()] = item.value().detach().clone();
  for (const auto& [name, lin] : linears_by_name(model)) {
    if (!lin->mask) continue;
    const auto mask = compute_mask(*lin->mask, lin->weight, /*training=*/false);
    w[name + ".weight"].mul_(mask);
    if (lin->bias.defined() && lin->mask->bias_mask) w[name + ".bias"].mul_(mask.ne(0).any(1).to(lin->bias.scalar_type()));
  }
  return w;
}

at::Tensor index_of(const std::vector<int64_t>& v, const at::Device& device) { return at::tensor(v, at::kLong).to(device); }

}  // namespace

std::shared_ptr<Seq2SeqImpl> compact_seq2seq(const Seq2SeqImpl& model, const std::string& mode, Seq2SeqCompactReport* report, const std::string& rule) {
  if (mode != "dense" && mode != "heads") throw Error("E_INVALID_ARG", "Expected compaction mode 'dense' or 'heads' but received '" + mode + "'");
  if (rule != "exact" && rule != "reference") throw Error("E_INVALID_ARG", "Expected dead-head rule 'exact' or 'reference' but received '" + rule + "'");
  const bool exact = rule == "exact";
  at::NoGradGuard no_grad;
  const Seq2SeqInfo info = model.info();
  nlohmann::json config = nlohmann::json::parse(info.config_json);
  const std::string source = "the compacted configuration";
  auto w = baked_weights(model);
  const auto P = [&](const std::string& name) -> at::Tensor& {
    const auto it = w.find(name);
    if (it == w.end()) throw Error("E_NATIVE", "compact: no tensor " + name);
    return it->second;
  };

  // The source's own structure (a compact model compacted again): reported head indices stay the original ones.
  const bool t5 = info.model_type == "t5";
  const int64_t full_heads[2] = {config.value(t5 ? "num_heads" : "encoder_attention_heads", int64_t{1}),
                                 config.value(t5 ? "num_heads" : "decoder_attention_heads", int64_t{1})};
  const int64_t full_width[2] = {config.value(t5 ? "d_ff" : "encoder_ffn_dim", int64_t{1}), config.value(t5 ? "d_ff" : "decoder_ffn_dim", int64_t{1})};
  const auto blocks = model.prunable_blocks();
  // The rows of a linear that are all zero (exact: their bias too).
  const auto zero_rows = [&](const std::string& lin, bool with_bias) {
    auto z = P(lin + ".weight").ne(0).any(1).logical_not();
    const auto bias = w.find(lin + ".bias");
    if (with_bias && bias != w.end()) z = z.logical_and(bias->second.eq(0));
    return z;
  };
  const Seq2SeqStructure before = Seq2SeqStructure::from_json(config, source, info.encoder_layers, info.decoder_layers, full_heads[0], full_heads[1],
                                                              full_width[0], full_width[1]);
  Seq2SeqStructure structure = before;
  structure.encoder_intermediate_sizes.assign(static_cast<size_t>(info.encoder_layers), full_width[0]);
  structure.decoder_intermediate_sizes.assign(static_cast<size_t>(info.decoder_layers), full_width[1]);

  // Per linear: the rows (dim 0: weight and bias) or columns (dim 1: weight) the compact model keeps.
  std::map<std::string, std::pair<int64_t, at::Tensor>> slices;
  Seq2SeqCompactReport rep;
  rep.parameters_before = info.num_parameters;
  for (const auto& b : blocks) {
    Seq2SeqCompactReport::Block r;
    r.kind = b.kind, r.stack = b.stack, r.role = b.role, r.layer = b.layer;
    if (b.kind == "ffn") {
      // FFN cross-zeroing: a unit is dead when its row in any input linear (wi; gated: wi_0 or wi_1) or its
      // column in the output linear is all zero; it then contributes nothing, so all of it is zeroed.
      // (exact: an input row counts as zero only with its bias: act(bias) need not be 0.)
      auto& wo = P(b.linears.back() + ".weight");
      auto dead = wo.abs().sum(0).eq(0);
      for (size_t k = 0; k + 1 < b.linears.size(); ++k) dead = dead.logical_or(zero_rows(b.linears[k], exact));
      for (size_t k = 0; k + 1 < b.linears.size(); ++k) P(b.linears[k] + ".weight").index_put_({dead}, 0.0);
      wo.index_put_({at::indexing::Slice(), dead}, 0.0);
      at::Tensor units = mode == "dense" ? dead.logical_not().nonzero().flatten() : at::arange(wo.size(1), at::TensorOptions().dtype(at::kLong).device(wo.device()));
      if (units.numel() == 0) units = at::zeros({1}, at::TensorOptions().dtype(at::kLong).device(wo.device()));  // one unit stays
      for (size_t k = 0; k + 1 < b.linears.size(); ++k) slices[b.linears[k]] = {0, units};
      slices[b.linears.back()] = {1, units};
      r.width_before = b.width, r.width_after = units.numel();
      (b.stack == "decoder" ? structure.decoder_intermediate_sizes : structure.encoder_intermediate_sizes)[b.layer] = r.width_after;
    } else {
      // reference: heads alive in q, k AND v (a head dead in one of them goes); exact: a head goes only when its
      // output is zero whatever it attends to (its values, bias included, or its output columns all zero): a head
      // with zero queries or keys still attends (uniformly, or by T5's position bias) and adds its values' mean.
      // None alive: head 0 stays.
      const int64_t h = b.heads, hd = b.head_dim;
      const auto any = [&](const std::string& lin) { return zero_rows(lin, exact).view({h, hd}).logical_not().any(1); };
      const auto out_cols = P(b.linears[3] + ".weight").view({-1, h, hd}).ne(0).any(2).any(0);
      const auto alive = (exact ? any(b.linears[2]) & out_cols : any(b.linears[0]) & any(b.linears[1]) & any(b.linears[2])).to(at::kCPU);
      const auto original = before.kept_heads(b.stack, b.role, b.layer, full_heads[b.stack == "decoder"]);  // by original index
      std::vector<int64_t> keep;
      for (int64_t k = 0; k < h; ++k)
        if (alive[k].item<bool>()) keep.push_back(k);
      if (keep.empty()) keep.push_back(0);
      auto& pruned = b.role == "cross" ? structure.cross_pruned_heads : b.stack == "decoder" ? structure.decoder_pruned_heads : structure.encoder_pruned_heads;
      std::vector<int64_t> rows;
      for (int64_t k = 0, a = 0; k < h; ++k) {
        if (a < static_cast<int64_t>(keep.size()) && keep[a] == k) {
          ++a;
          r.kept.push_back(original[k]);
          for (int64_t d = 0; d < hd; ++d) rows.push_back(k * hd + d);
        } else {
          r.removed.push_back(original[k]);
          pruned[b.layer].insert(original[k]);
        }
      }
      const auto idx = index_of(rows, P(b.linears[0] + ".weight").device());
      for (int k = 0; k < 3; ++k) slices[b.linears[k]] = {0, idx};
      slices[b.linears[3]] = {1, idx};
    }
    rep.blocks.push_back(std::move(r));
  }

  // Widths all equal to the config's are not written (the model's config says them already).
  for (int k = 0; k < 2; ++k) {
    auto& sizes = k ? structure.decoder_intermediate_sizes : structure.encoder_intermediate_sizes;
    if (std::all_of(sizes.begin(), sizes.end(), [&](int64_t v) { return v == full_width[k]; })) sizes.clear();
  }
  structure.to_json(config);
  auto out = build_seq2seq(config, source);
  const auto copy = [&](const std::string& name, at::Tensor& target) {
    at::Tensor src = P(name);
    const auto dot = name.rfind('.');
    const auto s = slices.find(name.substr(0, dot));
    if (s != slices.end()) {
      const bool bias = name.substr(dot + 1) == "bias";
      // An output linear's bias (BART out_proj, fc2) is not sliced: its rows are the model's width.
      if (!bias || s->second.first == 0) src = src.index_select(bias ? 0 : s->second.first, s->second.second);
    }
    if (src.sizes() != target.sizes())
      throw Error("E_NATIVE", "compact: " + name + " slice " + shape_str(src.sizes().vec()) + " vs " + shape_str(target.sizes().vec()));
    target.copy_(src.to(target.device()));
  };
  for (auto& item : out->named_parameters()) copy(item.key(), item.value());
  for (auto& item : out->named_buffers()) copy(item.key(), item.value());
  const auto device = model.named_parameters().front().value().device();
  out->to(device);
  out->eval();
  place_weights_on_huge_pages(*out);
  rep.parameters_after = out->info().num_parameters;
  if (report) *report = std::move(rep);
  return out;
}

}  // namespace bp
