// AVX2 AdamW chunk kernel (compiled with -mavx2 -ffp-contract=off; called only when the CPU has
// AVX2). 8 floats per iteration, the scalar kernel for the tail.
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/cpu_adam_kernels.h"

namespace spillway::kernels::cpu {
namespace {

// FloatToBf16 on 8 lanes, packed into 8 uint16 (see cpu_adam_avx512.cc).
__m128i ToBf16(__m256 f) {
  const __m256i x = _mm256_castps_si256(f);
  const __m256i hi = _mm256_srli_epi32(x, 16);
  const __m256i lsb = _mm256_and_si256(hi, _mm256_set1_epi32(1));
  const __m256i rounded =
      _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), lsb), 16);
  const __m256i quiet = _mm256_or_si256(hi, _mm256_set1_epi32(0x40));
  // |x| as a signed int is >= 0, so the signed compare is the unsigned one.
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff)),
                                         _mm256_set1_epi32(0x7f800000));
  const __m256i r = _mm256_blendv_epi8(rounded, quiet, nan);
  // Every lane is <= 0xffff, so the saturating pack is exact; it packs per 128-bit half.
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0b1000);
  return _mm256_castsi256_si128(packed);
}

}  // namespace

void AdamWChunkAvx2(const AdamWStep& s, float* param, const float* grad, float* m, float* v,
                    uint16_t* param_bf16, size_t n) {
  const __m256 lr = _mm256_set1_ps(s.lr), beta1 = _mm256_set1_ps(s.beta1),
               beta2 = _mm256_set1_ps(s.beta2), eps = _mm256_set1_ps(s.eps),
               grad_scale = _mm256_set1_ps(s.grad_scale),
               one_minus_beta1 = _mm256_set1_ps(s.one_minus_beta1),
               one_minus_beta2 = _mm256_set1_ps(s.one_minus_beta2), bc1 = _mm256_set1_ps(s.bc1),
               bc2 = _mm256_set1_ps(s.bc2), decay = _mm256_set1_ps(s.decay);
  // Non-temporal bf16 stores where aligned, as in cpu_adam_avx512.cc.
  const bool stream_bf16 =
      param_bf16 != nullptr && reinterpret_cast<uintptr_t>(param_bf16) % 16 == 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_mul_ps(_mm256_loadu_ps(grad + i), grad_scale);
    const __m256 mi = _mm256_add_ps(_mm256_mul_ps(beta1, _mm256_loadu_ps(m + i)),
                                    _mm256_mul_ps(one_minus_beta1, g));
    const __m256 vi = _mm256_add_ps(_mm256_mul_ps(beta2, _mm256_loadu_ps(v + i)),
                                    _mm256_mul_ps(_mm256_mul_ps(one_minus_beta2, g), g));
    const __m256 step = _mm256_div_ps(_mm256_mul_ps(lr, _mm256_div_ps(mi, bc1)),
                                      _mm256_add_ps(_mm256_sqrt_ps(_mm256_div_ps(vi, bc2)), eps));
    const __m256 p = _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(param + i), decay), step);
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    _mm256_storeu_ps(param + i, p);
    if (stream_bf16) {
      _mm_stream_si128(reinterpret_cast<__m128i*>(param_bf16 + i), ToBf16(p));
    } else if (param_bf16 != nullptr) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(param_bf16 + i), ToBf16(p));
    }
  }
  if (stream_bf16) _mm_sfence();
  AdamWChunkScalar(s, param + i, grad + i, m + i, v + i,
                   param_bf16 == nullptr ? nullptr : param_bf16 + i, n - i);
}

}  // namespace spillway::kernels::cpu
