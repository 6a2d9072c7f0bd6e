// Register-tiled building blocks of the attention kernels: a head's keys or values packed
// transposed, and small products over a group of kRows query rows. Every sum runs in a fixed
// ascending order, so results do not depend on which thread computes them.
#pragma once

#include <cstdint>

#include "kernels/cpu/vec.h"

namespace spillway::kernels::cpu {

inline constexpr int kRows = 4;  // query rows processed together

inline int RoundUp(int n, int m) { return (n + m - 1) / m * m; }

// dst (hs, ld): dst[d*ld + s] = src[s*stride + d] for s < n, 0 for n <= s < ld.
void PackTransposed(float* dst, int ld, const float* src, int64_t stride, int n, int hs);

// out[r*ldo + j] = sum over d ascending of x[r][d] * xt[d*ld + s0 + j], for r < kRows and
// j < RoundUp(n, kLanes) (so ld >= s0 + RoundUp(n, kLanes), and xt zero-padded past the keys).
void GroupDots(float* out, int ldo, const float* const (&x)[kRows], const float* xt, int ld, int s0,
               int n, int hs);

// y[r][d] += sum over j ascending of w[r*ldw + j] * x[j*stride + d], for r < kRows, d < hs.
void GroupAccumulate(float* const (&y)[kRows], const float* w, int ldw, const float* x,
                     int64_t stride, int n, int hs);

// A group of kRows query rows of one head: their q and dout rows, and their probability and
// d(scaled score) rows over the keys (0 past each row's causal limit).
struct RowGroup {
  const float* q[kRows];
  const float* dout[kRows];
  const float* p[kRows];
  const float* ds[kRows];
};

// For keys s < n: dk_s += sum over rows r ascending of ds[r][s] q_r, and
// dv_s += sum over r ascending of p[r][s] dout_r (dk_s at dk + s*stride, likewise dv_s).
void AccumulateKeyGrads(float* dk, float* dv, int64_t stride, const RowGroup& g, int n, int hs);

}  // namespace spillway::kernels::cpu
