// Softmax cross-entropy over the first V columns of padded logits (see kernels/ops.h).
#pragma once

#include <cstdint>

namespace spillway::kernels::cpu {

// losses (N) = -log softmax(logits[n, :V])[targets[n]], 0 where targets[n] < 0. If
// dlogits_scale != 0, logits (N,Vp) is overwritten with (softmax - onehot) * dlogits_scale,
// 0 for ignored rows and padding columns [V, Vp). The softmax sum is accumulated in double.
void CrossEntropy(float* losses, float* logits, const int32_t* targets, int N, int V, int Vp,
                  float dlogits_scale);

}  // namespace spillway::kernels::cpu
