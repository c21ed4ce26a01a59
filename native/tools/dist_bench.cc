// dist_bench: data-parallel training-step throughput without Node (GPU machines have no Node). Runs the same
// fine-pruning steps (random BERT patched with the hybrid preset, global batch B x S, AdamW) once in one
// process and once in N processes joined by c10d (Gloo, or NCCL on CUDA builds), and prints samples/s of each,
// the scaling, and how far the N-process loss curve and weights are from the single process's.
//
//   dist_bench [--nproc 2] [--backend gloo|nccl] [--device cpu|cuda] [--geometry small|base]
//              [--batch 16] [--seq 128] [--steps 10] [--warmup 2]
//
// CPU: the single process gets every core; each of the N ranks gets cores / N threads (OMP_NUM_THREADS), and
// OMP_WAIT_POLICY=PASSIVE unless set (as lib/native.ts sets it for Node).
// CUDA: rank r uses GPU r % device count (NCCL needs one GPU per rank: on a one-GPU machine use --nproc 1 for
// NCCL, or --backend gloo, which takes CUDA tensors too). Ranks are this program again, started with
// RANK/WORLD_SIZE set; --nproc 1 still joins a group of one, so the collectives run.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "args.h"
#include "checkpoint.h"
#include "distributed.h"
#include "patch.h"
#include "runtime.h"
#include "tool_common.h"
#include "training.h"

extern char** environ;

namespace {

struct Args {
  int nproc = 2, batch = 16, seq = 128, steps = 10, warmup = 2;
  std::string backend = "gloo", device = "cpu", geometry = "small", result;
};

int env_int(const char* name, int def) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : def;
}

// One run: alone (world 1, no group) or as RANK of WORLD_SIZE. Writes {samples_per_s, losses, checksum} as JSON.
int run_rank(const Args& a) {
  const int world = env_int("WORLD_SIZE", 1), rank = env_int("RANK", 0), local = env_int("LOCAL_RANK", rank);
  std::string device = a.device;
  if (device == "cuda") device = "cuda:" + std::to_string(local % std::max<int64_t>(1, static_cast<int64_t>(at::getNumGPUs())));
  std::shared_ptr<bp::ProcessGroup> group;
  if (std::getenv("WORLD_SIZE")) {  // a launched rank (--nproc 1 too: a group of one still runs the collectives)
    bp::DistOptions d;
    d.backend = a.backend;
    d.rank = rank;
    d.world_size = world;
    d.master_addr = std::getenv("MASTER_ADDR") ? std::getenv("MASTER_ADDR") : "127.0.0.1";
    d.master_port = env_int("MASTER_PORT", 29500);
    d.timeout_ms = 120000;
    group = std::make_shared<bp::ProcessGroup>(d);
  }
  bp::BertConfig c;
  if (a.geometry == "small") {
    c.hidden_size = 256;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 4;
    c.intermediate_size = 1024;
  }
  c.hidden_dropout_prob = 0;
  c.attention_probs_dropout_prob = 0;
  auto model = bp::create_random(c, bp::TaskKind::SequenceClassification, 1, device);
  bp::patch_model(model, tools::hybrid_plan(c));
  if (group) bp::sync_model(model, *group);
  // The global batch, the same in every process; rank r takes rows r, r + W, ...
  at::manual_seed(123);
  bp::Batch global;
  global.input_ids = at::randint(1000, 20000, {a.batch, a.seq}, at::kLong);
  global.attention_mask = at::ones({a.batch, a.seq}, at::kLong);
  global.token_type_ids = at::zeros({a.batch, a.seq}, at::kLong);
  global.labels = at::randint(0, 2, {a.batch}, at::kLong);
  auto rows = at::arange(rank, a.batch, world, at::kLong);
  bp::Batch b;
  b.input_ids = global.input_ids.index_select(0, rows).to(device);
  b.attention_mask = global.attention_mask.index_select(0, rows).to(device);
  b.token_type_ids = global.token_type_ids.index_select(0, rows).to(device);
  b.labels = global.labels.index_select(0, rows).to(device);
  bp::AdamW opt;
  bp::TrainStepOptions so;
  so.adam.lr = 1e-4;
  so.loss.regularization = "l1";
  so.loss.lambda = 1;
  so.set_threshold = true;
  so.threshold = 0.05;
  so.group = group;
  std::vector<double> losses;
  for (int s = 0; s < a.warmup; ++s) losses.push_back(bp::train_step(model, opt, &b, so, nullptr).loss);
  if (group) group->barrier("timing start");
  double sync_ms = 0;
  const double t0 = tools::now_ms();
  for (int s = 0; s < a.steps; ++s) {
    auto r = bp::train_step(model, opt, &b, so, nullptr);
    losses.push_back(r.loss);
    sync_ms += r.sync_ms;
  }
  const double ms = tools::now_ms() - t0;  // train_step reads the loss back: each step ends synchronised
  double checksum = 0;
  for (auto& p : model->parameters()) checksum += p.detach().to(at::kDouble).abs().sum().template item<double>();
  if (group) group->shutdown();
  if (rank == 0 && !a.result.empty()) {
    nlohmann::json j = {{"samples_per_s", 1000.0 * a.batch * a.steps / ms}, {"ms_per_step", ms / a.steps}, {"losses", losses},
                        {"checksum", checksum}, {"sync_ms", sync_ms / a.steps}, {"threads", at::get_num_threads()}, {"world", world}, {"device", device}};
    std::ofstream(a.result) << j.dump();
  }
  return 0;
}

// Starts `n` copies of this program (n == 0: one, alone) and waits; returns rank 0's JSON.
nlohmann::json launch(const Args& a, int n, int threads, const std::string& self) {
  const std::string result = "/tmp/dist_bench." + std::to_string(getpid()) + "." + std::to_string(n) + ".json";
  std::remove(result.c_str());
  const int port = 20000 + (getpid() * 7 + n) % 20000;
  std::vector<pid_t> pids;
  for (int r = 0; r < std::max(1, n); ++r) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      std::string s = *e;
      if (s.rfind("RANK=", 0) == 0 || s.rfind("WORLD_SIZE=", 0) == 0 || s.rfind("OMP_NUM_THREADS=", 0) == 0 || s.rfind("LOCAL_RANK=", 0) == 0) continue;
      env.push_back(s);
    }
    env.push_back("OMP_NUM_THREADS=" + std::to_string(threads));
    // As blockprune's Node loader does: idle OpenMP workers must not spin while OpenBLAS's threads compute
    // (measured here: 15 vs 40 samples/s for one process with 2 threads).
    if (!std::getenv("OMP_WAIT_POLICY")) env.push_back("OMP_WAIT_POLICY=PASSIVE");
    if (n > 0) {
      env.push_back("RANK=" + std::to_string(r));
      env.push_back("LOCAL_RANK=" + std::to_string(r));
      env.push_back("WORLD_SIZE=" + std::to_string(n));
      env.push_back("MASTER_ADDR=127.0.0.1");
      env.push_back("MASTER_PORT=" + std::to_string(port));
    }
    std::vector<std::string> args = {self,         "--rank-run", "--backend", a.backend, "--device",   a.device,   "--geometry", a.geometry,
                                     "--batch",    std::to_string(a.batch),   "--seq",   std::to_string(a.seq),   "--steps",
                                     std::to_string(a.steps), "--warmup", std::to_string(a.warmup), "--result", result};
    std::vector<char*> argv, envp;
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (auto& s : env) envp.push_back(s.data());
    envp.push_back(nullptr);
    pid_t pid;
    if (posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), envp.data()) != 0) throw std::runtime_error("could not start " + self);
    pids.push_back(pid);
  }
  bool ok = true;
  for (auto pid : pids) {
    int st = 0;
    waitpid(pid, &st, 0);
    ok = ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  if (!ok) throw std::runtime_error("a rank failed (see its message above)");
  std::ifstream in(result);
  std::stringstream ss;
  ss << in.rdbuf();
  std::remove(result.c_str());
  return nlohmann::json::parse(ss.str());
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  bool rank_run = false;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    auto num = [&](int64_t lo, int64_t hi) {
      const std::string flag = s, value = next();  // in this order: next() moves i past the flag
      return static_cast<int>(tools::int_arg(flag.c_str(), value.c_str(), lo, hi));
    };
    if (s == "--rank-run") rank_run = true;
    else if (s == "--nproc") a.nproc = num(1, 1024);
    else if (s == "--backend") a.backend = next();
    else if (s == "--device") a.device = next();
    else if (s == "--geometry") a.geometry = next();
    else if (s == "--batch") a.batch = num(1, 65536);
    else if (s == "--seq") a.seq = num(1, bp::BertConfig{}.max_position_embeddings);
    else if (s == "--steps") a.steps = num(1, 1000000);
    else if (s == "--warmup") a.warmup = num(0, 1000000);
    else if (s == "--result") a.result = next();
    else {
      std::fprintf(stderr,
                   "usage: dist_bench [--nproc N] [--backend gloo|nccl] [--device cpu|cuda] [--geometry small|base] [--batch B] [--seq S] "
                   "[--steps K] [--warmup W]\n");
      return 2;
    }
  }
  try {
    if (rank_run) {
      bp::configure_default_threads();
      return run_rank(a);
    }
    if (a.nproc < 1 || a.batch < a.nproc) throw std::runtime_error("need 1 <= nproc <= batch");
    const int cores = static_cast<int>(bp::available_cpus());
    const std::string self = "/proc/self/exe";
    char path[4096];
    const ssize_t len = readlink(self.c_str(), path, sizeof(path) - 1);
    const std::string exe = len > 0 ? std::string(path, len) : argv[0];
    std::printf("dist_bench: %s geometry, global batch %d x %d, %d timed steps after %d warm-up, hybrid-patched, %s, backend %s, %d cores\n",
                a.geometry.c_str(), a.batch, a.seq, a.steps, a.warmup, a.device.c_str(), a.backend.c_str(), cores);
    std::fflush(stdout);
    auto one = launch(a, 0, a.device == "cpu" ? cores : std::max(1, cores / 2), exe);
    auto many = launch(a, a.nproc, std::max(1, a.device == "cpu" ? cores / a.nproc : cores / (2 * a.nproc)), exe);
    double worst = 0;
    auto l1 = one["losses"], ln = many["losses"];
    for (size_t i = 0; i < l1.size() && i < ln.size(); ++i) worst = std::max(worst, std::abs(l1[i].get<double>() - ln[i].get<double>()));
    const double s1 = one["samples_per_s"], sn = many["samples_per_s"];
    std::printf("1 process  (%d threads): %8.2f samples/s (%.1f ms/step)\n", one["threads"].get<int>(), s1, one["ms_per_step"].get<double>());
    std::printf("%d processes (%d threads each): %8.2f samples/s (%.1f ms/step, of which %.1f ms waiting for the all-reduce after backward)\n",
                a.nproc, many["threads"].get<int>(), sn, many["ms_per_step"].get<double>(), many["sync_ms"].get<double>());
    std::printf("scaling 1 -> %d processes: %.2fx; max |loss diff| over %zu steps %.3g; weight checksum %.9g vs %.9g\n", a.nproc, sn / s1, l1.size(),
                worst, one["checksum"].get<double>(), many["checksum"].get<double>());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dist_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
