// What a training run carries besides the weights (node-llama-cpp keeps a model's weights apart from the state
// of one use of it; so do we): the AdamW moments, and, saved beside them in checkpoints, the process's CPU
// generator (dropout), so that a resumed run draws the same masks. One TrainingState belongs to one model.
#pragma once

#include <string>

#include "bert.h"
#include "optimizer.h"

namespace bp {

struct TrainingState {
  AdamW optimizer;
};

// The default CPU generator's state (the bytes checkpoints hold in rng.safetensors).
at::Tensor cpu_rng_state();

// Writes dir/optimizer.safetensors and dir/rng.safetensors: this process's generator as "cpu", and
// `other_ranks` (data-parallel: "cpu.rank<r>" for r >= 1) beside it.
void save_training_state(const TrainingState& state, const std::string& dir, const NamedTensors& other_ranks);

// Restores what save_training_state wrote, for `model` (the optimizer's tensors must match its parameters) and
// `rank` (whose generator state to take: "cpu" for 0, "cpu.rank<r>" otherwise). All or nothing: both files are
// read and checked before the state or the generator changes; E_BAD_CHECKPOINT names what is off.
void load_training_state(TrainingState& state, const Bert& model, const std::string& dir, int64_t rank);

// The same over any module's optimizer (an encoder-decoder's: seq2seq_training.h), rank 0 alone.
void save_training_state(const AdamW& optimizer, const std::string& dir, const NamedTensors& other_ranks);
void load_training_state(AdamW& optimizer, const torch::nn::Module& module, const std::string& dir, int64_t rank);

}  // namespace bp
