// Incremental decoding's self-attention keys and values (bart.cc, t5.cc): appended per step without copying
// the earlier positions. at::cat copied every cached position at each step (quadratic in the length); here the
// cache is a view of the first `len` positions of a buffer with room for more, so a step writes its own.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>

namespace bp {

// `cache` (undefined, or [N, H, len, head_dim]) followed by x [N, H, t, head_dim] along dim 2, as at::cat gives
// it. When `cache` is a view this function made and its buffer has room, x is written in place after it and a
// longer view of the same buffer is returned; otherwise a buffer of twice the length (at least 64 positions) is
// made. The buffer's capacity is read from the view's head stride. Callers replace `cache` by the result and
// never keep the old view while appending to another copy (select() makes new tensors with index_select).
inline at::Tensor append_positions(const at::Tensor& cache, const at::Tensor& x) {
  if (!cache.defined()) return x;
  const int64_t N = x.size(0), H = x.size(1), t = x.size(2), dh = x.size(3), len = cache.size(2);
  if (x.numel() == 0 || cache.size(0) != N || cache.size(1) != H || cache.size(3) != dh) return at::cat({cache, x}, 2);
  const int64_t cap = cache.stride(1) / dh;
  const bool room = cache.storage_offset() == 0 && cache.stride(3) == 1 && cache.stride(2) == dh && cache.stride(0) == H * cache.stride(1) &&
                    cache.stride(1) % dh == 0 && cap >= len + t &&
                    static_cast<int64_t>(cache.storage().nbytes()) >= N * H * cap * dh * static_cast<int64_t>(cache.element_size());
  at::Tensor out;
  if (room) {
    out = cache.as_strided({N, H, len + t, dh}, cache.strides());
  } else {
    auto buffer = at::empty({N, H, std::max<int64_t>(64, 2 * (len + t)), dh}, x.options());
    buffer.narrow(2, 0, len).copy_(cache);
    out = buffer.narrow(2, 0, len + t);
  }
  out.narrow(2, len, t).copy_(x);
  return out;
}

}  // namespace bp
