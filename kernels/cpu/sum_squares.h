// Sum of squares in double, in a fixed order (see kernels/ops.h).
#pragma once

#include <cstddef>

namespace spillway::kernels::cpu {

// *out = sum of x[i]^2: fixed-size chunks are summed in double (in parallel), then the chunk
// sums are added in order.
void SumSquares(double* out, const float* x, size_t n);

// The sum of x[0, n) in double, added one by one in index order.
double SumInOrder(const float* x, size_t n);

}  // namespace spillway::kernels::cpu
