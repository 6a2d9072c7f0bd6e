// AdamW with compact optimizer state (docs/optimizer_state.md), for optimizer state that must
// fit in less host memory or move less over PCIe / NVMe. Each is the math of kernels/ops.h in
// fp32 (the operation order of cpu_adam_kernels.h), with state loaded from and rounded back to
// a smaller format every step:
//  - AdamWBf16State: m and v stored as bf16; params fp32.
//  - AdamW8bitState: m and v block-wise 8-bit (kernels/cpu/quant8.h), one fp32 scale per block
//    of kQuantBlock elements: m_scale and v_scale hold ceil(n / kQuantBlock) floats.
//  - AdamWBf16Master: params stored as bf16 with a bf16 Kahan compensation buffer `comp` (start
//    it at 0) holding what bf16 rounding dropped, added back on the next step; m, v fp32.
// m and v are rounded stochastically (unbiased): with beta2 = 0.999, v moves by 0.1% a step,
// less than half a bf16 or 8-bit code step, so round-to-nearest would freeze it. The random bits
// are a hash of (step, element or block index), so results stay deterministic and, as every
// kernel is elementwise or per block over fixed chunks, independent of the thread count.
// bf16 values are raw bits (core/safetensors.h conversions).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/ops.h"

namespace spillway::kernels::cpu {

void AdamWBf16State(float* param, const float* grad, uint16_t* m, uint16_t* v, size_t n,
                    const AdamWParams& p);

void AdamW8bitState(float* param, const float* grad, uint8_t* m, float* m_scale, uint8_t* v,
                    float* v_scale, size_t n, const AdamWParams& p);

void AdamWBf16Master(uint16_t* param, uint16_t* comp, const float* grad, float* m, float* v,
                     size_t n, const AdamWParams& p);

}  // namespace spillway::kernels::cpu
