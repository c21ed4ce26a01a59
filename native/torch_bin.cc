// Kept hand-written: refuses every global but the state-dict ones, since torch.load would run arbitrary code and libtorch's pickle_load returns None for these files.
//
// Reader for torch.save zip checkpoints (see torch_bin.h).
//
// Layout of such a file (torch >= 1.6): a zip archive whose entries all live under one folder
// `<prefix>/`: `data.pkl` (a pickle, protocol 2, of the state dict), `data/<key>` (one raw
// little-endian storage per key), `version` and sometimes `byteorder`. Tensors in the pickle are
//   torch._utils._rebuild_tensor_v2(persistent_load(('storage', torch.FloatStorage, key, location,
//                                                    numel)), offset, size, stride, requires_grad,
//                                   backward_hooks)
// inside a collections.OrderedDict.
//
// Python's pickle can call any importable function, so a .bin must never go through a general
// unpickler. The Unpickler below knows a fixed list of opcodes and globals; REDUCE only "calls"
// the allow-listed globals, which it interprets itself. Objects live in an arena and refer to each
// other by raw pointers, so memo cycles or deep nesting cannot leak or overflow the stack on
// destruction, and nothing is ever traversed recursively.
//
// Tensors are not materialised while unpickling: _rebuild_tensor_v2 yields a TensorSpec, and after
// STOP each state-dict entry is checked against its storage (with the tensor's name in the message)
// and copied out. Storages are loaded once, on first use, and dropped after their last use, so the
// peak memory stays near one copy of the weights; a storage used by exactly one tensor that covers
// all of it is handed over without a copy.

#include "torch_bin.h"

#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <new>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "errors.h"

namespace bp {
namespace {

// Caps against hostile pickles. A real state dict needs ~20 objects per tensor, so 2M objects is
// ample (~100k tensors) while bounding the unpickler's memory to a few hundred MB.
constexpr size_t kMaxObjects = size_t{1} << 21;
constexpr size_t kMaxDims = 32;
// A view may have more elements than its storage only through zero/overlapping strides (an
// expanded tensor). Materialising one is capped so that a tiny file cannot ask for terabytes.
constexpr int64_t kMaxExpandedBytes = int64_t{1} << 28;

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  throw Error("E_BAD_CHECKPOINT", path + ": " + what);
}

std::string in_quotes(const std::string& s) { return "'" + s + "'"; }

// The torch.<X>Storage classes a state dict may name, and the dtype each one stores.
struct StorageClass {
  const char* name;
  at::ScalarType dtype;
};
constexpr StorageClass kStorageClasses[] = {
    {"FloatStorage", at::kFloat}, {"DoubleStorage", at::kDouble}, {"HalfStorage", at::kHalf},
    {"BFloat16Storage", at::kBFloat16}, {"LongStorage", at::kLong}, {"IntStorage", at::kInt},
    {"ShortStorage", at::kShort}, {"CharStorage", at::kChar}, {"ByteStorage", at::kByte},
    {"BoolStorage", at::kBool},
};

// ---------------------------------------------------------------------------------------------
// Pickle values

enum class Kind { None, Bool, Int, Float, String, Tuple, List, Dict, Global, Storage, Tensor };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "?";
}

// The allow-listed globals.
enum class Callable { OrderedDict, RebuildTensorV2, RebuildParameter, StorageClass };

struct Value;

struct DictData {
  std::vector<std::pair<Value*, Value*>> entries;         // insertion order
  std::unordered_map<std::string, size_t> string_keys;  // str key -> index in entries
};

struct Value {
  Kind kind = Kind::None;
  int64_t num = 0;                 // Bool, Int; Tensor: index of its TensorSpec
  double real = 0;                 // Float
  std::string str;                 // String; Global: "module.name"; Storage: key
  std::vector<Value*> items;       // Tuple, List
  std::unique_ptr<DictData> dict;  // Dict
  Callable callable = Callable::OrderedDict;  // Global
  at::ScalarType dtype = at::kFloat;          // Global (a storage class), Storage
  int64_t numel = 0;                          // Storage: element count from the persistent id
};

// A tensor as described by _rebuild_tensor_v2, not yet checked against its storage.
struct TensorSpec {
  std::string key;  // storage key: record "data/<key>"
  at::ScalarType dtype;
  int64_t storage_numel;
  int64_t offset;
  std::vector<int64_t> sizes, strides;
};

// ---------------------------------------------------------------------------------------------
// Restricted unpickler

class Unpickler {
 public:
  Unpickler(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}

  // Runs the pickle up to STOP and returns the resulting object (owned by this Unpickler).
  Value* run();

  const TensorSpec& spec(const Value* tensor) const { return specs_[tensor->num]; }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    bad(path_, "data.pkl: " + what + " (pickle offset " + std::to_string(op_pos_) + ")");
  }

  // --- input ---
  const uint8_t* take(size_t n) {
    if (n > size_ - pos_) fail("truncated pickle");
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  // Little-endian unsigned integer of n bytes.
  uint64_t read_le(size_t n) {
    const uint8_t* p = take(n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t{p[i]} << (8 * i);
    return v;
  }
  std::string read_string(uint64_t n) {
    if (n > size_ - pos_) fail("truncated pickle (string of " + std::to_string(n) + " bytes)");
    const uint8_t* p = take(static_cast<size_t>(n));
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }
  std::string read_line() {
    const void* nl = std::memchr(data_ + pos_, '\n', size_ - pos_);
    if (!nl) fail("truncated pickle (GLOBAL without newline)");
    const size_t n = static_cast<const uint8_t*>(nl) - (data_ + pos_);
    std::string s = read_string(n);
    pos_ += 1;  // the newline
    return s;
  }

  // --- objects and stack ---
  Value* make(Kind kind) {
    if (arena_.size() >= kMaxObjects) fail("too many objects in pickle");
    arena_.push_back(std::make_unique<Value>());
    Value* v = arena_.back().get();
    v->kind = kind;
    if (kind == Kind::Dict) v->dict = std::make_unique<DictData>();
    return v;
  }
  Value* make_int(int64_t n) {
    Value* v = make(Kind::Int);
    v->num = n;
    return v;
  }
  Value* make_string(std::string s) {
    Value* v = make(Kind::String);
    v->str = std::move(s);
    return v;
  }
  // Like Python's unpickler, MARK opens a new frame: opcodes may not pop below the last mark.
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(Value* v) { stack_.push_back(v); }
  Value* top() {
    if (stack_.size() <= floor()) fail("stack underflow");
    return stack_.back();
  }
  Value* pop() {
    Value* v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<Value*> pop_mark() {
    if (marks_.empty()) fail("no MARK on the stack");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  Value* make_tuple(std::vector<Value*> items) {
    Value* v = make(Kind::Tuple);
    v->items = std::move(items);
    return v;
  }
  void memo_put(uint64_t index) { memo_[index] = top(); }
  Value* memo_get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) fail("memo index " + std::to_string(index) + " is not defined");
    return it->second;
  }

  Value* expect(Value* v, Kind kind, const char* what) {
    if (v->kind != kind) {
      fail(std::string(what) + " must be " + kind_name(kind) + ", got " + kind_name(v->kind));
    }
    return v;
  }
  int64_t expect_int(Value* v, const char* what) { return expect(v, Kind::Int, what)->num; }
  std::vector<int64_t> expect_int_tuple(Value* v, const char* what) {
    expect(v, Kind::Tuple, what);
    std::vector<int64_t> out;
    for (Value* item : v->items) out.push_back(expect_int(item, what));
    return out;
  }

  void dict_set(Value* dict, Value* key, Value* value) {
    DictData& d = *dict->dict;
    if (key->kind == Kind::String) {
      // Python semantics: assigning an existing key replaces its value, keeping its position.
      auto [it, inserted] = d.string_keys.emplace(key->str, d.entries.size());
      if (!inserted) {
        d.entries[it->second].second = value;
        return;
      }
    }
    d.entries.emplace_back(key, value);
  }

  Value* find_global(const std::string& module, const std::string& name);
  Value* reduce(Value* callable, Value* args);
  Value* persistent_load(Value* pid);

  std::string path_;
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;  // offset of the opcode being executed, for messages

  std::vector<std::unique_ptr<Value>> arena_;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
  // Storages named by persistent ids: key -> (dtype, numel), to catch contradicting references.
  std::unordered_map<std::string, std::pair<at::ScalarType, int64_t>> storages_;
  std::vector<TensorSpec> specs_;
};

Value* Unpickler::find_global(const std::string& module, const std::string& name) {
  Value* g = make(Kind::Global);
  g->str = module + "." + name;
  if (module == "collections" && name == "OrderedDict") {
    g->callable = Callable::OrderedDict;
    return g;
  }
  if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
    g->callable = Callable::RebuildTensorV2;
    return g;
  }
  if (module == "torch._utils" && name == "_rebuild_parameter") {
    g->callable = Callable::RebuildParameter;
    return g;
  }
  if (module == "torch") {
    for (const StorageClass& sc : kStorageClasses) {
      if (name == sc.name) {
        g->callable = Callable::StorageClass;
        g->dtype = sc.dtype;
        return g;
      }
    }
  }
  fail("refusing to unpickle global " + g->str + ": only state-dict tensors are allowed");
}

// ('storage', torch.<X>Storage, key, location, numel) -> a Storage value. The record itself is read
// later, when a tensor of the state dict needs it.
Value* Unpickler::persistent_load(Value* pid) {
  expect(pid, Kind::Tuple, "persistent id");
  if (pid->items.size() != 5) {
    fail("persistent id must have 5 fields, got " + std::to_string(pid->items.size()));
  }
  Value* tag = expect(pid->items[0], Kind::String, "persistent id tag");
  if (tag->str != "storage") fail("unsupported persistent id tag " + in_quotes(tag->str));
  Value* cls = expect(pid->items[1], Kind::Global, "persistent id storage type");
  if (cls->callable != Callable::StorageClass) fail(cls->str + " is not a storage type");
  Value* key = expect(pid->items[2], Kind::String, "storage key");
  if (key->str.empty()) fail("empty storage key");
  expect(pid->items[3], Kind::String, "storage location");  // e.g. "cpu", "cuda:0": ignored
  const int64_t numel = expect_int(pid->items[4], "storage size");
  const int64_t itemsize = static_cast<int64_t>(c10::elementSize(cls->dtype));
  if (numel < 0 || numel > INT64_MAX / itemsize) {
    fail("invalid size " + std::to_string(numel) + " for storage " + in_quotes(key->str));
  }
  auto [it, inserted] = storages_.emplace(key->str, std::make_pair(cls->dtype, numel));
  if (!inserted && it->second != std::make_pair(cls->dtype, numel)) {
    fail("storage " + in_quotes(key->str) + " is referenced with different types or sizes");
  }
  Value* s = make(Kind::Storage);
  s->str = key->str;
  s->dtype = cls->dtype;
  s->numel = numel;
  return s;
}

Value* Unpickler::reduce(Value* callable, Value* args) {
  if (callable->kind != Kind::Global) {
    fail(std::string("REDUCE on ") + kind_name(callable->kind) + ", not on a global");
  }
  expect(args, Kind::Tuple, "REDUCE arguments");
  const std::vector<Value*>& a = args->items;
  switch (callable->callable) {
    case Callable::OrderedDict:
      // Pickled as OrderedDict() followed by SETITEMS; constructor arguments are not needed.
      if (!a.empty()) fail("collections.OrderedDict with arguments is not supported");
      return make(Kind::Dict);
    case Callable::RebuildTensorV2: {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]);
      // requires_grad, hooks and metadata do not affect the values and are ignored.
      if (a.size() != 6 && a.size() != 7) {
        fail("_rebuild_tensor_v2 takes 6 or 7 arguments, got " + std::to_string(a.size()));
      }
      Value* storage = expect(a[0], Kind::Storage, "tensor storage");
      TensorSpec t;
      t.key = storage->str;
      t.dtype = storage->dtype;
      t.storage_numel = storage->numel;
      t.offset = expect_int(a[1], "tensor storage offset");
      t.sizes = expect_int_tuple(a[2], "tensor size");
      t.strides = expect_int_tuple(a[3], "tensor stride");
      if (t.sizes.size() != t.strides.size()) fail("tensor size and stride differ in length");
      if (t.sizes.size() > kMaxDims) fail("tensor has too many dimensions");
      Value* v = make(Kind::Tensor);
      v->num = static_cast<int64_t>(specs_.size());
      specs_.push_back(std::move(t));
      return v;
    }
    case Callable::RebuildParameter:
      // (data, requires_grad, backward_hooks): the parameter is its data tensor.
      if (a.size() != 3) fail("_rebuild_parameter takes 3 arguments");
      return expect(a[0], Kind::Tensor, "parameter data");
    case Callable::StorageClass:
      break;
  }
  fail("refusing to call " + callable->str);
}

Value* Unpickler::run() {
  while (true) {
    op_pos_ = pos_;
    const uint8_t op = static_cast<uint8_t>(read_le(1));
    switch (op) {
      case 0x80: {  // PROTO
        const uint64_t proto = read_le(1);
        if (proto > 5) fail("unsupported pickle protocol " + std::to_string(proto));
        break;
      }
      case 0x95:  // FRAME: an 8-byte frame length; framing does not change the opcode stream
        read_le(8);
        break;
      case '.': {  // STOP
        Value* result = pop();
        return result;
      }
      case '(':  // MARK
        marks_.push_back(stack_.size());
        break;
      case '0':  // POP
        pop();
        break;
      case '1':  // POP_MARK
        pop_mark();
        break;
      case '}':  // EMPTY_DICT
        push(make(Kind::Dict));
        break;
      case ']':  // EMPTY_LIST
        push(make(Kind::List));
        break;
      case ')':  // EMPTY_TUPLE
        push(make(Kind::Tuple));
        break;
      case 't':  // TUPLE
        push(make_tuple(pop_mark()));
        break;
      case 0x85:  // TUPLE1
      case 0x86:  // TUPLE2
      case 0x87: {  // TUPLE3
        std::vector<Value*> items(op - 0x84);
        for (size_t i = items.size(); i-- > 0;) items[i] = pop();
        push(make_tuple(std::move(items)));
        break;
      }
      case 'X':  // BINUNICODE
        push(make_string(read_string(read_le(4))));
        break;
      case 0x8c:  // SHORT_BINUNICODE
        push(make_string(read_string(read_le(1))));
        break;
      case 0x8d:  // BINUNICODE8
        push(make_string(read_string(read_le(8))));
        break;
      case 'J':  // BININT: signed 32-bit
        push(make_int(static_cast<int32_t>(static_cast<uint32_t>(read_le(4)))));
        break;
      case 'K':  // BININT1
        push(make_int(static_cast<int64_t>(read_le(1))));
        break;
      case 'M':  // BININT2
        push(make_int(static_cast<int64_t>(read_le(2))));
        break;
      case 0x8a: {  // LONG1: n-byte little-endian two's complement
        const size_t n = static_cast<size_t>(read_le(1));
        if (n > 8) fail("integer too large (" + std::to_string(n) + " bytes)");
        uint64_t v = n ? read_le(n) : 0;
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
        push(make_int(static_cast<int64_t>(v)));
        break;
      }
      case 'G': {  // BINFLOAT: big-endian double
        const uint8_t* p = take(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
        Value* v = make(Kind::Float);
        std::memcpy(&v->real, &bits, sizeof bits);
        push(v);
        break;
      }
      case 'N':  // NONE
        push(make(Kind::None));
        break;
      case 0x88:  // NEWTRUE
      case 0x89: {  // NEWFALSE
        Value* v = make(Kind::Bool);
        v->num = op == 0x88;
        push(v);
        break;
      }
      case 'c': {  // GLOBAL "module\nname\n"
        std::string module = read_line();
        std::string name = read_line();
        push(find_global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Value* name = expect(pop(), Kind::String, "STACK_GLOBAL name");
        Value* module = expect(pop(), Kind::String, "STACK_GLOBAL module");
        push(find_global(module->str, name->str));
        break;
      }
      case 'Q':  // BINPERSID
        push(persistent_load(pop()));
        break;
      case 'R': {  // REDUCE
        Value* args = pop();
        Value* callable = pop();
        push(reduce(callable, args));
        break;
      }
      case 'b': {  // BUILD
        Value* state = pop();
        (void)state;
        // The only BUILD a state dict has sets OrderedDict._metadata (per-module versions),
        // which a reader of the weights does not need.
        if (top()->kind != Kind::Dict) {
          fail(std::string("BUILD on ") + kind_name(top()->kind) + " is not supported");
        }
        break;
      }
      case 's': {  // SETITEM
        Value* value = pop();
        Value* key = pop();
        dict_set(expect(top(), Kind::Dict, "SETITEM target"), key, value);
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<Value*> items = pop_mark();
        if (items.size() % 2) fail("SETITEMS with an odd number of items");
        Value* dict = expect(top(), Kind::Dict, "SETITEMS target");
        for (size_t i = 0; i < items.size(); i += 2) dict_set(dict, items[i], items[i + 1]);
        break;
      }
      case 'a': {  // APPEND
        Value* value = pop();
        expect(top(), Kind::List, "APPEND target")->items.push_back(value);
        break;
      }
      case 'e': {  // APPENDS
        std::vector<Value*> items = pop_mark();
        Value* list = expect(top(), Kind::List, "APPENDS target");
        list->items.insert(list->items.end(), items.begin(), items.end());
        break;
      }
      case 'q':  // BINPUT
        memo_put(read_le(1));
        break;
      case 'r':  // LONG_BINPUT
        memo_put(read_le(4));
        break;
      case 0x94:  // MEMOIZE
        memo_put(memo_.size());
        break;
      case 'h':  // BINGET
        push(memo_get(read_le(1)));
        break;
      case 'j':  // LONG_BINGET
        push(memo_get(read_le(4)));
        break;
      default: {
        char buf[64];
        if (op >= 0x20 && op < 0x7f) {
          std::snprintf(buf, sizeof buf, "unsupported pickle opcode 0x%02x ('%c')", op, op);
        } else {
          std::snprintf(buf, sizeof buf, "unsupported pickle opcode 0x%02x", op);
        }
        fail(buf);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Archive access and tensor materialisation

std::tuple<at::DataPtr, size_t> get_record(caffe2::serialize::PyTorchStreamReader& reader,
                                           const std::string& path, const std::string& name) {
  try {
    return reader.getRecord(name);
  } catch (const c10::Error& e) {
    bad(path, "cannot read record " + in_quotes(name) + ": " + e.what_without_backtrace());
  }
}

// Reads record data/<key> as an untyped CPU storage of exactly numel elements of dtype.
c10::Storage load_storage(caffe2::serialize::PyTorchStreamReader& reader, const std::string& path,
                          const TensorSpec& t) {
  const std::string name = "data/" + t.key;
  auto [data, nbytes] = get_record(reader, path, name);
  // Cannot overflow: persistent_load bounded numel by INT64_MAX / itemsize.
  const uint64_t expected = static_cast<uint64_t>(t.storage_numel) * c10::elementSize(t.dtype);
  if (nbytes != expected) {
    bad(path, "record " + in_quotes(name) + " holds " + std::to_string(nbytes) +
                  " bytes, but its " + c10::toString(t.dtype) + " storage of " +
                  std::to_string(t.storage_numel) + " elements needs " + std::to_string(expected));
  }
  if (t.dtype == at::kBool) {
    // Anything but 0/1 in a bool tensor is undefined behaviour in kernels.
    const auto* p = static_cast<const uint8_t*>(data.get());
    for (size_t i = 0; i < nbytes; ++i) {
      if (p[i] > 1) {
        bad(path, "record " + in_quotes(name) + " holds a bool that is neither 0 nor 1");
      }
    }
  }
  // The record buffer comes from the CPU allocator; passing it makes the storage resizable like any
  // other CPU tensor's.
  return c10::Storage(c10::Storage::use_byte_size_t(), nbytes, std::move(data),
                      c10::GetCPUAllocator(), /*resizable=*/true);
}

// Checks that the view stays inside its storage; returns its element count.
int64_t check_view(const std::string& path, const std::string& name, const TensorSpec& t) {
  auto describe = [&] {
    return "tensor " + in_quotes(name) + " (offset " + std::to_string(t.offset) + ", size " +
           shape_str(t.sizes) + ", stride " + shape_str(t.strides) + ", storage " +
           in_quotes("data/" + t.key) + " of " + std::to_string(t.storage_numel) + " elements)";
  };
  if (t.offset < 0) bad(path, describe() + ": negative storage offset");
  int64_t numel = 1;
  for (size_t d = 0; d < t.sizes.size(); ++d) {
    if (t.sizes[d] < 0) bad(path, describe() + ": negative size");
    if (t.strides[d] < 0) bad(path, describe() + ": negative stride");
    if (__builtin_mul_overflow(numel, t.sizes[d], &numel)) bad(path, describe() + ": too large");
  }
  if (numel == 0) return 0;
  // Largest element index the view touches.
  int64_t last = t.offset;
  for (size_t d = 0; d < t.sizes.size(); ++d) {
    int64_t span = 0;
    if (__builtin_mul_overflow(t.sizes[d] - 1, t.strides[d], &span) ||
        __builtin_add_overflow(last, span, &last)) {
      bad(path, describe() + ": extent overflows");
    }
  }
  if (last >= t.storage_numel) {
    bad(path, describe() + ": reads element " + std::to_string(last) + ", beyond the storage");
  }
  int64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<int64_t>(c10::elementSize(t.dtype)), &nbytes)) {
    bad(path, describe() + ": too large");
  }
  if (numel > t.storage_numel && nbytes > kMaxExpandedBytes) {
    bad(path, describe() + ": expanded view would need " + std::to_string(nbytes) + " bytes");
  }
  return numel;
}

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& sizes) {
  std::vector<int64_t> strides(sizes.size());
  int64_t s = 1;
  for (size_t d = sizes.size(); d-- > 0;) {
    strides[d] = s;
    s *= std::max<int64_t>(sizes[d], 1);
  }
  return strides;
}

// True when the view is the whole storage in row-major order (strides of size-1 dims don't matter).
bool covers_storage(const TensorSpec& t, int64_t numel) {
  if (t.offset != 0 || numel != t.storage_numel) return false;
  const std::vector<int64_t> want = contiguous_strides(t.sizes);
  for (size_t d = 0; d < t.sizes.size(); ++d) {
    if (t.sizes[d] != 1 && t.strides[d] != want[d]) return false;
  }
  return true;
}

// Fails unless the file exists, is readable and starts like a zip archive.
void check_file(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) {
    throw Error("E_FILE_NOT_FOUND", "checkpoint file not found: " + path);
  }
  if (std::filesystem::is_directory(status)) {
    throw Error("E_FILE_NOT_FOUND", "checkpoint path is a directory, not a file: " + path);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error("E_FILE_NOT_FOUND",
                "cannot open checkpoint " + path + ": " + std::strerror(errno));
  }
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  if (in.gcount() == 2 && magic[0] == 'P' && magic[1] == 'K') return;
  if (in.gcount() == 2 && magic[0] == 0x80 && magic[1] <= 5) {
    // Pre-1.6 torch.save wrote a bare sequence of pickles, which would need a general unpickler.
    bad(path, "legacy torch.save format (pre-1.6, not a zip archive) is not supported; re-save it "
              "with torch>=1.6 (torch.save(torch.load(f), f)) or convert it to safetensors");
  }
  bad(path, "not a torch.save zip checkpoint (no zip signature); if it is a legacy torch.save "
            "file, re-save it with torch>=1.6 or convert it to safetensors");
}

std::vector<std::pair<std::string, at::Tensor>> read_archive(const std::string& path) {
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error& e) {
    bad(path, std::string("not a readable torch.save zip archive: ") + e.what_without_backtrace());
  }

  if (reader->hasRecord("byteorder")) {
    auto [data, n] = get_record(*reader, path, "byteorder");
    const std::string order(static_cast<const char*>(data.get()), n);
    if (order != "little") bad(path, "unsupported byte order " + in_quotes(order));
  }
  if (!reader->hasRecord("data.pkl")) {
    bad(path, "archive has no data.pkl record (not a torch.save checkpoint)");
  }
  auto [pkl, pkl_size] = get_record(*reader, path, "data.pkl");
  Unpickler unpickler(path, static_cast<const uint8_t*>(pkl.get()), pkl_size);
  const Value* root = unpickler.run();
  if (root->kind != Kind::Dict) {
    bad(path, std::string("data.pkl does not hold a state dict (top-level object: ") +
                  kind_name(root->kind) + ")");
  }

  // Validate every entry first, and count how many non-empty tensors use each storage.
  struct Entry {
    const std::string* name;
    const TensorSpec* spec;
    int64_t numel;
  };
  std::vector<Entry> entries;
  std::unordered_map<std::string, int64_t> uses;
  for (const auto& [key, value] : root->dict->entries) {
    if (key->kind != Kind::String) {
      bad(path, std::string("state dict key of type ") + kind_name(key->kind) + " (must be str)");
    }
    if (value->kind != Kind::Tensor) {
      bad(path, "state dict entry " + in_quotes(key->str) + " is not a tensor (" +
                    kind_name(value->kind) + ")");
    }
    const TensorSpec& spec = unpickler.spec(value);
    const int64_t numel = check_view(path, key->str, spec);
    if (numel > 0) ++uses[spec.key];
    entries.push_back({&key->str, &spec, numel});
  }

  std::vector<std::pair<std::string, at::Tensor>> out;
  out.reserve(entries.size());
  std::unordered_map<std::string, c10::Storage> loaded;
  for (const Entry& e : entries) {
    const TensorSpec& t = *e.spec;
    const auto options = at::TensorOptions().dtype(t.dtype);
    if (e.numel == 0) {
      out.emplace_back(*e.name, at::empty(t.sizes, options));
      continue;
    }
    auto it = loaded.find(t.key);
    if (it == loaded.end()) it = loaded.emplace(t.key, load_storage(*reader, path, t)).first;
    const bool last_use = --uses[t.key] == 0;
    at::Tensor tensor;
    if (last_use && covers_storage(t, e.numel)) {
      // Sole remaining user of the whole storage: take it over instead of copying.
      tensor = at::empty({0}, options).set_(it->second, 0, t.sizes, contiguous_strides(t.sizes));
    } else {
      // A view (or a storage shared with other entries, e.g. tied weights): copy it out.
      tensor = at::empty({0}, options)
                   .set_(it->second, t.offset, t.sizes, t.strides)
                   .clone(at::MemoryFormat::Contiguous);
    }
    if (last_use) loaded.erase(it);
    out.emplace_back(*e.name, std::move(tensor));
  }
  return out;
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> read_torch_zip(const std::string& path) {
  check_file(path);
  try {
    return read_archive(path);
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    // E.g. an allocation failure for an absurd record size; specific sites add more context.
    bad(path, e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    bad(path, "out of memory while reading the checkpoint (corrupt sizes?)");
  }
}

}  // namespace bp
