// wgmma.cuh's warpgroup products against the CPU: one warpgroup multiplies one or two 64-row
// halves of a bf16 A (register fragments, both halves in one commit group, as the attention
// kernels do) by a 64 x 64 bf16 tile in one of three 128-byte-swizzled shared buffers: each
// product shape and B layout the kernels use (K-major 64 x 32 at row offsets 0 and 32, K-major
// 64 x 64, MN-major 64 x 64), as four accumulating products over K = 64, and an accumulator
// scaled between two product groups (as the forward's online softmax rescales its output). Exact
// bf16 products summed in fp32 match a double-precision sum to 1e-5 relative. Skips without an
// sm_90 device.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/cuda/wgmma.cuh"

namespace spillway::kernels::cuda::wgmma {
namespace {

constexpr int kSize = 64;  // A halves: 64 x kSize; the tile: kSize x kSize (rows of 128 bytes)

__device__ uint32_t PackPair(const __nv_bfloat16* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

// The A fragments of the warp's 16 rows of a 64-row half of a (row-major, kSize wide), one per 16
// columns.
__device__ void LoadA(uint32_t (&frag)[kSize / 16][4], const __nv_bfloat16* a) {
  const int lane = threadIdx.x % 32, row = threadIdx.x / 32 * 16 + lane / 4;
  const int col = 2 * (lane % 4);
#pragma unroll
  for (int k = 0; k < kSize / 16; ++k) {
    frag[k][0] = PackPair(a + row * kSize + 16 * k + col);
    frag[k][1] = PackPair(a + (row + 8) * kSize + 16 * k + col);
    frag[k][2] = PackPair(a + row * kSize + 16 * k + col + 8);
    frag[k][3] = PackPair(a + (row + 8) * kSize + 16 * k + col + 8);
  }
}

template <int N>
__device__ void StoreC(float* c, const float (&acc)[N / 8][4]) {
  const int lane = threadIdx.x % 32, row = threadIdx.x / 32 * 16 + lane / 4;
#pragma unroll
  for (int n = 0; n < N / 8; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      c[(row + 8 * (e / 2)) * N + 8 * n + 2 * (lane % 4) + e % 2] = acc[n][e];
    }
  }
}

template <int N, int kTransB>
__device__ void Product(float (&acc)[N / 8][4], const uint32_t (&frag)[kSize / 16][4],
                        const __nv_bfloat16* tile, int row0, bool accumulate) {
#pragma unroll
  for (int k = 0; k < kSize / 16; ++k) {
    // K-major: B[k][n] = tile[row0 + n][k]; MN-major: B[k][n] = tile[k][n].
    const __nv_bfloat16* b = kTransB ? tile + 16 * k * kSize : tile + row0 * kSize + 16 * k;
    if constexpr (N == 32) {
      Mma64x32<__nv_bfloat16, kTransB>(acc, frag[k], Descriptor(b), accumulate || k > 0);
    } else {
      Mma64x64<__nv_bfloat16, kTransB>(acc, frag[k], Descriptor(b), accumulate || k > 0);
    }
  }
}

constexpr int kBuffers = 3;

// c (kHalves 64 x N) = a b with b read from shared buffer `buf`, or with `rescale` != 0:
// (a b) * rescale + a b, the accumulators scaled in registers between two product groups.
template <int N, int kTransB, int kHalves>
__global__ void ProductKernel(float* c, const __nv_bfloat16* a, const __nv_bfloat16* tile_g,
                              int row0, int buf, float rescale) {
  __shared__ __align__(1024) __nv_bfloat16 buffers[kBuffers * kSize * kSize];
  __nv_bfloat16* tile = buffers + buf * kSize * kSize;
  for (int i = threadIdx.x; i < kSize * 8; i += blockDim.x) {
    const int row = i / 8, chunk = i % 8;
    *reinterpret_cast<uint4*>(tile + SwizzledChunk(row, chunk)) =
        *reinterpret_cast<const uint4*>(tile_g + row * kSize + 8 * chunk);
  }
  FenceSharedWrites();
  __syncthreads();
  uint32_t frag[kHalves][kSize / 16][4];
#pragma unroll
  for (int h = 0; h < kHalves; ++h) LoadA(frag[h], a + h * 64 * kSize);
  float acc[kHalves][N / 8][4];
  Fence();
#pragma unroll
  for (int h = 0; h < kHalves; ++h) Product<N, kTransB>(acc[h], frag[h], tile, row0, false);
  Commit();
  Wait<0>();
  if (rescale != 0.0f) {
#pragma unroll
    for (int h = 0; h < kHalves; ++h) {
#pragma unroll
      for (int n = 0; n < N / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[h][n][e] *= rescale;
      }
    }
    Fence();
#pragma unroll
    for (int h = 0; h < kHalves; ++h) Product<N, kTransB>(acc[h], frag[h], tile, row0, true);
    Commit();
    Wait<0>();
  }
#pragma unroll
  for (int h = 0; h < kHalves; ++h) StoreC<N>(c + h * 64 * N, acc[h]);
}

// A device copy of `host` (cuda_test_util.h's DeviceArray needs C++20, which nvcc does not get).
template <typename T>
struct DeviceCopy {
  explicit DeviceCopy(const std::vector<T>& host) : size(host.size()) {
    EXPECT_EQ(cudaMalloc(&data, size * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(data, host.data(), size * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DeviceCopy() { cudaFree(data); }
  std::vector<T> Download() const {
    std::vector<T> host(size);
    EXPECT_EQ(cudaMemcpy(host.data(), data, size * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }
  T* data = nullptr;
  size_t size;
};

double RelError(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    norm += static_cast<double>(want[i]) * want[i];
  }
  return std::isfinite(diff) ? std::sqrt(diff / norm) : INFINITY;
}

struct Case {
  int n;
  bool mn_major;
  int row0;
  int halves;
  int buf;
  float rescale;
};

std::string Name(const Case& c) {
  char name[96];
  std::snprintf(name, sizeof(name), "%s 64x%d row0=%d halves=%d buffer=%d rescale=%.2f",
                c.mn_major ? "MN-major" : "K-major", c.n, c.row0, c.halves, c.buf, c.rescale);
  return name;
}

template <int N, int kTransB, int kHalves>
cudaError_t Launch(float* c, const __nv_bfloat16* a, const __nv_bfloat16* tile, const Case& p) {
  ProductKernel<N, kTransB, kHalves><<<1, 128>>>(c, a, tile, p.row0, p.buf, p.rescale);
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  return cudaDeviceSynchronize();
}

template <int kHalves>
cudaError_t LaunchCase(float* c, const __nv_bfloat16* a, const __nv_bfloat16* tile, const Case& p) {
  if (p.n == 32) return Launch<32, 0, kHalves>(c, a, tile, p);
  if (p.mn_major) return Launch<64, 1, kHalves>(c, a, tile, p);
  return Launch<64, 0, kHalves>(c, a, tile, p);
}

TEST(WgmmaProductsTest, MatchTheCpu) {
  int devices = 0;
  cudaDeviceProp prop{};
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0 ||
      cudaGetDeviceProperties(&prop, 0) != cudaSuccess || prop.major != 9) {
    GTEST_SKIP() << "needs an sm_90 device (wgmma)";
  }
  constexpr int kRows = 128;  // two halves of A
  std::vector<__nv_bfloat16> a(kRows * kSize), tile(kSize * kSize);
  std::vector<float> a_f(a.size()), tile_f(tile.size());
  uint32_t state = 12345;
  const auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) / static_cast<float>(1u << 24) - 0.5f;
  };
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = __float2bfloat16(next());
    a_f[i] = __bfloat162float(a[i]);
  }
  for (size_t i = 0; i < tile.size(); ++i) {
    tile[i] = __float2bfloat16(next());
    tile_f[i] = __bfloat162float(tile[i]);
  }
  DeviceCopy<__nv_bfloat16> a_d(a), tile_d(tile);
  for (const Case& c : {Case{32, false, 0, 1, 0, 0.0f}, Case{32, false, 32, 1, 0, 0.0f},
                        Case{64, false, 0, 1, 0, 0.0f}, Case{64, true, 0, 1, 0, 0.0f},
                        Case{64, false, 0, 1, 0, 0.25f}, Case{64, true, 0, 1, 0, 0.25f},
                        Case{32, false, 32, 2, 1, 0.0f}, Case{64, false, 0, 2, 1, 0.0f},
                        Case{64, false, 0, 2, 2, 0.0f}, Case{64, true, 0, 2, 2, 0.25f}}) {
    SCOPED_TRACE(Name(c));
    const int rows = 64 * c.halves;
    std::vector<float> want(rows * c.n);
    for (int m = 0; m < rows; ++m) {
      for (int n = 0; n < c.n; ++n) {
        double sum = 0.0;
        for (int k = 0; k < kSize; ++k) {
          const float b = c.mn_major ? tile_f[k * kSize + n] : tile_f[(c.row0 + n) * kSize + k];
          sum += static_cast<double>(a_f[m * kSize + k]) * b;
        }
        want[m * c.n + n] = static_cast<float>(sum * (c.rescale != 0.0f ? 1.0 + c.rescale : 1.0));
      }
    }
    DeviceCopy<float> got(std::vector<float>(want.size()));
    const cudaError_t e = c.halves == 1 ? LaunchCase<1>(got.data, a_d.data, tile_d.data, c)
                                        : LaunchCase<2>(got.data, a_d.data, tile_d.data, c);
    ASSERT_EQ(e, cudaSuccess) << cudaGetErrorString(e);
    const double error = RelError(got.Download(), want);
    std::printf("wgmma %s: relative error %.2e\n", Name(c).c_str(), error);
    EXPECT_LT(error, 1e-5);
  }
}

}  // namespace
}  // namespace spillway::kernels::cuda::wgmma
