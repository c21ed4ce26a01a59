// bench_forward: the forward pass of the same BERT as the addon, timed from plain C++ (no Node), so the
// bench script can show what the binding costs. Also measures this machine's GEMM throughput (fp32, and int8 /
// bf16 on the quantized kernels), so latencies can be read as multiples of the roofline (model FLOPs / GEMM rate).
//
//   bench_forward [--batch 1,8] [--seq 128] [--runs 100] [--warmup 10] [--threads N] [--gemm]
//                 [--hidden 768 --layers 12 --heads 12 --ffn 3072 --vocab 30522]
//                 [--kept-heads 4 --kept-ffn 552]   (a compact model: heads and FFN width kept per layer)
//                 [--dtype fp32|int8|bf16]           (the encoder linears quantized as model.quantize does)
// Prints one JSON object per line.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "args.h"
#include "checkpoint.h"
#include "quantize.h"
#include "fast/fast_cpu.h"
#include "fast/quant.h"
#include "runtime.h"
#include "tool_common.h"

namespace {

void stats(const std::vector<double>& v, double* mean, double* sd) {
  double s = 0, s2 = 0;
  for (double x : v) s += x;
  *mean = s / v.size();
  for (double x : v) s2 += (x - *mean) * (x - *mean);
  *sd = std::sqrt(s2 / std::max<size_t>(1, v.size() - 1));
}

}  // namespace

int main(int argc, char** argv) {
  tools::run_as_the_addon(argv);
  std::vector<int64_t> batches = {1, 8};
  int64_t seq = 128, runs = 100, warmup = 10, threads = 0;
  int64_t hidden = 768, layers = 12, heads = 12, ffn = 3072, vocab = 30522;
  int64_t kept_heads = -1, kept_ffn = -1;  // a compact geometry: heads and FFN width kept in every layer
  bool gemm = false;
  // --ab-fused-qkv / --ab-fast: alternate rounds of 5 with and without the fused q/k/v product (libtorch path)
  // or the fast CPU kernels (fast_cpu.h), and print both means: an A/B in one run, immune to the VM's drift.
  std::string ab;
  std::string dtype = "fp32";  // the encoder linears' number format (model.quantize's)
  bool profile = false;  // then: per-stage times of the fast path over 20 more forwards
  for (int i = 1; i < argc; ++i) {
    auto next = [&] { return tools::next_value(argc, argv, &i); };
    // Ranges: seq within the position table (512), sizes that a forward can hold in memory.
    const char* a = argv[i];
    if (!std::strcmp(a, "--batch")) batches = tools::int_list_arg(a, next(), 1, 4096);
    else if (!std::strcmp(a, "--seq")) seq = tools::int_arg(a, next(), 1, bp::BertConfig{}.max_position_embeddings);
    else if (!std::strcmp(a, "--runs")) runs = tools::int_arg(a, next(), 1, 1000000);
    else if (!std::strcmp(a, "--warmup")) warmup = tools::int_arg(a, next(), 0, 1000000);
    else if (!std::strcmp(a, "--threads")) threads = tools::int_arg(a, next(), 0, 1024);
    else if (!std::strcmp(a, "--hidden")) hidden = tools::int_arg(a, next(), 1, 65536);
    else if (!std::strcmp(a, "--layers")) layers = tools::int_arg(a, next(), 1, 1024);
    else if (!std::strcmp(a, "--heads")) heads = tools::int_arg(a, next(), 1, 1024);
    else if (!std::strcmp(a, "--ffn")) ffn = tools::int_arg(a, next(), 1, 1 << 20);
    else if (!std::strcmp(a, "--vocab")) vocab = tools::int_arg(a, next(), 2, 1 << 24);
    else if (!std::strcmp(argv[i], "--gemm")) gemm = true;
    else if (!std::strcmp(argv[i], "--ab-fused-qkv")) ab = "fused_qkv";
    else if (!std::strcmp(argv[i], "--ab-fast")) ab = "fast";
    else if (!std::strcmp(argv[i], "--profile")) profile = true;
    else if (!std::strcmp(a, "--dtype")) {
      dtype = next();
      if (dtype != "fp32" && dtype != "int8" && dtype != "bf16") {
        std::fprintf(stderr, "--dtype: expected fp32, int8 or bf16, got \"%s\"\n", dtype.c_str());
        return 2;
      }
    }
    else if (!std::strcmp(a, "--kept-heads")) kept_heads = tools::int_arg(a, next(), 0, 1024);
    else if (!std::strcmp(a, "--kept-ffn")) kept_ffn = tools::int_arg(a, next(), 1, 1 << 20);
    else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (threads > 0)
    at::set_num_threads(static_cast<int>(threads));
  else
    bp::configure_default_threads();  // the addon's default, so both time the same thing
  try {
    if (gemm) {
      // The FFN product of one layer at each batch's row count: [B*S, hidden] x [hidden, ffn], by libtorch
      // (OpenBLAS) and by the CPU kernels on packed weights; the roofline uses the faster of the two.
      for (int64_t b : batches) {
        const int64_t rows = b * seq;
        auto x = at::randn({rows, hidden}), w = at::randn({ffn, hidden}), y = at::empty({rows, ffn});
        auto time = [&](const std::function<void()>& f) {
          for (int i = 0; i < 5; ++i) f();
          std::vector<double> t;
          for (int i = 0; i < 30; ++i) {
            double t0 = tools::now_ms();
            f();
            t.push_back(tools::now_ms() - t0);
          }
          double mean, sd;
          stats(t, &mean, &sd);
          return mean;
        };
        const double ms = time([&] { at::linear(x, w); });
        double kernels_ms = 0;
        if (bp::fast::enabled()) {
          bp::fast::PackedLinear packed(w.data_ptr<float>(), nullptr, ffn, hidden);
          kernels_ms = time([&] { packed.forward(x.data_ptr<float>(), rows, y.data_ptr<float>(), bp::fast::kActNone, nullptr); });
        }
        // The same product on the quantized kernels (quant.h), where this CPU has them: the int8 / bf16 roofline.
        double int8_ms = 0, bf16_ms = 0;
        if (bp::fast::quant_supported(bp::fast::QuantFormat::kInt8)) {
          // Quantized by the model's own rule (LinearImpl::quantize, quant.h).
          bp::Linear lin(hidden, ffn);
          lin->weight.set_data(w);
          lin->quantize(bp::fast::QuantFormat::kInt8, /*per_channel=*/true);
          auto q = lin->weight.contiguous(), scale = lin->weight_scale.contiguous();
          auto layer = bp::fast::QuantLinear::int8(q.data_ptr<int8_t>(), scale.data_ptr<float>(), nullptr, ffn, hidden);
          int8_ms = time([&] { layer.forward(x.data_ptr<float>(), rows, y.data_ptr<float>(), bp::fast::kActNone, nullptr); });
        }
        if (bp::fast::quant_supported(bp::fast::QuantFormat::kBf16)) {
          auto wb = w.to(at::kBFloat16).contiguous();
          auto layer = bp::fast::QuantLinear::bf16(reinterpret_cast<const uint16_t*>(wb.data_ptr()), nullptr, ffn, hidden);
          bf16_ms = time([&] { layer.forward(x.data_ptr<float>(), rows, y.data_ptr<float>(), bp::fast::kActNone, nullptr); });
        }
        const double flop = 2.0 * rows * hidden * ffn;
        auto rate = [&](double t) { return t > 0 ? flop / (t * 1e6) : 0.0; };
        std::printf("{\"kind\":\"gemm\",\"rows\":%lld,\"k\":%lld,\"n\":%lld,\"ms\":%.4f,\"gflops\":%.2f,"
                    "\"kernels_gflops\":%.2f,\"int8_gops\":%.2f,\"bf16_gflops\":%.2f}\n",
                    (long long)rows, (long long)hidden, (long long)ffn, ms, rate(ms), rate(kernels_ms), rate(int8_ms), rate(bf16_ms));
      }
    }
    bp::BertConfig c;
    c.hidden_size = hidden;
    c.num_hidden_layers = layers;
    c.num_attention_heads = heads;
    c.intermediate_size = ffn;
    c.vocab_size = vocab;
    for (int64_t l = 0; l < layers && kept_heads >= 0; ++l)
      for (int64_t h = kept_heads; h < heads; ++h) c.pruned_heads[l].insert(h);
    if (kept_ffn > 0) c.intermediate_sizes.assign(static_cast<size_t>(layers), kept_ffn);
    auto model = bp::create_random(c, bp::TaskKind::SequenceClassification, 0, "cpu");
    if (dtype != "fp32") model = bp::quantize_model(model, dtype, true);  // per-channel int8, or bf16
    for (int64_t b : batches) {
      bp::Batch batch;
      batch.input_ids = at::randint(1, vocab, {b, seq}, at::kLong);
      batch.attention_mask = at::ones({b, seq}, at::kLong);
      batch.token_type_ids = at::zeros({b, seq}, at::kLong);
      std::vector<double> t, t_off;
      const bool ab_on = !ab.empty();
      auto toggle = [&](bool on) {
        if (ab == "fused_qkv") bp::set_fused_qkv(on);
        if (ab == "fast") bp::fast::set_enabled(on);
      };
      if (ab == "fused_qkv") bp::fast::set_enabled(false);  // the fused product only matters on the libtorch path
      for (int64_t i = 0; i < warmup + runs * (ab_on ? 2 : 1); ++i) {
        const bool off = ab_on && i >= warmup && ((i - warmup) / 5) % 2 == 1;  // rounds of 5
        toggle(!off);
        double t0 = tools::now_ms();
        {
          c10::InferenceMode guard;
          auto out = model->forward(batch);
          // The addon copies outputs to CPU/contiguous; do the same so both time the same work.
          for (auto& [name, v] : out) v = v.contiguous();
        }
        if (i >= warmup) (off ? t_off : t).push_back(tools::now_ms() - t0);
      }
      bp::set_fused_qkv(true);
      bp::fast::set_enabled(true);
      double mean, sd;
      stats(t, &mean, &sd);
      if (ab_on) {
        double m2, s2;
        stats(t_off, &m2, &s2);
        std::printf("{\"kind\":\"ab_%s\",\"batch\":%lld,\"on_ms\":%.3f,\"off_ms\":%.3f,\"ratio\":%.3f}\n",
                    ab.c_str(), (long long)b, mean, m2, m2 / mean);
      }
      if (profile && bp::fast::enabled()) {
        const int n = 20;
        bp::fast::profile_take();
        bp::fast::set_profiling(true);
        double total = 0;
        for (int i = 0; i < n; ++i) {
          double t0 = tools::now_ms();
          c10::InferenceMode guard;
          auto out = model->forward(batch);
          for (auto& [name, v] : out) v = v.contiguous();
          total += tools::now_ms() - t0;
        }
        bp::fast::set_profiling(false);
        double staged = 0;
        for (const auto& [name, ms] : bp::fast::profile_take()) {
          staged += ms;
          std::printf("{\"kind\":\"profile\",\"batch\":%lld,\"stage\":\"%s\",\"ms\":%.3f,\"share\":%.3f}\n", (long long)b,
                      name.c_str(), ms / n, ms / total);
        }
        std::printf("{\"kind\":\"profile\",\"batch\":%lld,\"stage\":\"rest (embeddings, pooler, head, allocation)\",\"ms\":%.3f,\"share\":%.3f}\n",
                    (long long)b, (total - staged) / n, (total - staged) / total);
      }
      std::printf("{\"kind\":\"forward\",\"batch\":%lld,\"seq\":%lld,\"runs\":%lld,\"mean_ms\":%.3f,\"std_ms\":%.3f,\"threads\":%d,"
                  "\"kernels\":\"%s\"}\n",
                  (long long)b, (long long)seq, (long long)runs, mean, sd, at::get_num_threads(),
                  bp::fast::enabled() ? bp::fast::isa() : "libtorch");
      std::fflush(stdout);
    }
  } catch (const c10::Error& e) {
    // what() would add libtorch's C++ stack trace: the message is what a user can act on.
    std::fprintf(stderr, "bench_forward: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_forward: %s\n", e.what());
    return 1;
  }
  return 0;
}
