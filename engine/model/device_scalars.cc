#include "engine/model/device_scalars.h"

#include <algorithm>

#include "core/status.h"

namespace spillway {

absl::StatusOr<DeviceScalars> DeviceScalars::Create(kernels::Ops& ops, size_t count,
                                                    absl::string_view purpose) {
  SPW_ASSIGN_OR_RETURN(Buffer buffer,
                       Buffer::Allocate(count * sizeof(double), ops.memory_tier(), purpose));
  return DeviceScalars(std::move(buffer));
}

void DeviceScalars::Zero(kernels::Ops& ops) {
  // All-zero bits are +0.0 as a double: fill the doubles' words with float zeros.
  ops.Fill(buffer_.as<float>(), 0.0f, buffer_.bytes() / sizeof(float));
}

absl::Status DeviceScalars::Read(kernels::Ops& ops, std::span<double> out) {
  ops.CopyToHost(out.data(), buffer_.data(), std::min(out.size(), size()) * sizeof(double));
  return ops.Synchronize();
}

}  // namespace spillway
