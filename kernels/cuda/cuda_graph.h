// CUDA graphs for Ops::BeginCapture / EndCapture (kernels/ops.h): a stream's capture, and the
// instantiated graph that OpsGraph::Replay launches on that stream.
#pragma once

#include <cuda_runtime.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/ops.h"

namespace spillway::kernels::cuda {

// Starts recording what this thread issues on `stream`.
absl::Status BeginStreamCapture(cudaStream_t stream);

// Ends the recording and instantiates it; the error that ended a failed capture otherwise, with
// the device's last-error state cleared.
absl::StatusOr<std::unique_ptr<OpsGraph>> EndStreamCapture(cudaStream_t stream);

}  // namespace spillway::kernels::cuda
