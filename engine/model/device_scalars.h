// DeviceScalars: a few doubles in a backend's memory that ops accumulate into during a step
// (Ops::AddMean, Ops::AddSumSquares), zeroed and read back together, so that a step's loss
// and gradient norm cost one host wait instead of one per micro-batch and per tensor.
#pragma once

#include <cstddef>
#include <span>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/ops.h"
#include "offload/buffer.h"

namespace spillway {

class DeviceScalars {
 public:
  DeviceScalars() = default;
  // `count` doubles in ops.memory_tier(), zero; `purpose` names them in an allocation error.
  static absl::StatusOr<DeviceScalars> Create(kernels::Ops& ops, size_t count,
                                              absl::string_view purpose);

  size_t size() const { return buffer_.bytes() / sizeof(double); }
  // A backend pointer to scalar i, for the ops to accumulate into.
  double* at(size_t i) { return buffer_.as<double>() + i; }
  // Sets every scalar to +0.0, in issue order with the ops (no wait).
  void Zero(kernels::Ops& ops);
  // Copies every scalar to `out` (size() doubles) and waits for the backend: the only wait.
  absl::Status Read(kernels::Ops& ops, std::span<double> out);

 private:
  explicit DeviceScalars(Buffer buffer) : buffer_(std::move(buffer)) {}
  Buffer buffer_;
};

}  // namespace spillway
