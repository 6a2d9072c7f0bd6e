// What the machine has, for the memory planner: free GPU memory (cudaMemGetInfo on the current
// device, when the CUDA backend is built and asked for), available host memory (/proc/meminfo
// MemAvailable, lowered to the cgroup's memory.max headroom where one is set), RLIMIT_MEMLOCK,
// and free disk space at nvme_path (statvfs).
//
// SPILLWAY_PLAN_HARDWARE overrides what was found, for tests and for planning a machine you are
// not on: comma-separated key=size pairs, keys gpu, cpu, pinned, memlock, nvme; sizes are bytes
// with an optional suffix (K, M, G, T as powers of 1024, "KiB" ... or "B"), or "unlimited"
// for memlock. Example: SPILLWAY_PLAN_HARDWARE=gpu=80GiB,cpu=120GiB,nvme=1TiB.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace spillway {

inline constexpr char kHardwareOverrideEnv[] = "SPILLWAY_PLAN_HARDWARE";

struct Hardware {
  std::optional<size_t> gpu_free;  // no value: no GPU found (or not asked for)
  std::optional<size_t> gpu_total;
  size_t host_available = 0;            // bytes a new allocation can take without swapping
  std::optional<size_t> pinned;         // a pinned-memory limit below host_available (override)
  std::optional<size_t> memlock;        // RLIMIT_MEMLOCK; no value: unlimited
  std::optional<size_t> nvme_free;      // free bytes at nvme_path; no value: not found
  std::string nvme_note;                // why nvme_free has no value
  std::vector<std::string> overridden;  // keys set by SPILLWAY_PLAN_HARDWARE

  // Pinned memory is host memory: the smaller of the two limits.
  size_t pinned_available() const;
};

// Looks at this machine; `query_gpu`: ask the current CUDA device (the backend is "cuda").
// `nvme_path` may be empty. Applies SPILLWAY_PLAN_HARDWARE last; a malformed value is
// InvalidArgument naming the variable.
absl::StatusOr<Hardware> DetectHardware(bool query_gpu, const std::string& nvme_path);

// Applies an override spec (the variable's format) to `hw`.
absl::Status ApplyHardwareOverride(absl::string_view spec, Hardware* hw);

// "80GiB", "512M", "1048576": bytes; InvalidArgument otherwise.
absl::StatusOr<size_t> ParseByteSize(absl::string_view text);

}  // namespace spillway
