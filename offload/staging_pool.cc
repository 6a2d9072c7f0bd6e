#include "offload/staging_pool.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace spillway {

absl::StatusOr<std::unique_ptr<StagingPool>> StagingPool::Create(int count, size_t bytes,
                                                                 Tier tier) {
  if (count < 1 || bytes < 1) {
    return absl::InvalidArgumentError("a staging pool needs at least one buffer of one byte");
  }
  auto pool = std::unique_ptr<StagingPool>(new StagingPool());
  for (int i = 0; i < count; ++i) {
    SPW_ASSIGN_OR_RETURN(Buffer b,
                         Buffer::Allocate(bytes, tier, absl::StrCat("staging buffer ", i)));
    pool->buffers_.push_back(std::move(b));
    pool->free_.push_back(count - 1 - i);
  }
  return pool;
}

int StagingPool::Acquire() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !free_.empty(); });
  const int index = free_.back();
  free_.pop_back();
  return index;
}

void StagingPool::Release(int index) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(index);
  }
  cv_.notify_all();
}

}  // namespace spillway
