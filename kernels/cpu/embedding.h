// Token + position embedding (see kernels/ops.h for the contracts).
#pragma once

#include <cstdint>

namespace spillway::kernels::cpu {

// out (B,T,C) = wte[tokens[b,t], :] + wpe[t, :] (wpe may be null: no position embedding)
void EmbeddingForward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B,
                      int T, int C);

// dwte[tokens[b,t], :] += dout[b,t,:]; dwpe[t, :] += sum_b dout[b,t,:] (dwpe may be null). Each
// thread owns a block of channels and adds the positions in a fixed order.
void EmbeddingBackward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B,
                       int T, int C);

}  // namespace spillway::kernels::cpu
