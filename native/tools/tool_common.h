// Shared by the native tools (one program per .cc file in this folder).
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "config.h"

namespace tools {

// As the addon runs (lib/runtime/native.ts): OMP_WAIT_POLICY=PASSIVE unless set. libgomp reads it when it
// loads, before main, hence the re-exec of this program (call first thing in main). With spinning OpenMP
// threads OpenBLAS's GEMMs ran at half speed, and the first parallel work after an OpenMP region waited.
inline void run_as_the_addon(char** argv) {
  if (!std::getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);
  }
}

inline double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// The hybrid preset as a patch plan: 32x32 blocks in attention, FFN rows (columns of the output, shared).
inline nlohmann::json hybrid_plan(const bp::BertConfig& c) {
  nlohmann::json mods = nlohmann::json::array();
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "bert.encoder.layer." + std::to_string(i) + ".";
    for (const char* m : {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"})
      mods.push_back({{"module", p + m}, {"method", "sigmoied_threshold"}, {"layout", "block"}, {"blockRows", 32}, {"blockCols", 32}, {"group", "attention"}});
    mods.push_back({{"module", p + "intermediate.dense"}, {"method", "sigmoied_threshold"}, {"layout", "rows"}, {"group", "dense"}});
    mods.push_back({{"module", p + "output.dense"}, {"method", "sigmoied_threshold"}, {"layout", "cols"}, {"group", "dense"}, {"shareWith", p + "intermediate.dense"}});
  }
  return {{"threshold", 0.05}, {"modules", mods}};
}

}  // namespace tools
