#include "seq2seq_handle.h"

#include <c10/core/GradMode.h>

#include <atomic>
#include <cmath>

#include "checkpoint.h"
#include "errors.h"
#include "generate.h"
#include "loss_args.h"
#include "patch.h"
#include "worker.h"

namespace bpn {

namespace {
Napi::FunctionReference* constructor = nullptr;

// inputs.inputIds / attentionMask ([batchSize, seqLen]), copied out of V8 now: the worker never reads JS memory.
bp::Seq2SeqBatch read_source(Napi::Env env, const Napi::Object& in) {
  const int64_t B = get_int(in, "batchSize", -1, 1, 1 << 20);
  const int64_t S = get_int(in, "seqLen", -1, 1, 1 << 20);
  if (B < 0 || S < 0) throw_type_error(env, "Expected integers for inputs.batchSize and inputs.seqLen");
  bp::Seq2SeqBatch b;
  b.input_ids = int_tensor(in.Get("inputIds"), "inputs.inputIds", {B, S});
  Napi::Value am = in.Get("attentionMask");
  if (!am.IsUndefined() && !am.IsNull()) b.attention_mask = int_tensor(am, "inputs.attentionMask", {B, S});
  return b;
}
}  // namespace

Napi::Function Seq2SeqHandle::Define(Napi::Env env) {
  Napi::Function f = DefineClass(env, "NativeSeq2Seq",
                                 {InstanceMethod<&Seq2SeqHandle::Forward>("forward"), InstanceMethod<&Seq2SeqHandle::Generate>("generate"),
                                  InstanceMethod<&Seq2SeqHandle::DecodeSteps>("decodeSteps"),
                                  InstanceMethod<&Seq2SeqHandle::Info>("info"), InstanceMethod<&Seq2SeqHandle::Patch>("patch"),
                                  InstanceMethod<&Seq2SeqHandle::SetThreshold>("setThreshold"), InstanceMethod<&Seq2SeqHandle::Masks>("masks"),
                                  InstanceMethod<&Seq2SeqHandle::LoadState>("loadState"), InstanceMethod<&Seq2SeqHandle::Compact>("compact"),
                                  InstanceMethod<&Seq2SeqHandle::TrainStep>("trainStep"), InstanceMethod<&Seq2SeqHandle::Gradients>("gradients"),
                                  InstanceMethod<&Seq2SeqHandle::Save>("save"),
                                  InstanceMethod<&Seq2SeqHandle::Regularization>("regularization"),
                                  InstanceMethod<&Seq2SeqHandle::SaveTrainingState>("saveTrainingState"),
                                  InstanceMethod<&Seq2SeqHandle::LoadTrainingState>("loadTrainingState"),
                                  InstanceMethod<&Seq2SeqHandle::Dispose>("dispose"), InstanceMethod<&Seq2SeqHandle::IsDisposed>("isDisposed")});
  constructor = new Napi::FunctionReference(Napi::Persistent(f));
  return f;
}

Seq2SeqHandle::Seq2SeqHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Seq2SeqHandle>(info) {}

std::shared_ptr<Seq2SeqHandle::Cell> Seq2SeqHandle::CellOf(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(constructor->Value()))
    throw_type_error(env, "Expected a NativeSeq2Seq for " + name + " but received " + describe(v));
  return Napi::ObjectWrap<Seq2SeqHandle>::Unwrap(v.As<Napi::Object>())->cell(env);
}

Napi::Object Seq2SeqHandle::Wrap(Napi::Env env, std::shared_ptr<bp::Seq2SeqImpl> model) {
  Napi::Object o = constructor->New({});
  auto* h = Napi::ObjectWrap<Seq2SeqHandle>::Unwrap(o);
  h->cell_ = std::make_shared<Cell>();
  h->cell_->info = guarded(env, [&] { return model->info(); });
  h->cell_->blocks = model->prunable_blocks();
  h->cell_->model = std::move(model);
  return o;
}

const std::shared_ptr<Seq2SeqHandle::Cell>& Seq2SeqHandle::cell(Napi::Env env) const {
  if (!cell_) throw make_error(env, "E_DISPOSED", "this model was disposed");
  return cell_;
}

bp::Seq2SeqBatch Seq2SeqHandle::ReadBatch(Napi::Env env, const Napi::Value& inputs) {
  Napi::Object in = get_object(inputs, "inputs");
  bp::Seq2SeqBatch b = read_source(env, in);
  const int64_t B = b.input_ids.size(0);
  const int64_t T = get_int(in, "targetLen", 0, 0, 1 << 20);
  for (const auto& [key, dst] : std::vector<std::pair<const char*, at::Tensor*>>{
           {"decoderInputIds", &b.decoder_input_ids}, {"decoderAttentionMask", &b.decoder_attention_mask}}) {
    Napi::Value v = in.Get(key);
    if (v.IsUndefined() || v.IsNull()) continue;
    if (T < 1) throw_type_error(env, std::string("inputs.") + key + " needs inputs.targetLen");
    *dst = int_tensor(v, std::string("inputs.") + key, {B, T});
  }
  Napi::Value labels = in.Get("labels");
  if (!labels.IsUndefined() && !labels.IsNull()) b.labels = int_tensor(labels, "inputs.labels", T > 0 ? std::vector<int64_t>{B, T} : std::vector<int64_t>{B});
  return b;
}

Napi::Value Seq2SeqHandle::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto c = cell(env);
  const bp::Seq2SeqBatch b = ReadBatch(env, info[0]);
  Napi::Object o = info.Length() > 1 && !info[1].IsUndefined() ? get_object(info[1], "options") : Napi::Object::New(env);
  bp::Seq2SeqFlags flags;
  flags.hidden_states = get_bool(o, "hiddenStates", false);
  flags.attentions = get_bool(o, "attentions", false);
  auto out = std::make_shared<bp::NamedTensors>();
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.seq2seqForward",
      [c, b, flags, out]() {
        std::lock_guard<std::mutex> lock(c->mutex);
        at::NoGradGuard no_grad;
        c->model->eval();
        *out = c->model->forward(b, flags);
        for (auto& [name, t] : *out) t = t.detach().to(at::kCPU).contiguous();
      },
      [out](Napi::Env e) -> Napi::Value { return tensors_to_js(e, *out); });
}

Napi::Value Seq2SeqHandle::Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto c = cell(env);
  const bp::Seq2SeqBatch src = read_source(env, get_object(info[0], "inputs"));
  const at::Tensor ids = src.input_ids, mask = src.attention_mask;
  Napi::Object o = info.Length() > 1 && !info[1].IsUndefined() ? get_object(info[1], "options") : Napi::Object::New(env);
  // Unset: -1, resolved from config.json by bp::generate (the TypeScript layer has checked types and ranges).
  bp::GenerateOptions g;
  constexpr int64_t kMax = 1 << 20;
  g.max_length = get_int(o, "maxLength", -1, 0, kMax);
  g.min_length = get_int(o, "minLength", -1, 0, kMax);
  g.num_beams = get_int(o, "numBeams", -1, 0, kMax);
  g.no_repeat_ngram_size = get_int(o, "noRepeatNgramSize", -1, 0, kMax);
  g.num_return_sequences = get_int(o, "numReturnSequences", 1, 0, kMax);
  Napi::Value lp = o.Get("lengthPenalty");
  if (!lp.IsUndefined() && !lp.IsNull()) {
    if (!lp.IsNumber()) throw_type_error(env, "Expected a number for lengthPenalty but received " + describe(lp));
    g.length_penalty = lp.As<Napi::Number>().DoubleValue();
  }
  Napi::Value es = o.Get("earlyStopping");
  if (!es.IsUndefined() && !es.IsNull()) g.early_stopping = get_bool(o, "earlyStopping", false) ? 1 : 0;
  // Forced tokens: undefined = config.json's, null = none.
  for (const auto& [key, dst] : std::vector<std::pair<const char*, int64_t*>>{{"forcedBosTokenId", &g.forced_bos_token_id}, {"forcedEosTokenId", &g.forced_eos_token_id}}) {
    Napi::Value v = o.Get(key);
    if (v.IsNull()) *dst = -1;
    else if (!v.IsUndefined()) *dst = get_int(o, key, -2, 0, kMax);
  }
  std::shared_ptr<Napi::ThreadSafeFunction> tsfn;
  Napi::Value cb = o.Get("onStep");
  if (!cb.IsUndefined() && !cb.IsNull()) {
    if (!cb.IsFunction()) throw_type_error(env, "Expected a function for onStep but received " + describe(cb));
    tsfn = std::make_shared<Napi::ThreadSafeFunction>(Napi::ThreadSafeFunction::New(env, cb.As<Napi::Function>(), "blockprune.generateStep", 0, 1));
  }
  auto out = std::make_shared<bp::GenerateResult>();
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.seq2seqGenerate",
      [c, ids, mask, g, tsfn, out, stop = std::make_shared<std::atomic<bool>>(false)]() {
        // Released however the job ends, so the thread-safe function never keeps the event loop alive.
        struct Release {
          std::shared_ptr<Napi::ThreadSafeFunction> f;
          ~Release() {
            if (f) f->Release();
          }
        } release{tsfn};
        std::function<void(const at::Tensor&)> on_step;
        if (tsfn)
          on_step = [tsfn, stop](const at::Tensor& tokens) {
            // The listener answered `false` to an earlier step (its reader went away: a closed stream, a client
            // that disconnected): stop here rather than decode to max_length for no one. The flag is set on the
            // main thread as it runs the listener, so generation ends within a step or two of the answer.
            if (stop->load()) throw bp::Error("E_ABORTED", "generation stopped: its onStep listener returned false");
            auto* copy = new std::vector<int64_t>(tokens.data_ptr<int64_t>(), tokens.data_ptr<int64_t>() + tokens.numel());
            const auto status = tsfn->BlockingCall(copy, [stop](Napi::Env e, Napi::Function fn, std::vector<int64_t>* data) {
              auto arr = Napi::BigInt64Array::New(e, data->size());
              std::copy(data->begin(), data->end(), arr.Data());
              delete data;
              try {
                Napi::Value r = fn.Call({arr});
                if (r.IsBoolean() && !r.As<Napi::Boolean>().Value()) stop->store(true);
              } catch (const Napi::Error&) {
                // A listener's exception is the listener's: generation goes on.
              }
            });
            if (status != napi_ok) delete copy;
          };
        std::lock_guard<std::mutex> lock(c->mutex);
        *out = bp::generate(*c->model, ids, mask, g, on_step);
      },
      [out](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("sequences", tensor_to_js(e, out->sequences));
        if (out->scores.defined()) r.Set("scores", tensor_to_js(e, out->scores));
        return r;
      });
}

Napi::Value Seq2SeqHandle::DecodeSteps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto c = cell(env);
  Napi::Object in = get_object(info[0], "inputs");
  const bp::Seq2SeqBatch src = read_source(env, in);
  const auto ids = src.input_ids;
  const auto mask = src.attention_mask;
  const int64_t T = get_int(in, "targetLen", -1, 1, 1 << 20);
  if (T < 0) throw_type_error(env, "Expected an integer for inputs.targetLen");
  const auto dec = int_tensor(in.Get("decoderInputIds"), "inputs.decoderInputIds", {ids.size(0), T});
  // selects: [{at, index}] applied (in the order given) before the step at position `at`, as beam search
  // reorders its rows; the logits of earlier steps are reordered with them, as beam search's sequences are.
  std::vector<std::pair<int64_t, at::Tensor>> selects;
  Napi::Object o = info.Length() > 1 && !info[1].IsUndefined() ? get_object(info[1], "options") : Napi::Object::New(env);
  Napi::Value sv = o.Get("selects");
  if (!sv.IsUndefined()) {
    if (!sv.IsArray()) throw_type_error(env, "Expected an array for options.selects but received " + describe(sv));
    auto arr = sv.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      const auto name = "options.selects[" + std::to_string(i) + "]";
      Napi::Object s = get_object(arr.Get(i), name);
      const int64_t pos = get_int(s, "at", -1, 0, T - 1);
      if (pos < 0) throw_type_error(env, "Expected an integer in [0, " + std::to_string(T - 1) + "] for " + name + ".at");
      Napi::Value index = s.Get("index");
      const uint32_t n = index.IsTypedArray() ? static_cast<uint32_t>(index.As<Napi::TypedArray>().ElementLength()) : 0;
      selects.emplace_back(pos, int_tensor(index, name + ".index", {static_cast<int64_t>(n)}));
    }
  }
  auto out = std::make_shared<bp::NamedTensors>();
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.seq2seqDecodeSteps",
      [c, ids, mask, dec, selects, T, out]() {
        std::lock_guard<std::mutex> lock(c->mutex);
        at::NoGradGuard no_grad;
        c->model->eval();
        auto cache = c->model->start(ids, mask);
        auto rows = at::arange(ids.size(0), at::kLong);  // the input row each cache row decodes
        std::vector<at::Tensor> logits;
        for (int64_t pos = 0; pos < T; ++pos) {
          for (const auto& [at_pos, index] : selects) {
            if (at_pos != pos) continue;
            c->model->select(*cache, index);
            rows = rows.index_select(0, index);
            for (auto& l : logits) l = l.index_select(0, index.to(l.device()));
          }
          logits.push_back(c->model->step(*cache, dec.index_select(0, rows).select(1, pos), pos));
        }
        out->emplace_back("logits", at::stack(logits, 1).to(at::kCPU).contiguous());
        out->emplace_back("rows", rows);
      },
      [out](Napi::Env e) -> Napi::Value { return tensors_to_js(e, *out); });
}

Napi::Value Seq2SeqHandle::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto c = cell(env);
  const bp::Seq2SeqInfo& i = c->info;
  const std::vector<bp::PrunableBlock>& blocks = c->blocks;
  Napi::Object o = Napi::Object::New(env);
  o.Set("modelType", i.model_type);
  o.Set("architecture", i.architecture);
  o.Set("config", i.config_json);
  for (const auto& [k, v] : std::vector<std::pair<const char*, int64_t>>{{"vocabSize", i.vocab_size}, {"dModel", i.d_model}, {"encoderLayers", i.encoder_layers},
                                                                          {"decoderLayers", i.decoder_layers}, {"heads", i.heads}, {"numLabels", i.num_labels},
                                                                          {"padTokenId", i.pad_token_id}, {"eosTokenId", i.eos_token_id},
                                                                          {"decoderStartTokenId", i.decoder_start_token_id}, {"numParameters", i.num_parameters}})
    o.Set(k, Napi::Number::New(env, static_cast<double>(v)));
  Napi::Array bs = Napi::Array::New(env, blocks.size());
  for (size_t n = 0; n < blocks.size(); ++n) {
    const auto& b = blocks[n];
    Napi::Object x = Napi::Object::New(env);
    x.Set("kind", b.kind);
    x.Set("stack", b.stack);
    x.Set("layer", Napi::Number::New(env, static_cast<double>(b.layer)));
    if (!b.role.empty()) x.Set("role", b.role);
    Napi::Array lin = Napi::Array::New(env, b.linears.size());
    for (size_t k = 0; k < b.linears.size(); ++k) lin.Set(static_cast<uint32_t>(k), b.linears[k]);
    x.Set("linears", lin);
    for (const auto& [k, v] : std::vector<std::pair<const char*, int64_t>>{{"heads", b.heads}, {"headDim", b.head_dim}, {"width", b.width}})
      if (v > 0) x.Set(k, Napi::Number::New(env, static_cast<double>(v)));
    bs.Set(static_cast<uint32_t>(n), x);
  }
  o.Set("prunableBlocks", bs);
  return o;
}

Napi::Value Seq2SeqHandle::Patch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto c = cell(env);
  const nlohmann::json plan = read_plan(env, info[0]);
  auto report = std::make_shared<bp::PatchReport>();
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.seq2seqPatch",
      [c, plan, report]() {
        std::lock_guard<std::mutex> lock(c->mutex);
        *report = bp::patch_seq2seq(*c->model, plan);
      },
      [report](Napi::Env e) -> Napi::Value { return patch_report_to_js(e, *report); });
}

Napi::Value Seq2SeqHandle::SetThreshold(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto c = cell(env);
  if (!info[0].IsNumber() || !std::isfinite(info[0].As<Napi::Number>().DoubleValue()))
    throw_type_error(env, "Expected a finite number for threshold but received " + describe(info[0]));
  const double t = info[0].As<Napi::Number>().DoubleValue();
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.seq2seqSetThreshold",
      [c, t]() {
        std::lock_guard<std::mutex> lock(c->mutex);
        bp::set_threshold(*c->model, t);
      },
      [](Napi::Env e) -> Napi::Value { return e.Undefined(); });
}

Napi::Value Seq2SeqHandle::Masks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto c = cell(env);
  auto out = std::make_shared<bp::NamedTensors>();
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.seq2seqMasks",
      [c, out]() {
        std::lock_guard<std::mutex> lock(c->mutex);
        *out = bp::current_masks(*c->model);
        for (auto& [name, t] : *out) t = t.ne(0).to(at::kCPU);  // 0/1 as bytes, as BertModel.masks()
      },
      [out](Napi::Env e) -> Napi::Value { return tensors_to_js(e, *out); });
}

Napi::Value Seq2SeqHandle::LoadState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto c = cell(env);
  const std::string path = get_string(info[0], "path");
  Napi::Object o = info.Length() > 1 && !info[1].IsUndefined() ? get_object(info[1], "options") : Napi::Object::New(env);
  const bool strict = get_bool(o, "strict", true);
  auto loaded = std::make_shared<std::vector<std::string>>();
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.seq2seqLoadState",
      [c, path, strict, loaded]() {
        std::lock_guard<std::mutex> lock(c->mutex);
        *loaded = bp::load_state(*c->model, path, strict);
      },
      [loaded](Napi::Env e) -> Napi::Value { return strings_to_js(e, *loaded); });
}

Napi::Value Seq2SeqHandle::Compact(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto c = cell(env);
  const std::string mode = info[0].IsUndefined() ? "dense" : get_string(info[0], "mode");
  if (mode != "dense" && mode != "heads") throw_range_error(env, "Expected 'dense' or 'heads' for mode but received '" + mode + "'");
  const std::string rule = info.Length() < 2 || info[1].IsUndefined() ? "exact" : get_string(info[1], "deadHeads");
  if (rule != "exact" && rule != "reference") throw_range_error(env, "Expected 'exact' or 'reference' for deadHeads but received '" + rule + "'");
  auto result = std::make_shared<std::pair<std::shared_ptr<bp::Seq2SeqImpl>, bp::Seq2SeqCompactReport>>();
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.seq2seqCompact",
      [c, mode, rule, result]() {
        std::lock_guard<std::mutex> lock(c->mutex);  // the weights and masks are read while nothing changes them
        result->first = bp::compact_seq2seq(*c->model, mode, &result->second, rule);
      },
      [result](Napi::Env e) -> Napi::Value {
        const auto& r = result->second;
        const auto number = [&](int64_t v) { return Napi::Number::New(e, static_cast<double>(v)); };
        const auto list = [&](const std::vector<int64_t>& v) {
          Napi::Array a = Napi::Array::New(e, v.size());
          for (size_t k = 0; k < v.size(); ++k) a.Set(static_cast<uint32_t>(k), number(v[k]));
          return a;
        };
        Napi::Object rep = Napi::Object::New(e);
        rep.Set("parametersBefore", number(r.parameters_before));
        rep.Set("parametersAfter", number(r.parameters_after));
        Napi::Array blocks = Napi::Array::New(e, r.blocks.size());
        for (size_t n = 0; n < r.blocks.size(); ++n) {
          const auto& b = r.blocks[n];
          Napi::Object x = Napi::Object::New(e);
          x.Set("kind", b.kind);
          x.Set("stack", b.stack);
          x.Set("layer", number(b.layer));
          if (!b.role.empty()) x.Set("role", b.role);
          if (b.kind == "attention") {
            x.Set("keptHeads", list(b.kept));
            x.Set("removedHeads", list(b.removed));
          } else {
            x.Set("widthBefore", number(b.width_before));
            x.Set("widthAfter", number(b.width_after));
          }
          blocks.Set(static_cast<uint32_t>(n), x);
        }
        rep.Set("blocks", blocks);
        Napi::Object o = Napi::Object::New(e);
        o.Set("model", Seq2SeqHandle::Wrap(e, result->first));
        o.Set("report", rep);
        return o;
      });
}

Napi::Value Seq2SeqHandle::Dispose(const Napi::CallbackInfo& info) {
  cell_.reset();  // a running job holds its own reference
  return info.Env().Undefined();
}

Napi::Value Seq2SeqHandle::IsDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !cell_); }

Napi::Value LoadSeq2Seq(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = get_string(info[0], "dir");
  Napi::Object o = info.Length() > 1 && !info[1].IsUndefined() ? get_object(info[1], "options") : Napi::Object::New(env);
  std::string device = get_string_opt(o, "device", "cpu");
  auto out = std::make_shared<std::shared_ptr<bp::Seq2SeqImpl>>();
  return queue_lambda(
      env, Napi::Object(), "blockprune.loadSeq2Seq", [dir, device, out]() { *out = bp::load_seq2seq(dir, device); },
      [out](Napi::Env e) -> Napi::Value { return Seq2SeqHandle::Wrap(e, *out); });
}

}  // namespace bpn
