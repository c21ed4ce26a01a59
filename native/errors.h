// Error type of the native core. Every failure that a user can cause (bad file, bad shape, bad
// argument) is thrown as a bp::Error carrying a stable `code`; the bindings turn it into a JS Error
// with that code, so callers can branch on it without parsing messages.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>
#include <cstdint>

namespace bp {

class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& message)
      : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const noexcept { return code_; }

 private:
  std::string code_;
};

// Codes used across the core (also listed in lib/errors.ts).
//   E_FILE_NOT_FOUND   a file the caller named (or a model directory needs) is missing or unreadable
//   E_BAD_CHECKPOINT   a weights file is corrupt, truncated or inconsistent (safetensors, .bin, index)
//   E_BAD_CONFIG       config.json is unreadable, invalid, or disagrees with the weights
//   E_SHAPE            a tensor's shape is not the expected one
//   E_MISSING_TENSOR   a tensor the model needs is absent from the checkpoint
//   E_UNEXPECTED_TENSOR a checkpoint holds a tensor the model does not know
//   E_INVALID_ARG      a bad argument (wrong type, wrong length, out-of-range id)
//   E_DISPOSED         the handle was disposed
//   E_TORCH            an error raised inside libtorch
//   E_DISTRIBUTED      a data-parallel rendezvous or collective failed (a rank died, timed out, or disagrees)
//   E_UNSUPPORTED      this build lacks the feature (e.g. no c10d/Gloo, no NCCL)
//   E_NO_SPACE         a write failed with ENOSPC/EDQUOT (disk or quota full); the previous file is intact
//   E_WRITE_FAILED     a write failed for another reason (permissions, read-only file system, I/O error)
inline std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

}  // namespace bp
