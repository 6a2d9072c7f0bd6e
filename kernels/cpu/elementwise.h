// Elementwise Fill, Add and Accumulate (see kernels/ops.h), and a multithreaded Copy for
// host-side copies of whole Units on the offloaded optimizer's path.
#pragma once

#include <cstddef>

namespace spillway::kernels::cpu {

// x[i] = value
void Fill(float* x, float value, size_t n);

// out[i] = a[i] + b[i]; out may alias a or b.
void Add(float* out, const float* a, const float* b, size_t n);

// y[i] += x[i]
void Accumulate(float* y, const float* x, size_t n);

// dst[i] = src[i]; the arrays must not overlap.
void Copy(float* dst, const float* src, size_t n);

}  // namespace spillway::kernels::cpu
