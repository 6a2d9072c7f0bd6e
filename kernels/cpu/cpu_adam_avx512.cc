// AVX-512 AdamW chunk kernel (compiled with -mavx512f ... -ffp-contract=off; called only when
// the CPU has AVX-512). 16 floats per iteration; the tail runs the same code under a mask.
#include <immintrin.h>

#include <cstdint>

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

struct Constants {
  explicit Constants(const AdamWStep& s)
      : lr(_mm512_set1_ps(s.lr)),
        beta1(_mm512_set1_ps(s.beta1)),
        beta2(_mm512_set1_ps(s.beta2)),
        eps(_mm512_set1_ps(s.eps)),
        grad_scale(_mm512_set1_ps(s.grad_scale)),
        one_minus_beta1(_mm512_set1_ps(s.one_minus_beta1)),
        one_minus_beta2(_mm512_set1_ps(s.one_minus_beta2)),
        bc1(_mm512_set1_ps(s.bc1)),
        bc2(_mm512_set1_ps(s.bc2)),
        decay(_mm512_set1_ps(s.decay)) {}
  __m512 lr, beta1, beta2, eps, grad_scale, one_minus_beta1, one_minus_beta2, bc1, bc2, decay;
};

// Updates the 16 lanes (kFull) or the lanes of k, and returns the new param.
template <bool kFull>
inline __attribute__((always_inline)) __m512 Update(const Constants& c, float* param,
                                                    const float* grad, float* m, float* v,
                                                    __mmask16 k) {
  const __m512 g0 = kFull ? _mm512_loadu_ps(grad) : _mm512_maskz_loadu_ps(k, grad);
  const __m512 m0 = kFull ? _mm512_loadu_ps(m) : _mm512_maskz_loadu_ps(k, m);
  const __m512 v0 = kFull ? _mm512_loadu_ps(v) : _mm512_maskz_loadu_ps(k, v);
  const __m512 p0 = kFull ? _mm512_loadu_ps(param) : _mm512_maskz_loadu_ps(k, param);
  const __m512 g = _mm512_mul_ps(g0, c.grad_scale);
  const __m512 mi = _mm512_add_ps(_mm512_mul_ps(c.beta1, m0), _mm512_mul_ps(c.one_minus_beta1, g));
  const __m512 vi = _mm512_add_ps(_mm512_mul_ps(c.beta2, v0),
                                  _mm512_mul_ps(_mm512_mul_ps(c.one_minus_beta2, g), g));
  const __m512 step = _mm512_div_ps(_mm512_mul_ps(c.lr, _mm512_div_ps(mi, c.bc1)),
                                    _mm512_add_ps(_mm512_sqrt_ps(_mm512_div_ps(vi, c.bc2)), c.eps));
  const __m512 p = _mm512_sub_ps(_mm512_mul_ps(p0, c.decay), step);
  if constexpr (kFull) {
    _mm512_storeu_ps(m, mi);
    _mm512_storeu_ps(v, vi);
    _mm512_storeu_ps(param, p);
  } else {
    _mm512_mask_storeu_ps(m, k, mi);
    _mm512_mask_storeu_ps(v, k, vi);
    _mm512_mask_storeu_ps(param, k, p);
  }
  return p;
}

}  // namespace

void AdamWChunkAvx512(const AdamWStep& s, float* param, const float* grad, float* m, float* v,
                      uint16_t* param_bf16, size_t n) {
  const Constants c(s);
  size_t i = 0;
  // The bf16 output is a stream of its own: non-temporal stores spare reading it in first. Its
  // 32-byte alignment is the same at every i (a multiple of 16 elements).
  const bool stream_bf16 =
      param_bf16 != nullptr && reinterpret_cast<uintptr_t>(param_bf16) % 32 == 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 p = Update<true>(c, param + i, grad + i, m + i, v + i, 0);
    if (stream_bf16) {
      _mm256_stream_si256(reinterpret_cast<__m256i*>(param_bf16 + i),
                          _mm512_cvtepi32_epi16(ToBf16(p)));
    } else if (param_bf16 != nullptr) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(param_bf16 + i),
                          _mm512_cvtepi32_epi16(ToBf16(p)));
    }
  }
  if (i < n) {
    const __mmask16 k = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 p = Update<false>(c, param + i, grad + i, m + i, v + i, k);
    if (param_bf16 != nullptr) _mm512_mask_cvtepi32_storeu_epi16(param_bf16 + i, k, ToBf16(p));
  }
  if (stream_bf16) _mm_sfence();
}

}  // namespace spillway::kernels::cpu
