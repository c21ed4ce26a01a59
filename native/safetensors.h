// safetensors reading and writing.
// Format: u64 little-endian header length N, N bytes of JSON ({name: {dtype, shape, data_offsets: [b, e]}},
// optional "__metadata__" of strings), then the byte buffer. Offsets are relative to the buffer. The format
// exists so that every size can be checked before a byte of tensor data is read: this reader checks all of
// them (header bounds, JSON, dtypes, shapes, offsets in range, no holes or overlaps, byte size = numel x
// dtype size) and throws bp::Error naming the file and tensor.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace bp {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct SafetensorsFile {
  NamedTensors tensors;                         // in file order (by data offset)
  std::map<std::string, std::string> metadata;  // "__metadata__"
};

// Reads every tensor (CPU, contiguous, dtype as stored).
SafetensorsFile read_safetensors(const std::string& path);

// Writes tensors (any device/layout; copied to contiguous CPU) with keys sorted, header padded with spaces
// to a multiple of 8 bytes. Written atomically and durably (native/atomic_file.h): a crash or a full disk
// never leaves half a file at `path`; failures throw E_NO_SPACE or E_WRITE_FAILED.
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The safetensors dtype string of a scalar type ("F32", ...); throws for types safetensors lacks.
std::string safetensors_dtype(at::ScalarType t);

}  // namespace bp
