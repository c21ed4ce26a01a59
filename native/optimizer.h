// AdamW as HF transformers (4.x) implements it, over any module's named_parameters (a Bert's, a Seq2SeqImpl's),
// with the reference's parameter groups: mask scores (own learning rate, no weight decay), no-decay (biases and
// LayerNorm weights), and the rest (weight decay). The groups go by name, as 4.4.2's Trainer ("bias",
// "LayerNorm.weight"): BART's and T5's norms (self_attn_layer_norm, layer_norm) are in the decay group there too.
// Update per step t: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr sqrt(1-b2^t)/(1-b1^t) m/(sqrt(v)+eps);
// then, decoupled, p -= lr wd p on the updated p. (eps is added before bias correction: this differs from
// torch.optim.AdamW, and matches the fixtures and the reference trainer.)
#pragma once

#include <map>
#include <string>

#include "bert.h"

namespace bp {

struct AdamWOptions {
  double lr = 5e-5;           // weights
  double mask_lr = 1e-2;      // mask scores
  double weight_decay = 0.0;  // the "decay" group only
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

enum class ParamGroup { MaskScores, NoDecay, Decay };
ParamGroup param_group(const std::string& name);

class AdamW {
 public:
  // One step over every parameter that has a gradient. `lr_scale` multiplies both learning rates (the
  // warm-up/decay schedule).
  void step(torch::nn::Module& module, const AdamWOptions& opts, double lr_scale);
  void step(Bert& model, const AdamWOptions& opts, double lr_scale) { step(*model, opts, lr_scale); }

  // State as named tensors ("exp_avg.<param>", "exp_avg_sq.<param>", "step.<param>"), for checkpoints.
  NamedTensors state() const;
  // Restores a state() (params must match names and shapes); throws E_BAD_CHECKPOINT naming what is off.
  void load_state(const NamedTensors& state, const torch::nn::Module& module, const std::string& source);
  void load_state(const NamedTensors& state, const Bert& model, const std::string& source) { load_state(state, *model, source); }
  int64_t steps() const { return steps_; }
  // Bytes of the moments held (what the binding reports to V8 as external memory).
  int64_t bytes() const;
  void reset() {
    slots_.clear();
    steps_ = 0;
  }

 private:
  struct Slot {
    at::Tensor exp_avg, exp_avg_sq;
    int64_t step = 0;
  };
  std::map<std::string, Slot> slots_;
  int64_t steps_ = 0;
};

// torch.nn.utils.clip_grad_norm_: scales all gradients so their global L2 norm is at most max_norm.
// Returns the norm before clipping.
// Any module (an encoder-decoder's too: seq2seq_training.h); parameters without a gradient are skipped.
double clip_grad_norm(torch::nn::Module& module, double max_norm);
inline double clip_grad_norm(Bert& model, double max_norm) { return clip_grad_norm(*model, max_norm); }

}  // namespace bp
