// Portable SIMD helpers (GCC/Clang vector extensions) with fixed reduction orders, so that a
// result depends only on the data and the build, never on the thread that computes it.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace spillway::kernels::cpu {

#if defined(__AVX512F__)
inline constexpr int kLanes = 16;
#elif defined(__AVX__)
inline constexpr int kLanes = 8;
#else
inline constexpr int kLanes = 4;
#endif

typedef float VecF __attribute__((vector_size(kLanes * sizeof(float))));

inline VecF LoadVec(const float* p) {
  VecF v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

inline void StoreVec(float* p, VecF v) { __builtin_memcpy(p, &v, sizeof(v)); }

// Sum of the lanes, as a fixed pairwise tree.
inline float HorizontalSum(VecF v) {
  float t[kLanes];
  StoreVec(t, v);
  for (int w = kLanes / 2; w >= 1; w /= 2) {
    for (int i = 0; i < w; ++i) t[i] += t[i + w];
  }
  return t[0];
}

// sum_i a[i] * b[i], in an order fixed by n alone.
inline float Dot(const float* a, const float* b, int n) {
  VecF acc0 = {}, acc1 = {};
  int i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    acc0 += LoadVec(a + i) * LoadVec(b + i);
    acc1 += LoadVec(a + i + kLanes) * LoadVec(b + i + kLanes);
  }
  if (i + kLanes <= n) {
    acc0 += LoadVec(a + i) * LoadVec(b + i);
    i += kLanes;
  }
  float s = HorizontalSum(acc0 + acc1);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// sum_i a[i], in an order fixed by n alone.
inline float Sum(const float* a, int n) {
  VecF acc0 = {}, acc1 = {};
  int i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    acc0 += LoadVec(a + i);
    acc1 += LoadVec(a + i + kLanes);
  }
  if (i + kLanes <= n) {
    acc0 += LoadVec(a + i);
    i += kLanes;
  }
  float s = HorizontalSum(acc0 + acc1);
  for (; i < n; ++i) s += a[i];
  return s;
}

// max of a[0, n), n >= 1 (exact, so the order does not matter).
inline float Max(const float* a, int n) {
  float m = a[0];
  int i = 0;
  if (n >= kLanes) {
    VecF v = LoadVec(a);
    for (i = kLanes; i + kLanes <= n; i += kLanes) {
      const VecF x = LoadVec(a + i);
      v = x > v ? x : v;
    }
    float t[kLanes];
    StoreVec(t, v);
    for (int l = 0; l < kLanes; ++l) m = std::max(m, t[l]);
  }
  for (; i < n; ++i) m = std::max(m, a[i]);
  return m;
}

// exp(x) for x in [-87, 88] (clamped outside; NaN stays NaN), within ~2 ulp: x = n ln2 + r,
// |r| <= ln2/2, exp(r) by the Cephes polynomial. Plain float code, so loops over it vectorize.
inline float FastExp(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  constexpr float kShift = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float shifted = x * 1.44269504088896341f + kShift;
  const float n = shifted - kShift;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  // The low mantissa bits of `shifted` hold n; build 2^n from them.
  const uint32_t n_bits = std::bit_cast<uint32_t>(shifted) - 0x4B400000u;
  return y * std::bit_cast<float>((n_bits + 127u) << 23);
}

}  // namespace spillway::kernels::cpu
