#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec.h"

namespace spillway::kernels::cpu {
namespace {

// Register tile: kMr rows x kNr columns of accumulators (2 vectors per row).
constexpr int kNr = 2 * kLanes;
constexpr int kMr = kLanes >= 16 ? 8 : 6;

// A strided matrix view: element (i, k) is data[i * rs + k * ks].
struct View {
  const float* data;
  int64_t rs;
  int64_t ks;
  float at(int64_t i, int64_t k) const { return data[i * rs + k * ks]; }
};

int CeilDiv(int a, int b) { return (a + b - 1) / b; }

// Packs A (M,K) into row tiles: tile r is a (K, kMr) block holding rows [r*kMr, r*kMr+kMr),
// zero-padded past M.
void PackA(float* dst, View a, int M, int K) {
  const int tiles = CeilDiv(M, kMr);
#pragma omp parallel for schedule(static)
  for (int r = 0; r < tiles; ++r) {
    float* tile = dst + static_cast<int64_t>(r) * K * kMr;
    const int rows = std::min(kMr, M - r * kMr);
    for (int i = 0; i < kMr; ++i) {
      if (i < rows) {
        const int64_t row = static_cast<int64_t>(r) * kMr + i;
        for (int k = 0; k < K; ++k) tile[static_cast<int64_t>(k) * kMr + i] = a.at(row, k);
      } else {
        for (int k = 0; k < K; ++k) tile[static_cast<int64_t>(k) * kMr + i] = 0.0f;
      }
    }
  }
}

// Packs B (K,Ncols), B(k, j) = b.at(j, k), into column panels: panel p is a (K, kNr) block
// holding columns [p*kNr, p*kNr+kNr), zero-padded past Ncols.
void PackB(float* dst, View b, int K, int ncols) {
  const int panels = CeilDiv(ncols, kNr);
#pragma omp parallel for schedule(static)
  for (int p = 0; p < panels; ++p) {
    float* panel = dst + static_cast<int64_t>(p) * K * kNr;
    const int cols = std::min(kNr, ncols - p * kNr);
    for (int k = 0; k < K; ++k) {
      float* row = panel + static_cast<int64_t>(k) * kNr;
      for (int j = 0; j < cols; ++j) row[j] = b.at(static_cast<int64_t>(p) * kNr + j, k);
      for (int j = cols; j < kNr; ++j) row[j] = 0.0f;
    }
  }
}

// acc = sum over k in ascending order of a_tile(:, k) * b_panel(k, :).
inline void MicroKernel(const float* __restrict a, const float* __restrict b, int K,
                        VecF (&acc)[kMr][2]) {
#pragma GCC unroll 8
  for (int i = 0; i < kMr; ++i) acc[i][0] = acc[i][1] = VecF{};
  for (int k = 0; k < K; ++k, a += kMr, b += kNr) {
    const VecF b0 = LoadVec(b);
    const VecF b1 = LoadVec(b + kLanes);
#pragma GCC unroll 8
    for (int i = 0; i < kMr; ++i) {
      acc[i][0] += a[i] * b0;
      acc[i][1] += a[i] * b1;
    }
  }
}

// c (M,Ncols) with row stride ldc: c = acc + bias (bias may be null) when !accumulate, or
// c += acc when accumulate; acc = packed_a @ packed_b.
void Gemm(float* c, int64_t ldc, const float* packed_a, const float* packed_b, const float* bias,
          bool accumulate, int M, int ncols, int K) {
  const int tiles = CeilDiv(M, kMr);
  const int panels = CeilDiv(ncols, kNr);
#pragma omp parallel for collapse(2) schedule(static)
  for (int p = 0; p < panels; ++p) {
    for (int r = 0; r < tiles; ++r) {
      VecF acc[kMr][2];
      MicroKernel(packed_a + static_cast<int64_t>(r) * K * kMr,
                  packed_b + static_cast<int64_t>(p) * K * kNr, K, acc);
      const int rows = std::min(kMr, M - r * kMr);
      const int cols = std::min(kNr, ncols - p * kNr);
      float tile[kMr][kNr];
      for (int i = 0; i < kMr; ++i) {
        StoreVec(&tile[i][0], acc[i][0]);
        StoreVec(&tile[i][kLanes], acc[i][1]);
      }
      const int j0 = p * kNr;
      for (int i = 0; i < rows; ++i) {
        float* out = c + (static_cast<int64_t>(r) * kMr + i) * ldc + j0;
        if (accumulate) {
          for (int j = 0; j < cols; ++j) out[j] += tile[i][j];
        } else if (bias != nullptr) {
          for (int j = 0; j < cols; ++j) out[j] = tile[i][j] + bias[j0 + j];
        } else {
          for (int j = 0; j < cols; ++j) out[j] = tile[i][j];
        }
      }
    }
  }
}

float* Scratch(std::vector<float>& buf, size_t n) {
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// Packing buffers, kept by the thread that issues ops and reused across calls.
thread_local std::vector<float> scratch_a;
thread_local std::vector<float> scratch_b;

// c (+)= A (M,K) @ B (K,Ncols), A(i,k) = a.at(i,k), B(k,j) = b.at(j,k).
void PackAndGemm(float* c, int64_t ldc, View a, View b, const float* bias, bool accumulate, int M,
                 int ncols, int K) {
  float* pa = Scratch(scratch_a, static_cast<size_t>(CeilDiv(M, kMr)) * kMr * K);
  float* pb = Scratch(scratch_b, static_cast<size_t>(CeilDiv(ncols, kNr)) * kNr * K);
  PackA(pa, a, M, K);
  PackB(pb, b, K, ncols);
  Gemm(c, ldc, pa, pb, bias, accumulate, M, ncols, K);
}

}  // namespace

void MatmulForward(float* out, const float* inp, const float* weight, const float* bias, int N,
                   int C, int OC) {
  // A = inp (N,C); B(c, o) = weight[o, c].
  PackAndGemm(out, OC, View{inp, C, 1}, View{weight, C, 1}, bias, false, N, OC, C);
}

void MatmulBackward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                    const float* weight, int N, int C, int OC) {
  // dinp (N,C) = dout (N,OC) @ weight (OC,C): B(o, c) = weight[o, c].
  PackAndGemm(dinp, C, View{dout, OC, 1}, View{weight, 1, C}, nullptr, false, N, C, OC);
  // dweight (OC,C) += dout^T (OC,N) @ inp (N,C): A(o, n) = dout[n, o]; B(n, c) = inp[n, c].
  PackAndGemm(dweight, C, View{dout, 1, OC}, View{inp, 1, C}, nullptr, true, OC, C, N);
  if (dbias != nullptr) BiasGradient(dbias, dout, N, OC);
}

void BiasGradient(float* dbias, const float* dout, int N, int OC) {
  constexpr size_t kBlock = 64;
  ParallelForBlocks(OC, kBlock, [&](size_t begin, size_t end) {
    float sum[kBlock] = {};
    const size_t w = end - begin;
    for (int n = 0; n < N; ++n) {
      const float* row = dout + static_cast<int64_t>(n) * OC + begin;
      for (size_t j = 0; j < w; ++j) sum[j] += row[j];
    }
    for (size_t j = 0; j < w; ++j) dbias[begin + j] += sum[j];
  });
}

}  // namespace spillway::kernels::cpu
