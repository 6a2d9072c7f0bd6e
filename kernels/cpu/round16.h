// Rounding fp32 values to a 16-bit float format and back, for the CPU backend's mixed-precision
// matmuls (kernels/ops.h, SetMatmulPrecision).
#pragma once

#include <cstddef>

#include "kernels/ops.h"

namespace spillway::kernels::cpu {

// out[i] = x[i] rounded to `precision` (to nearest even; fp16 overflow gives infinity; NaN
// stays NaN), as a float. kFp32 copies. out may alias x.
void RoundToPrecision(MatmulPrecision precision, const float* x, float* out, size_t n);

}  // namespace spillway::kernels::cpu
