#include "kernels/cpu/attention_tiles.h"

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/vec.h"

namespace spillway::kernels::cpu {
namespace {

constexpr int kDotVecs = kLanes >= 16 ? 4 : 2;  // vectors per row of a register tile

// A kRows x (V vectors) tile of GroupDots, accumulated over d ascending.
template <int V>
void GroupDotsTile(float* out, int ldo, const float* const (&x)[kRows], const float* col, int ld,
                   int hs) {
  VecF acc[kRows][V] = {};
  for (int d = 0; d < hs; ++d) {
    VecF k[V];
    for (int v = 0; v < V; ++v) k[v] = LoadVec(col + static_cast<int64_t>(d) * ld + v * kLanes);
    for (int r = 0; r < kRows; ++r) {
      const float xr = x[r][d];
      for (int v = 0; v < V; ++v) acc[r][v] += xr * k[v];
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (int v = 0; v < V; ++v) StoreVec(out + r * ldo + v * kLanes, acc[r][v]);
  }
}

// One kRows x (V vectors) tile of GroupAccumulate, at columns [d, d + V*kLanes).
template <int V>
void GroupAccumulateTile(float* const (&y)[kRows], const float* w, int ldw, const float* x,
                         int64_t stride, int n, int d) {
  VecF acc[kRows][V];
  for (int r = 0; r < kRows; ++r) {
    for (int v = 0; v < V; ++v) acc[r][v] = LoadVec(y[r] + d + v * kLanes);
  }
  for (int j = 0; j < n; ++j) {
    VecF xv[V];
    for (int v = 0; v < V; ++v) xv[v] = LoadVec(x + j * stride + d + v * kLanes);
    for (int r = 0; r < kRows; ++r) {
      const float wr = w[r * ldw + j];
      for (int v = 0; v < V; ++v) acc[r][v] += wr * xv[v];
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (int v = 0; v < V; ++v) StoreVec(y[r] + d + v * kLanes, acc[r][v]);
  }
}

}  // namespace

void PackTransposed(float* dst, int ld, const float* src, int64_t stride, int n, int hs) {
  for (int s = 0; s < n; ++s) {
    const float* row = src + s * stride;
    for (int d = 0; d < hs; ++d) dst[static_cast<int64_t>(d) * ld + s] = row[d];
  }
  for (int d = 0; d < hs; ++d) {
    std::fill(dst + static_cast<int64_t>(d) * ld + n, dst + static_cast<int64_t>(d + 1) * ld, 0.0f);
  }
}

void GroupDots(float* out, int ldo, const float* const (&x)[kRows], const float* xt, int ld, int s0,
               int n, int hs) {
  const int nr = RoundUp(n, kLanes);
  int j = 0;
  for (; j + kDotVecs * kLanes <= nr; j += kDotVecs * kLanes) {
    GroupDotsTile<kDotVecs>(out + j, ldo, x, xt + s0 + j, ld, hs);
  }
  for (; j < nr; j += kLanes) GroupDotsTile<1>(out + j, ldo, x, xt + s0 + j, ld, hs);
}

void GroupAccumulate(float* const (&y)[kRows], const float* w, int ldw, const float* x,
                     int64_t stride, int n, int hs) {
  int d = 0;
  for (; d + kDotVecs * kLanes <= hs; d += kDotVecs * kLanes) {
    GroupAccumulateTile<kDotVecs>(y, w, ldw, x, stride, n, d);
  }
  for (; d + kLanes <= hs; d += kLanes) GroupAccumulateTile<1>(y, w, ldw, x, stride, n, d);
  for (; d < hs; ++d) {
    for (int r = 0; r < kRows; ++r) {
      float a = y[r][d];
      for (int j = 0; j < n; ++j) a += w[r * ldw + j] * x[j * stride + d];
      y[r][d] = a;
    }
  }
}

void AccumulateKeyGrads(float* dk, float* dv, int64_t stride, const RowGroup& g, int n, int hs) {
  int d = 0;
  for (; d + kLanes <= hs; d += kLanes) {
    VecF q[kRows], o[kRows];
    for (int r = 0; r < kRows; ++r) {
      q[r] = LoadVec(g.q[r] + d);
      o[r] = LoadVec(g.dout[r] + d);
    }
    for (int s = 0; s < n; ++s) {
      float* dks = dk + s * stride + d;
      float* dvs = dv + s * stride + d;
      VecF ak = LoadVec(dks), av = LoadVec(dvs);
      for (int r = 0; r < kRows; ++r) {
        ak += g.ds[r][s] * q[r];
        av += g.p[r][s] * o[r];
      }
      StoreVec(dks, ak);
      StoreVec(dvs, av);
    }
  }
  for (; d < hs; ++d) {
    for (int s = 0; s < n; ++s) {
      float ak = dk[s * stride + d], av = dv[s * stride + d];
      for (int r = 0; r < kRows; ++r) {
        ak += g.ds[r][s] * g.q[r][d];
        av += g.p[r][s] * g.dout[r][d];
      }
      dk[s * stride + d] = ak;
      dv[s * stride + d] = av;
    }
  }
}

}  // namespace spillway::kernels::cpu
