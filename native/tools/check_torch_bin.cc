// Standalone check of native/torch_bin.cc (not part of the addon build).
//
//   check_torch_bin [pytorch_model.bin] [model.safetensors]
//
// 1. Loads the .bin fixture, prints every tensor, and compares it with the same weights stored as
//    safetensors (parsed here, independently of the addon's safetensors reader): names, dtypes,
//    shapes and values (max |diff|). Extra .bin entries are allowed only for `*.position_ids`
//    buffers, which must hold arange.
// 2. Builds hand-made archives in a temporary directory: views sharing one storage, tied weights,
//    compressed records and protocol-4 opcodes, which must load with exact values; and hostile or
//    broken files (missing, non-zip, legacy, truncated, forbidden globals, bad pickles, bad
//    storages and views, plus truncation and byte-flip fuzzing of the real data.pkl), each of which
//    must throw bp::Error with the expected code and message, never crash or throw anything else.
// Exits 1 if any check fails.
//
// Build by hand from the repository root (~20 s), then run /tmp/check_torch_bin:
//   g++ -std=c++17 -O1 -D_GLIBCXX_USE_CXX11_ABI=1 -Inative native/torch_bin.cc
//       native/tools/check_torch_bin.cc -o /tmp/check_torch_bin -ltorch -ltorch_cpu -lc10

#include <caffe2/serialize/inline_container.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "errors.h"
#include "torch_bin.h"

namespace fs = std::filesystem;

namespace {

const char* kDefaultBin = "/work/shared/fixtures/bert-tiny-cls-bin/pytorch_model.bin";
const char* kDefaultSafetensors = "/work/shared/fixtures/bert-tiny-cls/model.safetensors";

int g_failures = 0;

void fail_check(const std::string& what) {
  ++g_failures;
  std::printf("FAIL %s\n", what.c_str());
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::vector<int64_t> shape_of(const at::Tensor& t) { return t.sizes().vec(); }

// ---- safetensors (independent minimal parser) ----

at::ScalarType safetensors_dtype(const std::string& s) {
  static const std::map<std::string, at::ScalarType> m = {
      {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16},
      {"I64", at::kLong},   {"I32", at::kInt},   {"I16", at::kShort}, {"I8", at::kChar},
      {"U8", at::kByte},    {"BOOL", at::kBool}};
  auto it = m.find(s);
  if (it == m.end()) throw std::runtime_error("unknown safetensors dtype " + s);
  return it->second;
}

std::map<std::string, at::Tensor> read_safetensors(const std::string& path) {
  const std::string bytes = read_file(path);
  if (bytes.size() < 8) throw std::runtime_error(path + ": too short");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t{static_cast<uint8_t>(bytes[i])} << (8 * i);
  if (n > bytes.size() - 8) throw std::runtime_error(path + ": bad header length");
  const auto header = nlohmann::json::parse(bytes.substr(8, n));
  const size_t base = 8 + n;
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    const at::ScalarType dtype = safetensors_dtype(info.at("dtype").get<std::string>());
    const auto shape = info.at("shape").get<std::vector<int64_t>>();
    const auto offsets = info.at("data_offsets").get<std::vector<uint64_t>>();
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    if (offsets.size() != 2 || offsets[1] - offsets[0] != nbytes ||
        base + offsets[1] > bytes.size()) {
      throw std::runtime_error(path + ": bad data_offsets for " + name);
    }
    std::memcpy(t.data_ptr(), bytes.data() + base + offsets[0], nbytes);
    out.emplace(name, t);
  }
  return out;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  if (a.numel() == 0) return 0.0;
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// Every returned tensor must be contiguous, on CPU and own its storage.
void check_fresh(const std::string& label,
                 const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  std::set<const c10::StorageImpl*> storages;
  for (const auto& [name, t] : tensors) {
    if (!t.is_contiguous() || t.device().type() != at::kCPU || t.storage_offset() != 0) {
      fail_check(label + ": " + name + " is not a contiguous CPU tensor at offset 0");
    }
    if (t.numel() > 0 && !storages.insert(t.storage().unsafeGetStorageImpl()).second) {
      fail_check(label + ": " + name + " shares its storage with another tensor");
    }
  }
}

int compare_fixture(const std::string& bin_path, const std::string& st_path) {
  std::printf("== %s\n", bin_path.c_str());
  const auto loaded = bp::read_torch_zip(bin_path);
  const auto reference = read_safetensors(st_path);
  check_fresh("fixture", loaded);
  std::set<std::string> seen;
  double worst = 0.0;
  for (const auto& [name, t] : loaded) {
    std::printf("  %-58s %-6s %s", name.c_str(), c10::toString(t.scalar_type()),
                bp::shape_str(shape_of(t)).c_str());
    seen.insert(name);
    auto it = reference.find(name);
    if (it == reference.end()) {
      if (name.size() >= 12 && name.compare(name.size() - 12, 12, "position_ids") == 0) {
        const at::Tensor want = at::arange(t.size(-1), at::kLong).expand(t.sizes());
        const bool ok = t.scalar_type() == at::kLong && at::equal(t, want);
        std::printf("  (buffer, not in safetensors; arange: %s)\n", ok ? "yes" : "NO");
        if (!ok) fail_check(name + " is not arange");
      } else {
        std::printf("  NOT IN SAFETENSORS\n");
        fail_check(name + " missing from safetensors");
      }
      continue;
    }
    const at::Tensor& ref = it->second;
    if (ref.scalar_type() != t.scalar_type() || ref.sizes() != t.sizes()) {
      std::printf("  MISMATCH (safetensors: %s %s)\n", c10::toString(ref.scalar_type()),
                  bp::shape_str(shape_of(ref)).c_str());
      fail_check(name + " dtype/shape mismatch");
      continue;
    }
    const double diff = max_abs_diff(t, ref);
    worst = std::max(worst, diff);
    std::printf("  max|diff| %g\n", diff);
    if (diff != 0.0) fail_check(name + " values differ");
  }
  for (const auto& [name, ref] : reference) {
    if (!seen.count(name)) fail_check(name + " (in safetensors) missing from the .bin");
  }
  std::printf("  %zu tensors in .bin, %zu in safetensors, max|diff| over all %g\n", loaded.size(),
              reference.size(), worst);
  return 0;
}

// ---- building test archives ----

// Minimal pickle writer for hand-made data.pkl files.
struct Pickle {
  std::string b;

  Pickle& op(int c) {
    b += static_cast<char>(c);
    return *this;
  }
  Pickle& le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b += static_cast<char>((v >> (8 * i)) & 0xff);
    return *this;
  }
  Pickle& proto(int v) { return op(0x80).op(v); }
  Pickle& str(const std::string& s) {
    op('X').le(s.size(), 4);
    b += s;
    return *this;
  }
  Pickle& short_str(const std::string& s) {
    op(0x8c).le(s.size(), 1);
    b += s;
    return *this;
  }
  Pickle& integer(int64_t v) {
    if (v >= 0 && v < 256) return op('K').le(static_cast<uint64_t>(v), 1);
    if (v >= INT32_MIN && v <= INT32_MAX) return op('J').le(static_cast<uint32_t>(v), 4);
    return op(0x8a).op(8).le(static_cast<uint64_t>(v), 8);  // LONG1
  }
  Pickle& global(const std::string& module, const std::string& name) {
    op('c');
    b += module + "\n" + name + "\n";
    return *this;
  }
  Pickle& int_tuple(const std::vector<int64_t>& v) {
    op('(');
    for (int64_t x : v) integer(x);
    return op('t');
  }
  Pickle& ordered_dict() { return global("collections", "OrderedDict").op(')').op('R'); }
  // _rebuild_tensor_v2(persistent_load(('storage', torch.<cls>, key, 'cpu', numel)), offset,
  //                    size, stride, False, OrderedDict())
  Pickle& tensor(const std::string& cls, const std::string& key, int64_t numel, int64_t offset,
                 const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides) {
    global("torch._utils", "_rebuild_tensor_v2").op('(');
    op('(').str("storage").global("torch", cls).str(key).str("cpu").integer(numel).op('t').op('Q');
    integer(offset).int_tuple(sizes).int_tuple(strides).op(0x89).ordered_dict();
    return op('t').op('R');
  }
  Pickle& stop() { return op('.'); }
};

template <typename T>
std::string raw_bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// Writes a torch.save-style zip; the archive folder is the file's stem (as torch.save does).
using Records = std::vector<std::pair<std::string, std::string>>;

void write_zip(const std::string& path, const Records& records, bool compress = false) {
  caffe2::serialize::PyTorchStreamWriter writer(path);
  for (const auto& [name, data] : records) {
    writer.writeRecord(name, data.data(), data.size(), compress);
  }
  writer.writeEndOfFile();
}

// A one-tensor state dict {"w": <cls> storage "0" viewed with offset/sizes/strides}.
std::string one_tensor_pickle(const std::string& cls, int64_t numel, int64_t offset,
                              const std::vector<int64_t>& sizes,
                              const std::vector<int64_t>& strides) {
  Pickle p;
  p.proto(2).ordered_dict().op('(').str("w").tensor(cls, "0", numel, offset, sizes, strides);
  return p.op('u').stop().b;
}

// ---- expectations ----

// Loads `path`, which must fail with bp::Error `code` and a message containing `needle` and the
// file path. Returns whether it did.
bool expect_error(const std::string& label, const std::string& path, const std::string& code,
                  const std::string& needle, bool quiet = false) {
  try {
    const auto r = bp::read_torch_zip(path);
    fail_check(label + ": loaded " + std::to_string(r.size()) + " tensors, expected " + code);
  } catch (const bp::Error& e) {
    const std::string msg = e.what();
    if (e.code() != code || msg.find(needle) == std::string::npos ||
        msg.find(path) == std::string::npos) {
      fail_check(label + ": got [" + e.code() + "] " + msg + "; expected [" + code + "] ..." +
                 needle + "...");
      return false;
    }
    if (!quiet) std::printf("  ok   %-34s [%s] %s\n", label.c_str(), e.code().c_str(), msg.c_str());
    return true;
  } catch (const std::exception& e) {
    fail_check(label + ": threw a non-bp::Error: " + e.what());
  }
  return false;
}

// For fuzzing: loading may succeed or throw bp::Error E_BAD_CHECKPOINT, nothing else.
// Returns 1 for success, 0 for bp::Error.
int load_or_bp_error(const std::string& label, const std::string& path) {
  try {
    const auto r = bp::read_torch_zip(path);
    check_fresh(label, r);
    return 1;
  } catch (const bp::Error& e) {
    if (e.code() != "E_BAD_CHECKPOINT") fail_check(label + ": code " + e.code());
    return 0;
  } catch (const std::exception& e) {
    fail_check(label + ": threw a non-bp::Error: " + e.what());
    return 0;
  }
}

void check_views(const std::string& dir) {
  std::printf("== positive cases\n");
  // Storage "0": 6 floats 0..5 shared by several views; storage "1": int64 0..3 (used once, whole).
  const std::vector<float> f = {0, 1, 2, 3, 4, 5};
  const std::vector<int64_t> l = {0, 1, 2, 3};
  Pickle p;
  p.proto(2).ordered_dict().op('(');
  p.str("a").tensor("FloatStorage", "0", 6, 0, {2, 3}, {3, 1}).op('q').op(100);  // memo 100
  p.str("t").tensor("FloatStorage", "0", 6, 0, {3, 2}, {1, 3});   // transpose of a
  p.str("c").tensor("FloatStorage", "0", 6, 1, {2}, {2});         // [1, 3]
  p.str("s").tensor("FloatStorage", "0", 6, 5, {}, {});           // 0-d: 5
  p.str("e").tensor("FloatStorage", "0", 6, 0, {2, 3}, {0, 1});   // expanded row 0..2
  p.str("z").tensor("FloatStorage", "0", 6, 6, {0, 3}, {3, 1});   // empty
  p.str("tied").op('h').op(100);                                   // same object as "a"
  // A _rebuild_parameter wrapper and a SHORT_BINUNICODE name.
  p.short_str("p").global("torch._utils", "_rebuild_parameter").op('(');
  p.tensor("LongStorage", "1", 4, 0, {2, 2}, {2, 1}).op(0x88).ordered_dict().op('t').op('R');
  p.op('u').stop();
  const Records records = {{"data.pkl", p.b},
                           {"data/0", raw_bytes(f)},
                           {"data/1", raw_bytes(l)},
                           {"byteorder", "little"}};
  for (bool compress : {false, true}) {
    const std::string label = compress ? "views (deflated records)" : "views";
    const std::string path = dir + (compress ? "/views_deflated.bin" : "/views.bin");
    write_zip(path, records, compress);
    std::vector<std::pair<std::string, at::Tensor>> r;
    try {
      r = bp::read_torch_zip(path);
    } catch (const std::exception& e) {
      fail_check(label + ": " + e.what());
      continue;
    }
    check_fresh(label, r);
    const at::Tensor base = at::arange(6, at::kFloat);
    const std::vector<std::pair<std::string, at::Tensor>> want = {
        {"a", base.view({2, 3})},
        {"t", base.view({2, 3}).t()},
        {"c", base.slice(0, 1, 5, 2)},
        {"s", base[5]},
        {"e", base.slice(0, 0, 3).expand({2, 3})},
        {"z", at::empty({0, 3})},
        {"tied", base.view({2, 3})},
        {"p", at::arange(4, at::kLong).view({2, 2})}};
    bool ok = r.size() == want.size();
    for (size_t i = 0; ok && i < want.size(); ++i) {
      const at::Tensor& got = r[i].second;
      const at::Tensor& expected = want[i].second;
      ok = r[i].first == want[i].first && got.scalar_type() == expected.scalar_type() &&
           got.sizes() == expected.sizes() && at::equal(got, expected);
      if (!ok) fail_check(label + ": wrong tensor " + r[i].first);
    }
    if (r.size() != want.size()) fail_check(label + ": wrong tensor count");
    // The whole-storage tensor "p" is handed over without a copy; it must behave like any tensor.
    try {
      r.back().second.resize_({16});
    } catch (const std::exception& e) {
      fail_check(label + ": resize_ of p failed: " + e.what());
    }
    if (ok) {
      std::printf("  ok   %s: a t c s e z tied p all exact, fresh, contiguous\n", label.c_str());
    }
  }
}

void check_hostile(const std::string& dir, const std::string& bin_path) {
  std::printf("== hostile / broken files (each must throw bp::Error)\n");
  const std::string B = "E_BAD_CHECKPOINT";
  const std::string real = read_file(bin_path);

  // -- file level --
  expect_error("missing file", dir + "/nope.bin", "E_FILE_NOT_FOUND", "not found");
  expect_error("directory", dir, "E_FILE_NOT_FOUND", "directory");
  write_file(dir + "/empty.bin", "");
  expect_error("empty file", dir + "/empty.bin", B, "no zip signature");
  write_file(dir + "/text.bin", "this is not a checkpoint\n");
  expect_error("text file", dir + "/text.bin", B, "no zip signature");
  // What torch<1.6 wrote first: PROTO 2, then LONG1 of the legacy magic number.
  write_file(dir + "/legacy.bin",
             std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15));
  expect_error("legacy torch.save", dir + "/legacy.bin", B, "legacy torch.save format");
  write_file(dir + "/pk.bin", "PK");
  expect_error("just 'PK'", dir + "/pk.bin", B, "zip archive");
  for (size_t n : {size_t{4}, size_t{30}, size_t{100}, size_t{1000}, real.size() / 2,
                   real.size() - 100, real.size() - 22, real.size() - 1}) {
    write_file(dir + "/trunc.bin", real.substr(0, n));
    expect_error("truncated to " + std::to_string(n) + " bytes", dir + "/trunc.bin", B,
                 "zip archive");
  }
  int truncated = 0, total = 0;
  for (size_t n = 2; n < real.size(); n += 977) {
    write_file(dir + "/trunc.bin", real.substr(0, n));
    ++total;
    truncated += expect_error("truncated", dir + "/trunc.bin", B, "", /*quiet=*/true);
  }
  std::printf("  ok   %d/%d truncations every 977 bytes threw bp::Error\n", truncated, total);

  // -- archive and pickle level: each case is a data.pkl plus optional extra records --
  struct Case {
    std::string label;
    std::string pkl;
    Records extra;
    std::string needle;  // expected in the message
  };
  const Records d0 = {{"data/0", raw_bytes(std::vector<float>{1, 2, 3, 4})}};
  const int64_t big = int64_t{1} << 62;
  auto one = one_tensor_pickle;
  auto pk = [](int proto) {
    Pickle p;
    p.proto(proto);
    return p;
  };
  Pickle deep = pk(2);  // a list nested 1M deep: no recursion anywhere, so no stack overflow
  for (int i = 0; i < 1000000; ++i) deep.op(']');
  for (int i = 1; i < 1000000; ++i) deep.op('a');
  Pickle many = pk(2);
  for (int i = 0; i < 3000000; ++i) many.op('N');
  Pickle two_dtypes = pk(2);
  two_dtypes.ordered_dict().op('(');
  two_dtypes.str("a").tensor("FloatStorage", "0", 4, 0, {4}, {1});
  two_dtypes.str("b").tensor("LongStorage", "0", 2, 0, {2}, {1}).op('u').stop();
  const std::string good = one("FloatStorage", 4, 0, {2, 2}, {2, 1});

  const std::vector<Case> cases = {
      // archive
      {"byteorder big", good, {d0[0], {"byteorder", "big"}}, "unsupported byte order 'big'"},
      {"storage record missing", good, {}, "cannot read record 'data/0'"},
      {"storage record too short", good, {{"data/0", "0123456789"}},
       "record 'data/0' holds 10 bytes"},
      // forbidden globals
      {"GLOBAL os.system",
       pk(2).global("os", "system").str("echo pwned").op(0x85).op('R').stop().b, {},
       "refusing to unpickle global os.system"},
      {"STACK_GLOBAL builtins.eval",
       pk(4).short_str("builtins").short_str("eval").op(0x93).str("1").op(0x85).op('R').stop().b,
       {}, "refusing to unpickle global builtins.eval"},
      {"GLOBAL __builtin__.getattr", pk(2).global("__builtin__", "getattr").stop().b, {},
       "refusing to unpickle global __builtin__.getattr"},
      {"GLOBAL torch.load", pk(2).global("torch", "load").stop().b, {},
       "refusing to unpickle global torch.load"},
      {"calling a storage class", pk(2).global("torch", "FloatStorage").op(')').op('R').stop().b,
       {}, "refusing to call torch.FloatStorage"},
      // malformed pickles
      {"stack underflow", pk(2).op('R').stop().b, {}, "stack underflow"},
      {"pop below MARK", pk(2).op(')').op('(').op(0x85).stop().b, {}, "stack underflow"},
      {"memo index undefined", pk(2).op('h').op(7).stop().b, {}, "memo index 7 is not defined"},
      {"unknown opcode NEWOBJ", pk(2).op(')').op(0x81).stop().b, {},
       "unsupported pickle opcode 0x81"},
      {"no STOP", pk(2).ordered_dict().b, {}, "truncated pickle"},
      {"string past end", pk(2).op('X').le(1000, 4).b + "abc", {}, "truncated pickle"},
      {"top-level list", pk(2).op(']').stop().b, {}, "not hold a state dict"},
      {"entry not a tensor", pk(2).op('}').str("epoch").integer(3).op('s').stop().b, {},
       "entry 'epoch' is not a tensor"},
      {"odd SETITEMS", pk(2).op('}').op('(').str("k").op('u').stop().b, {}, "odd number"},
      {"BUILD on a list", pk(2).op(']').op('}').op('b').stop().b, {}, "BUILD on list"},
      {"LONG1 of 9 bytes", pk(2).op(0x8a).op(9).le(0, 8).op(0).stop().b, {}, "integer too large"},
      {"protocol 6", pk(6).stop().b, {}, "unsupported pickle protocol 6"},
      {"self-containing list", pk(2).op(']').op('q').op(0).op('h').op(0).op('a').stop().b, {},
       "not hold a state dict"},
      {"list nested 1e6 deep", deep.stop().b, {}, "not hold a state dict"},
      {"3e6 objects", many.stop().b, {}, "too many objects"},
      // storages and views
      {"view beyond storage", one("FloatStorage", 4, 0, {10}, {1}), d0, "beyond the storage"},
      {"offset beyond storage", one("FloatStorage", 4, 3, {2}, {1}), d0, "beyond the storage"},
      {"negative size", one("FloatStorage", 4, 0, {-1}, {1}), d0, "negative size"},
      {"negative stride", one("FloatStorage", 4, 3, {2}, {-1}), d0, "negative stride"},
      {"negative offset", one("FloatStorage", 4, -1, {2}, {1}), d0, "negative storage offset"},
      {"overflowing extent", one("FloatStorage", 4, big, {3}, {big}), d0, "extent overflows"},
      {"huge expanded view", one("FloatStorage", 4, 0, {int64_t{1} << 40}, {0}), d0,
       "expanded view"},
      {"size/stride length differ", one("FloatStorage", 4, 0, {2, 2}, {1}), d0,
       "differ in length"},
      {"absurd storage numel", one("FloatStorage", big, 0, {2}, {1}), d0, "invalid size"},
      {"bool storage holding 2", one("BoolStorage", 4, 0, {4}, {1}),
       {{"data/0", std::string("\1\0\2\1", 4)}}, "neither 0 nor 1"},
      {"one storage, two dtypes", two_dtypes.b, d0, "different types or sizes"},
  };
  {
    const std::string path = dir + "/nopkl.bin";
    write_zip(path, {{"something", "x"}});
    expect_error("archive without data.pkl", path, B, "no data.pkl");
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    Records records = {{"data.pkl", cases[i].pkl}};
    records.insert(records.end(), cases[i].extra.begin(), cases[i].extra.end());
    const std::string path = dir + "/case" + std::to_string(i) + ".bin";
    write_zip(path, records);
    expect_error(cases[i].label, path, B, cases[i].needle);
  }

  // -- fuzzing the real data.pkl --
  Records real_records;
  {
    caffe2::serialize::PyTorchStreamReader reader(bin_path);
    for (const std::string& name : reader.getAllRecords()) {
      auto [data, n] = reader.getRecord(name);
      real_records.emplace_back(name, std::string(static_cast<const char*>(data.get()), n));
    }
  }
  std::string real_pkl;
  for (const auto& [name, data] : real_records) {
    if (name == "data.pkl") real_pkl = data;
  }
  auto with_pkl = [&](const std::string& pkl) {
    auto recs = real_records;
    for (auto& [name, data] : recs) {
      if (name == "data.pkl") data = pkl;
    }
    return recs;
  };
  {
    // The real records rewritten unchanged must load (sanity for the fuzz harness).
    write_zip(dir + "/rewritten.bin", with_pkl(real_pkl));
    if (load_or_bp_error("rewritten fixture", dir + "/rewritten.bin") != 1) {
      fail_check("rewritten fixture does not load");
    }
  }
  {
    int errors = 0;
    for (size_t n = 0; n < real_pkl.size(); ++n) {
      write_zip(dir + "/pkl_prefix.bin", {{"data.pkl", real_pkl.substr(0, n)}});
      errors += expect_error("data.pkl prefix " + std::to_string(n), dir + "/pkl_prefix.bin", B, "",
                             /*quiet=*/true);
    }
    std::printf("  ok   %d/%zu prefixes of the real data.pkl threw bp::Error\n", errors,
                real_pkl.size());
  }
  {
    std::mt19937 rng(12345);
    const int rounds = 3000;
    int loaded = 0;
    for (int i = 0; i < rounds; ++i) {
      std::string pkl = real_pkl;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < flips; ++k) pkl[rng() % pkl.size()] = static_cast<char>(rng() & 0xff);
      write_zip(dir + "/fuzz.bin", with_pkl(pkl));
      loaded += load_or_bp_error("byte-flip fuzz " + std::to_string(i), dir + "/fuzz.bin");
    }
    std::printf("  ok   %d byte-flip mutations of data.pkl: %d loaded, %d threw bp::Error\n",
                rounds, loaded, rounds - loaded);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string bin_path = argc > 1 ? argv[1] : kDefaultBin;
  const std::string st_path = argc > 2 ? argv[2] : kDefaultSafetensors;
  char tmpl[] = "/tmp/check_torch_bin.XXXXXX";
  if (!mkdtemp(tmpl)) {
    std::perror("mkdtemp");
    return 2;
  }
  const std::string dir = tmpl;
  try {
    compare_fixture(bin_path, st_path);
    check_views(dir);
    check_hostile(dir, bin_path);
  } catch (const bp::Error& e) {
    fail_check(std::string("unexpected bp::Error [") + e.code() + "] " + e.what());
  } catch (const std::exception& e) {
    fail_check(std::string("unexpected exception: ") + e.what());
  }
  fs::remove_all(dir);
  std::printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "PASSED", g_failures);
  return g_failures ? 1 : 0;
}
