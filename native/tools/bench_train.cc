// bench_train: the training step (bp::train_step: forward, backward, clipping, AdamW) of the same BERT as the
// addon, timed from plain C++ at batch B x S, with libtorch's autograd profiler on request: where the time of a
// step goes, by stage (train_step's "bp::*" scopes) and by op (self time, forward and backward alike).
//
//   bench_train [--geometry base|small] [--batch 8] [--seq 128] [--steps 4] [--warmup 1] [--patched]
//               [--profile] [--top 30]
//   bench_train --check   (the fused training loops of train_kernels.h against libtorch; exit 1 on a failure)
// Prints one JSON object per line: each step's ms, then (--profile) the stages and the top ops by self time.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>


#include "args.h"
#include "checkpoint.h"
#include "dropout.h"
#include "fast/fast_cpu.h"
#include "train_kernels.h"
#include "runtime.h"
#include "tool_common.h"
#include "training.h"

namespace {

namespace prof = torch::autograd::profiler;

struct Totals {
  double self_ms = 0, total_ms = 0;
  int64_t calls = 0;
};

// Self and inclusive time per op name, from the profiler's per-thread push/pop events (properly nested); in
// `pairs`, the self time of each op under each caller ("caller > op"), to tell where copies come from.
std::map<std::string, Totals> aggregate(const prof::thread_event_lists& lists, std::map<std::string, Totals>* pairs) {
  std::map<std::string, Totals> out;
  for (const auto& events : lists) {
    struct Open {
      const prof::LegacyEvent* push;
      double child_us;
    };
    std::vector<Open> stack;
    for (const auto& e : events) {
      if (e.kind() == prof::EventKind::PushRange) {
        stack.push_back({&e, 0.0});
      } else if (e.kind() == prof::EventKind::PopRange && !stack.empty()) {
        const Open o = stack.back();
        stack.pop_back();
        const double us = o.push->cpuElapsedUs(e);
        auto& t = out[o.push->name()];
        t.total_ms += us / 1000;
        t.self_ms += (us - o.child_us) / 1000;
        t.calls += 1;
        auto& pt = (*pairs)[std::string(stack.empty() ? "(top)" : stack.back().push->name()) + " > " + o.push->name()];
        pt.self_ms += (us - o.child_us) / 1000;
        pt.calls += 1;
        if (!stack.empty()) stack.back().child_us += us;
      }
    }
  }
  return out;
}

// A checksum of a float tensor's bits: equal checksums across kernel sets (default, BLOCKPRUNE_CPU_KERNELS=none)
// mean the same bits.
uint64_t bits_hash(const at::Tensor& t) {
  auto c = t.contiguous();
  uint64_t h = 1469598103934665603ull;
  const auto* w = reinterpret_cast<const uint32_t*>(c.data_ptr<float>());
  for (int64_t i = 0; i < c.numel(); ++i) h = (h ^ w[i]) * 1099511628211ull;
  return h;
}

// Dropout: rate, scale, the backward's mask equal to the forward's, the same output for the same seed. AdamW:
// the fused update against libtorch's op sequence (its vectorized add_ and addcmul_ may use FMA where the fused
// loop does not: a few ulps of the moments, then of p). Prints one line with the checks and a checksum.
int check() {
  const int64_t n = (int64_t{1} << 20) + 13;  // a tail off every vector width
  const double p = 0.1;
  at::manual_seed(7);
  auto x = at::randn({n}).requires_grad_(true);
  auto y = bp::dropout(x, p, true);
  y.sum().backward();
  at::NoGradGuard no_grad;
  const float scale = 1.0f / static_cast<float>(1.0 - p);
  auto kept = y.ne(0);
  const double frac = kept.to(at::kDouble).mean().item<double>();
  const double sigma = std::sqrt(p * (1 - p) / static_cast<double>(n));
  const bool rate_ok = std::abs(frac - (1 - p)) < 5 * sigma;  // five standard deviations of a binomial
  const bool scale_ok = at::equal(y.masked_select(kept), (x.detach() * scale).masked_select(kept));
  const bool grad_ok = at::equal(x.grad(), kept.to(at::kFloat) * scale);
  at::manual_seed(7);
  auto x2 = at::randn({n});
  const bool repeat_ok = at::equal(bp::dropout(x2, p, true), y);
  // AdamW: 3 steps from zero moments, weight decay on, against the op sequence of AdamW::step.
  auto p1 = at::randn({n}), m1 = at::zeros({n}), v1 = at::zeros({n});
  auto p2 = p1.clone(), m2 = m1.clone(), v2 = v1.clone();
  const double lr = 1e-3, wd = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  for (int step = 1; step <= 3; ++step) {
    auto g = at::randn({n}) * 0.1;
    const double step_size = lr * std::sqrt(1.0 - std::pow(b2, step)) / (1.0 - std::pow(b1, step));
    bp::train_kernels::adamw(p1.data_ptr<float>(), g.data_ptr<float>(), m1.data_ptr<float>(), v1.data_ptr<float>(), n,
                             {static_cast<float>(b1), static_cast<float>(1 - b1), static_cast<float>(b2), static_cast<float>(1 - b2),
                              static_cast<float>(eps), static_cast<float>(-step_size), static_cast<float>(-lr * wd)});
    m2.mul_(b1).add_(g, 1 - b1);
    v2.mul_(b2).addcmul_(g, g, 1 - b2);
    p2.addcdiv_(m2, v2.sqrt().add_(eps), -step_size);
    p2.add_(p2, -lr * wd);
  }
  // In ulps of max(|p|, lr) (the update is ~lr: near p = 0 its own rounding dominates). The two differ only in
  // rounding (libtorch's vectorized add_ and addcmul_ fuse multiply-adds, the fused loop does not), which can
  // move p's rounding by 1 ulp a step: 3 steps, at most 3 ulps; bound 4. A wrong term would be ~8000 ulps.
  const double adam_diff = ((p1 - p2).abs() / p2.abs().clamp_min(lr)).max().item<double>() / std::ldexp(1.0, -23);
  const bool adam_ok = adam_diff <= 4;
  const bool ok = rate_ok && scale_ok && grad_ok && repeat_ok && adam_ok;
  std::printf("{\"kind\":\"check\",\"isa\":\"%s\",\"ok\":%s,\"dropout_kept\":%.6f,\"dropout_rate_ok\":%s,\"dropout_scale_ok\":%s,"
              "\"dropout_grad_ok\":%s,\"dropout_repeat_ok\":%s,\"adamw_max_ulps\":%.2f,\"adamw_ok\":%s,\"checksum\":\"%016llx\"}\n",
              bp::fast::isa(), ok ? "true" : "false", frac, rate_ok ? "true" : "false", scale_ok ? "true" : "false", grad_ok ? "true" : "false",
              repeat_ok ? "true" : "false", adam_diff, adam_ok ? "true" : "false",
              static_cast<unsigned long long>(bits_hash(y) ^ (bits_hash(p1) * 31)));
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  tools::run_as_the_addon(argv);
  std::string geometry = "base";
  int64_t batch_size = 8, seq = 128, steps = 4, warmup = 1, top = 30;
  bool patched = false, profile = false;
  for (int i = 1; i < argc; ++i) {
    auto next = [&] { return tools::next_value(argc, argv, &i); };
    const char* a = argv[i];
    if (!std::strcmp(a, "--geometry")) {
      geometry = next();
      if (geometry != "base" && geometry != "small") {
        std::fprintf(stderr, "--geometry: expected base or small, got \"%s\"\n", geometry.c_str());
        return 2;
      }
    } else if (!std::strcmp(a, "--batch")) batch_size = tools::int_arg(a, next(), 1, 4096);
    else if (!std::strcmp(a, "--seq")) seq = tools::int_arg(a, next(), 1, bp::BertConfig{}.max_position_embeddings);
    else if (!std::strcmp(a, "--steps")) steps = tools::int_arg(a, next(), 1, 1000000);
    else if (!std::strcmp(a, "--warmup")) warmup = tools::int_arg(a, next(), 0, 1000000);
    else if (!std::strcmp(a, "--top")) top = tools::int_arg(a, next(), 1, 100000);
    else if (!std::strcmp(a, "--patched")) patched = true;
    else if (!std::strcmp(a, "--profile")) profile = true;
    else if (!std::strcmp(a, "--check")) return check();
    else {
      std::fprintf(stderr, "unknown argument %s\n", a);
      return 2;
    }
  }
  try {
    bp::configure_default_threads();  // the addon's default, so both time the same thing
    bp::BertConfig c;  // bert-base; "small" is bench-train's hidden 256 / 4 layers
    if (geometry == "small") {
      c.hidden_size = 256;
      c.num_hidden_layers = 4;
      c.num_attention_heads = 4;
      c.intermediate_size = 1024;
    }
    auto model = bp::create_random(c, bp::TaskKind::SequenceClassification, 1, "cpu");
    bp::TrainStepOptions opts;
    opts.adam.lr = 3e-5;
    if (patched) {
      bp::patch_model(model, tools::hybrid_plan(c));
      opts.set_threshold = true;
      opts.threshold = 0.05;
      opts.loss.regularization = "l1";
      opts.loss.lambda = 10;
    }
    bp::Batch batch;
    const int64_t n = batch_size * seq;
    batch.input_ids = (at::arange(n, at::kLong) * 7919).remainder(20000).add(1000).view({batch_size, seq});
    batch.attention_mask = at::ones({batch_size, seq}, at::kLong);
    batch.token_type_ids = at::zeros({batch_size, seq}, at::kLong);
    batch.labels = at::arange(batch_size, at::kLong).remainder(2);
    bp::AdamW adam;
    for (int64_t i = 0; i < warmup; ++i) bp::train_step(model, adam, &batch, opts, nullptr);
    if (profile) prof::enableProfilerLegacy(torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU));
    std::vector<double> ms;
    for (int64_t i = 0; i < steps; ++i) {
      const double t0 = tools::now_ms();
      bp::train_step(model, adam, &batch, opts, nullptr);
      ms.push_back(tools::now_ms() - t0);
    }
    double sum = 0;
    for (double m : ms) sum += m;
    std::printf("{\"kind\":\"steps\",\"geometry\":\"%s\",\"patched\":%s,\"batch\":%lld,\"seq\":%lld,\"mean_ms\":%.1f,\"samples_per_s\":%.3f,\"ms\":[",
                geometry.c_str(), patched ? "true" : "false", (long long)batch_size, (long long)seq, sum / ms.size(),
                batch_size * 1000.0 * ms.size() / sum);
    for (size_t i = 0; i < ms.size(); ++i) std::printf("%s%.1f", i ? "," : "", ms[i]);
    std::printf("]}\n");
    if (profile) {
      std::map<std::string, Totals> pairs;
      auto totals = aggregate(prof::disableProfilerLegacy(), &pairs);
      std::vector<std::pair<std::string, Totals>> ops(totals.begin(), totals.end());
      const double per = 1.0 / static_cast<double>(steps);
      for (const auto& [name, t] : ops)
        if (name.rfind("bp::", 0) == 0)
          std::printf("{\"kind\":\"stage\",\"name\":\"%s\",\"ms_per_step\":%.1f}\n", name.c_str(), t.total_ms * per);
      std::sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a.second.self_ms > b.second.self_ms; });
      for (size_t i = 0; i < ops.size() && i < static_cast<size_t>(top); ++i)
        std::printf("{\"kind\":\"op\",\"name\":\"%s\",\"self_ms_per_step\":%.1f,\"total_ms_per_step\":%.1f,\"calls_per_step\":%.1f}\n",
                    ops[i].first.c_str(), ops[i].second.self_ms * per, ops[i].second.total_ms * per, ops[i].second.calls * per);
      std::vector<std::pair<std::string, Totals>> by_caller(pairs.begin(), pairs.end());
      std::sort(by_caller.begin(), by_caller.end(), [](const auto& a, const auto& b) { return a.second.self_ms > b.second.self_ms; });
      for (size_t i = 0; i < by_caller.size() && i < static_cast<size_t>(top); ++i)
        std::printf("{\"kind\":\"caller\",\"name\":\"%s\",\"self_ms_per_step\":%.1f,\"calls_per_step\":%.1f}\n", by_caller[i].first.c_str(),
                    by_caller[i].second.self_ms * per, by_caller[i].second.calls * per);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_train: %s\n", e.what());
    return 1;
  }
  return 0;
}
