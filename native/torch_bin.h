// Reader for PyTorch `pytorch_model.bin` checkpoints written by torch.save (torch >= 1.6, zip
// format). The pickle inside is decoded by a small restricted unpickler: only the few globals that
// a state dict uses are accepted, nothing is ever executed, and every size, offset and record
// length is checked, so a hostile file gives a bp::Error instead of code execution or a crash.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

namespace bp {

// Reads a state dict saved by torch.save (zip format). Returns tensors in pickle order, each a
// fresh contiguous CPU tensor (its own storage, dtype as stored). Throws bp::Error
// (native/errors.h) with code "E_FILE_NOT_FOUND" (missing/unreadable file) or "E_BAD_CHECKPOINT"
// (everything else) and a message that names the file (and the record / tensor where relevant).
std::vector<std::pair<std::string, at::Tensor>> read_torch_zip(const std::string& path);

}  // namespace bp
