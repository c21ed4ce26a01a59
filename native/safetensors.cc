#include "safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

#include "atomic_file.h"
#include "errors.h"

namespace bp {
namespace {

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
  size_t size;
};

const DtypeInfo kDtypes[] = {
    {"F64", at::kDouble, 8}, {"F32", at::kFloat, 4},  {"F16", at::kHalf, 2},  {"BF16", at::kBFloat16, 2},
    {"I64", at::kLong, 8},   {"I32", at::kInt, 4},    {"I16", at::kShort, 2}, {"I8", at::kChar, 1},
    {"U8", at::kByte, 1},    {"BOOL", at::kBool, 1},
};

const DtypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

// The header is untrusted: cap it so a forged length cannot make us allocate gigabytes of JSON.
constexpr uint64_t kMaxHeader = 100ull * 1024 * 1024;

struct FileCloser {
  void operator()(FILE* f) const {
    if (f) std::fclose(f);
  }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;

struct Entry {
  std::string name;
  const DtypeInfo* dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  throw Error("E_BAD_CHECKPOINT", "invalid safetensors file " + path + ": " + what);
}

}  // namespace

std::string safetensors_dtype(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  throw Error("E_INVALID_ARG", std::string("dtype ") + c10::toString(t) + " cannot be stored in safetensors");
}

SafetensorsFile read_safetensors(const std::string& path) {
  FilePtr f(std::fopen(path.c_str(), "rb"));
  if (!f) throw Error("E_FILE_NOT_FOUND", "cannot open " + path + ": " + std::strerror(errno));
  if (std::fseek(f.get(), 0, SEEK_END) != 0) bad(path, "cannot seek");
  const long file_size_l = std::ftell(f.get());
  if (file_size_l < 0) bad(path, "cannot tell its size");
  const uint64_t file_size = static_cast<uint64_t>(file_size_l);
  std::rewind(f.get());
  if (file_size < 8) bad(path, "file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");

  unsigned char len_bytes[8];
  if (std::fread(len_bytes, 1, 8, f.get()) != 8) bad(path, "cannot read the header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > file_size - 8)
    bad(path, "header length " + std::to_string(header_len) + " runs past the end of the file (" +
                  std::to_string(file_size) + " bytes)");
  if (header_len > kMaxHeader) bad(path, "header length " + std::to_string(header_len) + " exceeds 100 MiB");
  if (header_len < 2) bad(path, "header is " + std::to_string(header_len) + " bytes, too short for JSON");

  std::string header(header_len, '\0');
  if (std::fread(header.data(), 1, header_len, f.get()) != header_len) bad(path, "cannot read the header");

  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {
    bad(path, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) bad(path, "header is not a JSON object");

  const uint64_t buffer_size = file_size - 8 - header_len;
  const uint64_t data_start = 8 + header_len;
  SafetensorsFile out;
  std::vector<Entry> entries;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) bad(path, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) bad(path, "__metadata__." + m.key() + " is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!v.is_object()) bad(path, where + " is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) bad(path, where + " has no dtype string");
    const auto dtype_name = v["dtype"].get<std::string>();
    const DtypeInfo* dt = find_dtype(dtype_name);
    if (!dt) bad(path, where + " has unknown or unsupported dtype '" + dtype_name + "'");
    if (!v.contains("shape") || !v["shape"].is_array()) bad(path, where + " has no shape array");
    Entry e{name, dt, {}, 0, 0};
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) bad(path, where + " has a shape entry that is not a non-negative integer");
      const uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim))
        bad(path, where + " has a shape whose size overflows");
      numel *= dim;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2 ||
        !v["data_offsets"][0].is_number_unsigned() || !v["data_offsets"][1].is_number_unsigned())
      bad(path, where + " has no data_offsets [begin, end] of non-negative integers");
    e.begin = v["data_offsets"][0].get<uint64_t>();
    e.end = v["data_offsets"][1].get<uint64_t>();
    if (e.end < e.begin) bad(path, where + " has data_offsets end < begin");
    if (e.end > buffer_size)
      bad(path, where + " has data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                    "] beyond the data buffer of " + std::to_string(buffer_size) + " bytes");
    if (numel > std::numeric_limits<uint64_t>::max() / dt->size) bad(path, where + " byte size overflows");
    if (e.end - e.begin != numel * dt->size)
      bad(path, where + " holds " + std::to_string(e.end - e.begin) + " bytes but shape " + shape_str(e.shape) +
                    " x " + dtype_name + " needs " + std::to_string(numel * dt->size));
    entries.push_back(std::move(e));
  }

  // Offsets must tile the buffer exactly: no overlap (two tensors aliasing bytes) and no hole.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // Overlaps are reported before holes: an aliased range also leaves a hole where the moved tensor was.
  uint64_t cursor = 0;
  for (const auto& e : entries) {
    if (e.begin < cursor) bad(path, "tensor '" + e.name + "' overlaps the bytes of another tensor");
    cursor = std::max(cursor, e.end);
  }
  cursor = 0;
  for (const auto& e : entries) {
    if (e.begin > cursor) bad(path, "hole in the data buffer before tensor '" + e.name + "'");
    cursor = e.end;
  }
  if (cursor != buffer_size)
    bad(path, "data buffer is " + std::to_string(buffer_size) + " bytes but tensors cover " + std::to_string(cursor));

  // Read each tensor straight into its own storage: no second copy of the whole file in memory.
  for (const auto& e : entries) {
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.dtype->type));
    const uint64_t n = e.end - e.begin;
    if (n > 0) {
      if (std::fseek(f.get(), static_cast<long>(data_start + e.begin), SEEK_SET) != 0 ||
          std::fread(t.data_ptr(), 1, n, f.get()) != n)
        bad(path, "cannot read the bytes of tensor '" + e.name + "'");
    }
    if (e.dtype->type == at::kBool) {
      // Any byte other than 0/1 would be an invalid bool: normalise instead of trusting it.
      t = t.view(at::kByte).ne(0);
    }
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, at::Tensor>> sorted;
  sorted.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") throw Error("E_INVALID_ARG", "a tensor cannot be named __metadata__");
    sorted.emplace_back(name, t.detach().to(at::kCPU).contiguous());
  }
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < sorted.size(); ++i)
    if (sorted[i].first == sorted[i - 1].first)
      throw Error("E_INVALID_ARG", "duplicate tensor name '" + sorted[i].first + "' when writing " + path);

  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : sorted) {
    const uint64_t n = static_cast<uint64_t>(t.numel()) * t.element_size();
    header[name] = {{"dtype", safetensors_dtype(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string hs = header.dump();
  while (hs.size() % 8 != 0) hs.push_back(' ');

  // Through a temporary sibling, every write checked, fsynced, then renamed: a crash or a full disk never
  // leaves a partial file under `path`, and a failure throws E_NO_SPACE / E_WRITE_FAILED.
  AtomicFile f(path);
  unsigned char len_bytes[8];
  const uint64_t len = hs.size();
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>((len >> (8 * i)) & 0xff);
  f.write(len_bytes, 8);
  f.write(hs.data(), hs.size());
  for (const auto& [name, t] : sorted) f.write(t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size());
  f.commit();
}

}  // namespace bp
