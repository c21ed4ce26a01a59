// Loading and saving HF-layout model directories: config.json plus model.safetensors, a sharded
// model.safetensors.index.json, or pytorch_model.bin (torch.save's zip format). Nothing is downloaded:
// a missing file is an error naming it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "bert.h"

namespace bp {

struct LoadOptions {
  std::string task = "auto";  // auto | bare | text-classification | question-answering
  int64_t num_labels = -1;    // override config's label count (classification only)
  std::string device = "cpu";
  uint64_t seed = 42;         // for heads the checkpoint lacks
};

struct LoadReport {
  std::string weights_file;                 // what was read
  std::vector<std::string> newly_initialized;  // task head created at random (checkpoint had none)
  std::vector<std::string> ignored;         // known extra tensors (pretraining heads, position_ids buffer)
};

struct Loaded {
  Bert model{nullptr};
  LoadReport report;
};

// Reads the weights of a model directory (whichever format it holds) as named CPU tensors.
NamedTensors read_weights(const std::string& dir, std::string* source);

// loadState: copies the tensors of the safetensors file `path` into `module`'s parameters, a stored name
// mapped by `key` (identity when empty), the shapes they have (checked). Every tensor is checked before any is
// copied, so a bad file leaves the model as it was: E_UNEXPECTED_TENSOR (strict) / E_SHAPE / E_BAD_CHECKPOINT
// (dtype of a quantized weight, NaN or infinite values) naming the tensor. Returns the stored names loaded.
std::vector<std::string> load_state(torch::nn::Module& module, const std::string& path, bool strict,
                                    const std::function<std::string(const std::string&)>& key = {});

Loaded load_pretrained(const std::string& dir, const LoadOptions& opts);

// Builds a model with random weights (HF init) from a config, for training from scratch and benchmarks.
Bert create_random(const BertConfig& config, TaskKind kind, uint64_t seed, const std::string& device);

// The state dict under HF names (a bare model without the "bert." prefix), as CPU tensors.
NamedTensors state_dict(const Bert& model);

// Names (as in state_dict) and shapes, without copying any data.
std::vector<std::pair<std::string, std::vector<int64_t>>> state_dict_shapes(const Bert& model);

// Writes config.json and model.safetensors into `dir` (created if needed), with copies of `copy_files`
// (tokenizer files) under their base names. The directory is replaced atomically (write_directory_atomic in
// native/atomic_file.h): a failure (E_NO_SPACE, E_WRITE_FAILED) or a kill leaves the previous model whole.
void save_pretrained(const Bert& model, const std::string& dir, const std::vector<std::string>& copy_files = {});
// What save_pretrained and save_seq2seq write: model.safetensors (`tensors`), config.json (`config`) and the copies,
// in one atomic replacement of `dir`.
void write_model_directory(const std::string& dir, const NamedTensors& tensors, const std::string& config, const std::vector<std::string>& copy_files);

at::Device parse_device(const std::string& device);
TaskKind parse_task(const std::string& task);
// Parameters a deployed model holds: mask scores (training state) and int8 scales (part of their weight) not
// counted; a tied tensor registered once counts once.
int64_t count_parameters(const torch::nn::Module& model);
int64_t count_parameters(const Bert& model);

// Everything a model's getters report, read in one go. The binding takes it while it holds the model's lock
// and serves the getters from it, so a getter never reads a model that another thread may be changing.
struct ModelInfo {
  TaskKind kind = TaskKind::Bare;
  BertConfig config;        // the family and the dimensions
  std::string config_json;  // config.json as the model would save it
  int64_t num_parameters = 0;
  std::string device;
  struct Layer {
    std::vector<int64_t> kept_heads;
    int64_t intermediate_size = 0;
  };
  std::vector<Layer> layers;
  bool patched = false;
  double threshold = 0;      // while patched
  std::string pruning_plan;  // JSON text, while patched
  std::vector<std::pair<std::string, std::vector<int64_t>>> parameters;  // as state_dict_shapes
  int64_t cpu_bytes = 0;     // parameters held in CPU memory
  int64_t weight_bytes = 0;  // every parameter's bytes, wherever it is (int8 / bf16 weights: 1 / 2 bytes each)
  std::string dtype;         // "fp32" | "int8" | "bf16" (native/quantize.h)
};
ModelInfo describe_model(const Bert& model);

}  // namespace bp
