// Rounding fp32 values to a 16-bit float format and back, for the CPU backend's mixed-precision
// matmuls (kernels/ops.h, SetMatmulPrecision).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/ops.h"

namespace spillway::kernels::cpu {

// out[i] = x[i] rounded to `precision` (to nearest even; fp16 overflow gives infinity; NaN
// stays NaN), as a float. kFp32 copies. out may alias x.
void RoundToPrecision(MatmulPrecision precision, const float* x, float* out, size_t n);

// out[i] = the bits of x[i] rounded to bf16 (FloatToBf16: nearest even, NaN kept).
void PackBf16(const float* x, uint16_t* out, size_t n);
// out[i] = the bf16 x[i] as a float (exact).
void UnpackBf16(const uint16_t* x, float* out, size_t n);

}  // namespace spillway::kernels::cpu
