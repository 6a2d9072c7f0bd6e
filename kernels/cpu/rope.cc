#include "kernels/cpu/rope.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace spillway::kernels::cpu {
namespace {

// sign +1 rotates by +angle (forward), -1 by -angle (backward).
void Rotate(float* qkv, int B, int T, int NH, int NKV, int hs, double theta, float sign) {
  const int half = hs / 2;
  const int64_t row_stride = static_cast<int64_t>(NH + 2 * NKV) * hs;
  ParallelForBlocks(T, 1, [&](size_t t, size_t) {
    thread_local std::vector<float> table;
    table.resize(2 * static_cast<size_t>(half));
    float* cos_t = table.data();
    float* sin_t = cos_t + half;
    for (int i = 0; i < half; ++i) {
      const double angle = static_cast<double>(t) * std::pow(theta, -2.0 * i / hs);
      cos_t[i] = static_cast<float>(std::cos(angle));
      sin_t[i] = sign * static_cast<float>(std::sin(angle));
    }
    for (int b = 0; b < B; ++b) {
      float* row = qkv + (static_cast<int64_t>(b) * T + static_cast<int64_t>(t)) * row_stride;
      for (int head = 0; head < NH + NKV; ++head) {
        float* x0 = row + static_cast<int64_t>(head) * hs;
        float* x1 = x0 + half;
        for (int i = 0; i < half; ++i) {
          const float a = x0[i], b1 = x1[i];
          x0[i] = a * cos_t[i] - b1 * sin_t[i];
          x1[i] = b1 * cos_t[i] + a * sin_t[i];
        }
      }
    }
  });
}

}  // namespace

void RopeForward(float* qkv, int B, int T, int NH, int NKV, int hs, double theta) {
  Rotate(qkv, B, T, NH, NKV, hs, theta, 1.0f);
}

void RopeBackward(float* dqkv, int B, int T, int NH, int NKV, int hs, double theta) {
  Rotate(dqkv, B, T, NH, NKV, hs, theta, -1.0f);
}

}  // namespace spillway::kernels::cpu
