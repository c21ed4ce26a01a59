// Patching a BERT for pruning: each planned Linear gets mask scores (registered under nn_pruning's names,
// "<linear>.mask_module.context_modules.0.mask_scores", so its score checkpoints load as they are) and
// computes with W * M from then on. compile() bakes the masks into the weights and removes the scores.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bert.h"
#include "seq2seq.h"

namespace bp {

struct PatchReport {
  std::vector<std::string> modules;  // patched linears, in plan order
  int64_t score_parameters = 0;      // learnable scores added
};

// The core, for any module: masks `root`'s linears named by the plan (HF names relative to root), all reading
// `state` (the caller holds it). Validates the whole plan before changing anything: a bad plan leaves the
// model untouched.
PatchReport patch_linears(torch::nn::Module& root, const nlohmann::json& plan, const std::shared_ptr<PruningState>& state);
// Every linear under `root` by its HF module name.
std::map<std::string, LinearImpl*> linears_by_name(const torch::nn::Module& root);
// "mask.<linear>" and "bias_mask.<linear>" (as current_masks below) of root's linears whose name passes `keep`.
NamedTensors linear_masks(const torch::nn::Module& root, const std::function<bool(const std::string&)>& keep);

// Applies a plan: {"modules": [{"module", "method", "layout", "blockRows", "blockCols", "biasMask",
// "minElements", "group", "shareWith", "init"}...]}. Throws E_INVALID_ARG naming the module for a block
// shape that does not divide the weight, an unknown module, or a model already patched.
PatchReport patch_model(Bert& model, const nlohmann::json& plan);

bool is_patched(const Bert& model);
// Every linear of the model under its HF module name ("bert.encoder.layer.0.attention.self.query").
std::map<std::string, LinearImpl*> linears_by_name(const Bert& model);
void set_threshold(Bert& model, double threshold);

// The same for an encoder-decoder model (the plan's modules: its prunable_blocks' linears). current_masks of
// a seq2seq: its prunable linears' masks (weight != 0 when unpatched).
PatchReport patch_seq2seq(Seq2SeqImpl& model, const nlohmann::json& plan);
void set_threshold(Seq2SeqImpl& model, double threshold);
NamedTensors current_masks(const Seq2SeqImpl& model);

// Bakes W * M (at the current threshold, eval mode) and the bias mask into plain weights, drops the scores.
void compile_model(Bert& model);

// The 0/1 mask of every patched linear at the current threshold (eval mode), expanded to the weight's
// shape, plus "bias_mask.<linear>" [out]. For an unpatched model: weight != 0 of the encoder's linears.
NamedTensors current_masks(const Bert& model);

struct RegularizationResult {
  at::Tensor loss;  // sum over groups of (group sum / group count) * group lambda / number of groups
  struct Group {
    std::string name;
    double loss = 0;      // this group's term
    double density = 0;   // fraction of its weights kept at the current threshold
    int64_t tensors = 0;  // score tensors counted (a shared 1d_alt vector counts once)
  };
  std::vector<Group> groups;
};

// nn_pruning's regularization_loss over any patched module: each owned score tensor's penalty (l1: mean of
// sigmoid(scores); l0: its hard-concrete keep probability) joins its linear's group (`group_of`), a group's term
// is its mean penalty x lambda_of(group) / the number of groups with scores. Densities count every masked
// linear of the group (shared scores included). With gradients (call under NoGradGuard for figures only).
RegularizationResult regularization(const torch::nn::Module& root, const std::string& kind,
                                    const std::function<std::string(const std::string& linear, const MaskState& mask)>& group_of,
                                    const std::function<double(const std::string& group)>& lambda_of);

// kind "l1" | "l0"; lambdas per group ("attention", "dense").
RegularizationResult regularization(const Bert& model, const std::string& kind, double attention_lambda,
                                    double dense_lambda);

// An encoder-decoder's groups, as nn_pruning's ModelStructure.is_decoder splits them: encoder linears in
// "attention" / "dense" (by the plan's group), decoder linears (self- and cross-attention, FFN) in
// "decoder_attention" / "decoder_dense", whose lambdas default to the encoder's (nn_pruning: a null
// decoder_attention_lambda takes attention_lambda). So four groups, each divided by 4, when both stacks are patched.
struct RegularizationLambdas {
  double attention = 1, dense = 1;
  std::optional<double> decoder_attention, decoder_dense;
};
RegularizationResult regularization(const Seq2SeqImpl& model, const std::string& kind, const RegularizationLambdas& lambdas);

}  // namespace bp
