// A bounded pool of equal staging buffers in one tier, allocated once and reused: transfers
// between a GPU and CPU memory it cannot copy to asynchronously (pageable memory) pass through
// them in chunks, several in flight at once. Thread-safe: one thread may Acquire while others
// Release.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tier.h"
#include "offload/buffer.h"

namespace spillway {

class StagingPool {
 public:
  // `count` (>= 1) buffers of `bytes` (>= 1) each in `tier`.
  static absl::StatusOr<std::unique_ptr<StagingPool>> Create(int count, size_t bytes, Tier tier);

  // Blocks until a buffer is free and returns its index.
  int Acquire();
  void Release(int index);
  std::byte* data(int index) { return buffers_[index].data(); }

  int count() const { return static_cast<int>(buffers_.size()); }
  size_t buffer_bytes() const { return buffers_.front().bytes(); }
  size_t total_bytes() const { return buffer_bytes() * buffers_.size(); }

 private:
  StagingPool() = default;

  std::vector<Buffer> buffers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> free_;  // indices, guarded by mu_
};

}  // namespace spillway
