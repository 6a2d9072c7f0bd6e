#include "kernels/cpu/cpu_adam.h"

#include <omp.h>
#include <sched.h>

#include "kernels/cpu/cpu_adam_kernels.h"
#include "kernels/cpu/parallel.h"

namespace spillway::kernels::cpu {
namespace {

// 64 KiB per array per chunk: large enough to stream, small enough to balance threads.
constexpr size_t kChunk = 1 << 14;

AdamWChunkFn ChunkKernel(CpuIsa isa) {
  switch (isa) {
#if defined(__x86_64__)
    case CpuIsa::kAvx512:
      return AdamWChunkAvx512;
    case CpuIsa::kAvx2:
      return AdamWChunkAvx2;
#endif
    default:
      return AdamWChunkScalar;
  }
}

}  // namespace

absl::string_view CpuIsaName(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512:
      return "avx512";
    case CpuIsa::kAvx2:
      return "avx2";
    case CpuIsa::kScalar:
      break;
  }
  return "scalar";
}

bool CpuIsaSupported(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar:
      return true;
#if defined(__x86_64__)
    case CpuIsa::kAvx2:
      return __builtin_cpu_supports("avx2");
    case CpuIsa::kAvx512:
      // The flags cpu_adam_avx512.cc is compiled with (kernels/CMakeLists.txt).
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#endif
    default:
      return false;
  }
}

std::vector<CpuIsa> SupportedCpuIsas() {
  std::vector<CpuIsa> isas;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (CpuIsaSupported(isa)) isas.push_back(isa);
  }
  return isas;
}

int CpuKernelThreads() { return omp_get_max_threads(); }

void SetCallerKernelThreads(int threads) { omp_set_num_threads(threads); }

int CpusAvailable() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return omp_get_num_procs();
  return CPU_COUNT(&set);
}

CpuIsa BestCpuIsa() {
  static const CpuIsa best = SupportedCpuIsas().back();
  return best;
}

void CpuAdamW(float* param, const float* grad, float* m, float* v, uint16_t* param_bf16, size_t n,
              const AdamWParams& p) {
  CpuAdamW(BestCpuIsa(), param, grad, m, v, param_bf16, n, p);
}

void CpuAdamW(CpuIsa isa, float* param, const float* grad, float* m, float* v, uint16_t* param_bf16,
              size_t n, const AdamWParams& p) {
  const AdamWStep s = AdamWStep::From(p);
  const AdamWChunkFn kernel = ChunkKernel(isa);
  ParallelForBlocks(n, kChunk, [&](size_t begin, size_t end) {
    kernel(s, param + begin, grad + begin, m + begin, v + begin,
           param_bf16 == nullptr ? nullptr : param_bf16 + begin, end - begin);
  });
}

}  // namespace spillway::kernels::cpu
