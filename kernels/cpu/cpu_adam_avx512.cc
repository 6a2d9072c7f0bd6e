// AVX-512F AdamW chunk kernel (compiled with -mavx512f ... -ffp-contract=off; called only when
// the CPU has AVX-512). 16 floats per iteration; the tail runs the same code under a mask.
#include <immintrin.h>

// GCC 12's intrinsic headers trip -Wmaybe-uninitialized on their _mm512_undefined_* values
// (GCC bug 105593); the warning is about the header, not this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "kernels/cpu/cpu_adam_kernels.h"

namespace spillway::kernels::cpu {
namespace {

// FloatToBf16 on 16 lanes: NaN -> (x >> 16) | 0x40, else (x + 0x7fff + ((x >> 16) & 1)) >> 16.
__m512i ToBf16(__m512 f) {
  const __m512i x = _mm512_castps_si512(f);
  const __m512i hi = _mm512_srli_epi32(x, 16);
  const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
  const __m512i rounded =
      _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7fff)), lsb), 16);
  const __m512i quiet = _mm512_or_si512(hi, _mm512_set1_epi32(0x40));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_blend_epi32(nan, rounded, quiet);
}

}  // namespace

void AdamWChunkAvx512(const AdamWStep& s, float* param, const float* grad, float* m, float* v,
                      uint16_t* param_bf16, size_t n) {
  const __m512 lr = _mm512_set1_ps(s.lr), beta1 = _mm512_set1_ps(s.beta1),
               beta2 = _mm512_set1_ps(s.beta2), eps = _mm512_set1_ps(s.eps),
               grad_scale = _mm512_set1_ps(s.grad_scale),
               one_minus_beta1 = _mm512_set1_ps(s.one_minus_beta1),
               one_minus_beta2 = _mm512_set1_ps(s.one_minus_beta2), bc1 = _mm512_set1_ps(s.bc1),
               bc2 = _mm512_set1_ps(s.bc2), decay = _mm512_set1_ps(s.decay);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k =
        n - i >= 16 ? __mmask16{0xffff} : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 g = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, grad + i), grad_scale);
    const __m512 mi = _mm512_add_ps(_mm512_mul_ps(beta1, _mm512_maskz_loadu_ps(k, m + i)),
                                    _mm512_mul_ps(one_minus_beta1, g));
    const __m512 vi = _mm512_add_ps(_mm512_mul_ps(beta2, _mm512_maskz_loadu_ps(k, v + i)),
                                    _mm512_mul_ps(_mm512_mul_ps(one_minus_beta2, g), g));
    const __m512 step = _mm512_div_ps(_mm512_mul_ps(lr, _mm512_div_ps(mi, bc1)),
                                      _mm512_add_ps(_mm512_sqrt_ps(_mm512_div_ps(vi, bc2)), eps));
    const __m512 p = _mm512_sub_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, param + i), decay), step);
    _mm512_mask_storeu_ps(m + i, k, mi);
    _mm512_mask_storeu_ps(v + i, k, vi);
    _mm512_mask_storeu_ps(param + i, k, p);
    if (param_bf16 != nullptr) _mm512_mask_cvtepi32_storeu_epi16(param_bf16 + i, k, ToBf16(p));
  }
}

}  // namespace spillway::kernels::cpu
