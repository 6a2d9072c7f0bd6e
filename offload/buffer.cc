#include "offload/buffer.h"

#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "offload/device_memory.h"

namespace spillway {

absl::StatusOr<Buffer> Buffer::Allocate(size_t bytes, Tier tier, absl::string_view purpose) {
  if (bytes == 0) return Buffer(nullptr, 0, tier);
  switch (tier) {
    case Tier::kHost: {
      const size_t rounded = (bytes + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
      void* p = std::aligned_alloc(kHostAlignment, rounded);
      if (p == nullptr) {
        return absl::ResourceExhaustedError(
            absl::StrCat("cannot allocate ", bytes, " bytes of CPU memory for ", purpose));
      }
      std::memset(p, 0, rounded);
      return Buffer(static_cast<std::byte*>(p), bytes, tier);
    }
    case Tier::kDevice: {
      absl::StatusOr<void*> p = AllocateDeviceMemory(bytes);
      if (!p.ok()) {
        return Annotate(p.status(),
                        absl::StrCat("allocating ", bytes, " bytes of GPU memory for ", purpose));
      }
      return Buffer(static_cast<std::byte*>(*p), bytes, tier);
    }
    case Tier::kPinnedHost: {
      absl::StatusOr<void*> p = AllocatePinnedHostMemory(bytes);
      if (!p.ok()) {
        // A build without CUDA keeps its FailedPrecondition; a failed pin is out of memory.
        const absl::StatusCode code = p.status().code() == absl::StatusCode::kFailedPrecondition
                                          ? p.status().code()
                                          : absl::StatusCode::kResourceExhausted;
        return absl::Status(
            code, absl::StrCat("cannot allocate ", bytes, " bytes of pinned CPU memory for ",
                               purpose, " (", p.status().message(),
                               "); pinned memory is page-locked RAM: free host memory, or set "
                               "zero_optimization.offload_optimizer.pin_memory to false for "
                               "pageable memory (slower copies); `spillway plan CONFIG` shows "
                               "what each tier needs"));
      }
      return Buffer(static_cast<std::byte*>(*p), bytes, tier);
    }
    default:
      return absl::FailedPreconditionError(
          absl::StrCat("tier ", TierName(tier), " is not available for ", purpose));
  }
}

Buffer::Buffer(Buffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)),
      tier_(other.tier_) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    Free();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    tier_ = other.tier_;
  }
  return *this;
}

Buffer::~Buffer() { Free(); }

void Buffer::Free() {
  if (data_ == nullptr) return;
  if (tier_ == Tier::kDevice) {
    FreeDeviceMemory(data_);
  } else if (tier_ == Tier::kPinnedHost) {
    FreePinnedHostMemory(data_);
  } else {
    std::free(data_);
  }
  data_ = nullptr;
}

}  // namespace spillway
