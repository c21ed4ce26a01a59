// gpu_check: the device checks of the core without Node (GPU machines have no Node): fixture parity of the
// forward on the chosen device, 3 AdamW steps against transformers' losses, and training-step throughput of
// a bert-base-sized model (plain and patched with the hybrid preset) at 8 x 128.
//
//   gpu_check --fixtures <shared/fixtures> [--device cuda|cpu] [--steps 10] [--skip-throughput]
//
// Prints one line per check and exits 1 if a parity check fails.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "args.h"
#include "checkpoint.h"
#include "patch.h"
#include "runtime.h"
#include "safetensors.h"
#include "tool_common.h"
#include "training.h"

namespace {

std::map<std::string, at::Tensor> load(const std::string& path) {
  auto f = bp::read_safetensors(path);
  return {f.tensors.begin(), f.tensors.end()};
}

bp::Batch batch_of(std::map<std::string, at::Tensor>& io) {
  bp::Batch b;
  b.input_ids = io["input_ids"];
  b.attention_mask = io["attention_mask"];
  b.token_type_ids = io["token_type_ids"];
  if (io.count("labels")) b.labels = io["labels"];
  return b;
}

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a.to(at::kCPU) - b.to(at::kCPU)).abs().max().item<double>(); }

}  // namespace

int main(int argc, char** argv) {
  std::string fixtures, device = "cuda";
  int steps = 10;
  bool throughput = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--fixtures" && i + 1 < argc) fixtures = argv[++i];
    else if (a == "--device" && i + 1 < argc) device = argv[++i];
    else if (a == "--steps" && i + 1 < argc) steps = static_cast<int>(tools::int_arg("--steps", argv[++i], 1, 1000000));
    else if (a == "--skip-throughput") throughput = false;
    else {
      std::fprintf(stderr, "usage: gpu_check --fixtures DIR [--device cuda|cpu] [--steps N] [--skip-throughput]\n");
      return 2;
    }
  }
  bp::configure_default_threads();
  int failures = 0;
  try {
    std::printf("gpu_check: libtorch %s, CUDA build %d, CUDA available %d, device %s\n", BP_TORCH_VERSION, BP_WITH_CUDA,
                at::hasCUDA() ? 1 : 0, device.c_str());
    if (!fixtures.empty()) {
      for (const char* name : {"bert-tiny-cls", "bert-tiny-qa", "bert-tiny-pruned-heads", "bert-tiny-bare"}) {
        bp::LoadOptions lo;
        lo.device = device;
        auto loaded = bp::load_pretrained(fixtures + "/" + name, lo);
        auto io = load(fixtures + "/" + name + "/io.safetensors");
        bp::ForwardOptions fo;
        fo.extras = true;
        at::NoGradGuard ng;
        auto out = loaded.model->forward(batch_of(io), fo);
        double worst = 0;
        for (auto& [k, v] : out)
          if (io.count(k) && k != "loss") worst = std::max(worst, max_diff(v, io[k]));
        const bool ok = worst <= 1e-4;  // TF32/cuBLAS may differ from CPU fp32 more than 1e-5
        failures += ok ? 0 : 1;
        std::printf("%s parity %-24s max |diff| %.3g\n", ok ? "ok  " : "FAIL", name, worst);
      }
      // 3 AdamW steps (transformers semantics) against the fixture's losses.
      bp::LoadOptions lo;
      lo.device = device;
      auto m = bp::load_pretrained(fixtures + "/bert-tiny-cls", lo).model;
      auto io = load(fixtures + "/bert-tiny-cls/io.safetensors");
      std::ifstream sj(fixtures + "/bert-tiny-cls/steps.json");
      std::stringstream ss;
      ss << sj.rdbuf();
      auto ref = nlohmann::json::parse(ss.str())["losses"];
      bp::AdamW opt;
      bp::TrainStepOptions so;
      so.adam.lr = 1e-3;
      so.adam.weight_decay = 0.01;
      so.max_grad_norm = 0;
      double worst = 0;
      for (int s = 0; s < 3; ++s) {
        const bp::Batch b = batch_of(io);
        auto r = bp::train_step(m, opt, &b, so, nullptr);
        worst = std::max(worst, std::abs(r.loss - ref[s].get<double>()));
      }
      const bool ok = worst <= 1e-4;
      failures += ok ? 0 : 1;
      std::printf("%s 3 AdamW steps: max |loss diff| %.3g\n", ok ? "ok  " : "FAIL", worst);
    }
    if (throughput) {
      bp::BertConfig c;  // bert-base geometry
      for (bool patched : {false, true}) {
        auto model = bp::create_random(c, bp::TaskKind::SequenceClassification, 1, device);
        if (patched) bp::patch_model(model, tools::hybrid_plan(c));
        bp::Batch b;
        b.input_ids = at::randint(1000, 20000, {8, 128}, at::kLong);
        b.attention_mask = at::ones({8, 128}, at::kLong);
        b.token_type_ids = at::zeros({8, 128}, at::kLong);
        b.labels = at::randint(0, 2, {8}, at::kLong);
        bp::AdamW opt;
        bp::TrainStepOptions so;
        so.adam.lr = 3e-5;
        if (patched) {
          so.loss.regularization = "l1";
          so.loss.lambda = 10;
        }
        for (int s = 0; s < 2; ++s) bp::train_step(model, opt, &b, so, nullptr);
        // train_step reads the loss back (.item()), so each step ends synchronised with the device.
        const double t0 = tools::now_ms();
        for (int s = 0; s < steps; ++s) bp::train_step(model, opt, &b, so, nullptr);
        const double ms = (tools::now_ms() - t0) / steps;
        std::printf("bert-base train step 8x128 on %s, %s: %.1f ms, %.2f samples/s\n", device.c_str(), patched ? "patched (hybrid)" : "plain", ms, 8000.0 / ms);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_check: %s\n", e.what());
    return 1;
  }
  return failures ? 1 : 0;
}
