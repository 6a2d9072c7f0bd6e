// The CPU backend of kernels::Ops: fp32, OpenMP, bitwise independent of the thread count.
#pragma once

#include <memory>

#include "kernels/ops.h"

namespace spillway::kernels {

std::unique_ptr<Ops> MakeCpuOps();

}  // namespace spillway::kernels
