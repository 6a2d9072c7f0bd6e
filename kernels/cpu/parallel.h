// Parallel loops over fixed-size blocks: the blocks, and so the code path each element takes,
// depend only on n and the block size, never on the number of threads.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace spillway::kernels::cpu {

// Calls fn(begin, end) for the blocks [i*block, min(n, (i+1)*block)), in parallel.
template <typename Fn>
void ParallelForBlocks(size_t n, size_t block, Fn&& fn) {
  const int64_t blocks = static_cast<int64_t>((n + block - 1) / block);
#pragma omp parallel for schedule(static) if (blocks > 1)
  for (int64_t i = 0; i < blocks; ++i) {
    const size_t begin = static_cast<size_t>(i) * block;
    fn(begin, std::min(n, begin + block));
  }
}

}  // namespace spillway::kernels::cpu
