// Elementwise Fill, Add and Accumulate (see kernels/ops.h).
#pragma once

#include <cstddef>

namespace spillway::kernels::cpu {

// x[i] = value
void Fill(float* x, float value, size_t n);

// out[i] = a[i] + b[i]; out may alias a or b.
void Add(float* out, const float* a, const float* b, size_t n);

// y[i] += x[i]
void Accumulate(float* y, const float* x, size_t n);

}  // namespace spillway::kernels::cpu
