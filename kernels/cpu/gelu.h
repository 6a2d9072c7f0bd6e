// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
#pragma once

#include <cstddef>

namespace spillway::kernels::cpu {

// out[i] = gelu(inp[i])
void GeluForward(float* out, const float* inp, size_t n);

// dinp[i] = gelu'(inp[i]) * dout[i]; dinp may alias dout.
void GeluBackward(float* dinp, const float* inp, const float* dout, size_t n);

}  // namespace spillway::kernels::cpu
