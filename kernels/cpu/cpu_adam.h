// The fast CPU AdamW used when the optimizer step runs on the host (offload_optimizer): the
// math and argument order of the reference kernels/cpu/adamw.cc (AdamWParams, kernels/ops.h),
// and bitwise-equal results, on every instruction set and for any OpenMP thread count.
//
// The instruction set is chosen once at run time from what the CPU supports (AVX-512, then
// AVX2, then portable C++ that the compiler may vectorise for the build target), independently
// of the flags the library was compiled with (SPILLWAY_NATIVE).
// Work is split into fixed chunks of kChunk elements run in parallel with OpenMP.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"
#include "kernels/ops.h"

namespace spillway::kernels::cpu {

enum class CpuIsa { kScalar, kAvx2, kAvx512 };

// "scalar", "avx2", "avx512".
absl::string_view CpuIsaName(CpuIsa isa);

// Whether this build has a kernel for `isa` and this CPU can run it.
bool CpuIsaSupported(CpuIsa isa);

// Every supported instruction set, scalar first.
std::vector<CpuIsa> SupportedCpuIsas();

// The instruction set CpuAdamW uses: the widest supported one.
CpuIsa BestCpuIsa();

// Threads an OpenMP loop of the CPU kernels starts (OMP_NUM_THREADS, else one per CPU), and the
// CPUs this process may run on (its affinity mask: a launcher's binding can shrink it). More
// threads than CPUs means they share cores, and the compact-state kernels slow down in step.
int CpuKernelThreads();
int CpusAvailable();
// Sets the threads of the CPU kernels the calling thread runs from now on (OpenMP's setting is
// per thread: others keep theirs).
void SetCallerKernelThreads(int threads);

// One AdamW step over n elements, updating param, m and v in place. If param_bf16 is not null,
// it receives the updated param rounded to bf16 (round to nearest even, as FloatToBf16 in
// core/safetensors.h), as raw bits. The arrays must not overlap.
void CpuAdamW(float* param, const float* grad, float* m, float* v, uint16_t* param_bf16, size_t n,
              const AdamWParams& p);

// CpuAdamW with a given instruction set; CpuIsaSupported(isa) must hold (for tests, benches).
void CpuAdamW(CpuIsa isa, float* param, const float* grad, float* m, float* v, uint16_t* param_bf16,
              size_t n, const AdamWParams& p);

}  // namespace spillway::kernels::cpu
