#include "runtime.h"

#include <ATen/Parallel.h>
#include <sched.h>

#include <cstdlib>

namespace bp {

int available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return 1;
}

void configure_default_threads() {
  const char* env = std::getenv("OMP_NUM_THREADS");
  if (env && *env) return;
  at::set_num_threads(available_cpus());
}

}  // namespace bp
