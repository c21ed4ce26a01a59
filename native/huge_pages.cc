#include "huge_pages.h"

#include <c10/core/GradMode.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace bp {

int64_t place_weights_on_huge_pages(torch::nn::Module& module, int64_t min_bytes) {
  constexpr int64_t kHuge = 2 << 20, kAlign = 64;
  // BLOCKPRUNE_HUGE_PAGES=0: leave the weights where they are (what the benchmarks compare against).
  const char* env = std::getenv("BLOCKPRUNE_HUGE_PAGES");
  if (env && std::string(env) == "0") return 0;
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> moving;
  int64_t total = 0;
  for (auto& p : module.parameters()) {
    if (!p.device().is_cpu() || p.scalar_type() != at::kFloat || !p.is_contiguous() || static_cast<int64_t>(p.nbytes()) < min_bytes) continue;
    moving.push_back(p);
    total += (static_cast<int64_t>(p.nbytes()) + kAlign - 1) / kAlign * kAlign;
  }
  if (moving.empty()) return 0;
  const int64_t bytes = (total + kHuge - 1) / kHuge * kHuge;
  void* raw = nullptr;
  if (posix_memalign(&raw, kHuge, static_cast<size_t>(bytes)) != 0) return 0;
  std::shared_ptr<void> arena(raw, [](void* q) { std::free(q); });
  // Advice before the first touch: the copies below fault the pages in as 2 MiB ones where the kernel has them.
  madvise(raw, static_cast<size_t>(bytes), MADV_HUGEPAGE);
  auto* base = static_cast<char*>(raw);
  int64_t offset = 0;
  for (auto& p : moving) {
    char* dst = base + offset;
    std::memcpy(dst, p.data_ptr(), p.nbytes());
    offset += (static_cast<int64_t>(p.nbytes()) + kAlign - 1) / kAlign * kAlign;
    auto moved = at::from_blob(dst, p.sizes(), p.strides(), [arena](void*) {}, p.options());
    p.set_data(moved);
  }
  return total;
}

}  // namespace bp
