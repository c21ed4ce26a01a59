#include "training_state.h"

#include <ATen/CPUGeneratorImpl.h>

#include <mutex>

#include "errors.h"
#include "safetensors.h"

namespace bp {

at::Tensor cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void save_training_state(const TrainingState& state, const std::string& dir, const NamedTensors& other_ranks) {
  save_training_state(state.optimizer, dir, other_ranks);
}

void load_training_state(TrainingState& state, const Bert& model, const std::string& dir, int64_t rank) {
  load_training_state(state.optimizer, *model, dir, rank);
}

void save_training_state(const AdamW& optimizer, const std::string& dir, const NamedTensors& other_ranks) {
  write_safetensors(dir + "/optimizer.safetensors", optimizer.state(), {{"format", "blockprune-adamw"}});
  NamedTensors all{{"cpu", cpu_rng_state()}};
  all.insert(all.end(), other_ranks.begin(), other_ranks.end());
  write_safetensors(dir + "/rng.safetensors", all, {});
}

void load_training_state(AdamW& optimizer, const torch::nn::Module& model, const std::string& dir, int64_t rank) {
  const auto path = dir + "/optimizer.safetensors";
  auto file = read_safetensors(path);
  // Into a fresh optimizer first: a bad file (or a bad generator state below) leaves the moments in place.
  AdamW next;
  next.load_state(file.tensors, model, path);
  auto rng = read_safetensors(dir + "/rng.safetensors");
  const std::string want = rank == 0 ? "cpu" : "cpu.rank" + std::to_string(rank);
  const at::Tensor* saved = nullptr;
  for (const auto& [name, t] : rng.tensors)
    if (name == want) saved = &t;
  if (!saved)
    throw Error("E_BAD_CHECKPOINT", dir + "/rng.safetensors: no generator state '" + want + "' (was the checkpoint made with another world size?)");
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    try {
      gen.set_state(*saved);
    } catch (const c10::Error& e) {
      throw Error("E_BAD_CHECKPOINT", dir + "/rng.safetensors: not a generator state (" + e.what_without_backtrace() + ")");
    }
  }
  optimizer = std::move(next);
}

}  // namespace bp
