// One AdamW step (torch.optim.AdamW order; see kernels/ops.h for the formula).
#pragma once

#include <cstddef>

#include "kernels/ops.h"

namespace spillway::kernels::cpu {

void AdamW(float* param, const float* grad, float* m, float* v, size_t n, const AdamWParams& p);

}  // namespace spillway::kernels::cpu
