#include "offload/host_buffer.h"

#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace spillway {

absl::string_view TierName(Tier tier) {
  switch (tier) {
    case Tier::kHost:
      return "cpu";
    case Tier::kPinnedHost:
      return "pinned cpu";
    case Tier::kDevice:
      return "gpu";
    case Tier::kNvme:
      return "nvme";
  }
  return "unknown";
}

absl::StatusOr<HostBuffer> HostBuffer::Allocate(size_t bytes, absl::string_view purpose,
                                                size_t alignment) {
  if (bytes == 0) return HostBuffer();
  const size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  void* p = std::aligned_alloc(alignment, rounded);
  if (p == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", bytes, " bytes of CPU memory for ", purpose));
  }
  std::memset(p, 0, rounded);
  return HostBuffer(static_cast<std::byte*>(p), bytes);
}

HostBuffer::HostBuffer(HostBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

HostBuffer& HostBuffer::operator=(HostBuffer&& other) noexcept {
  if (this != &other) {
    std::free(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

HostBuffer::~HostBuffer() { std::free(data_); }

}  // namespace spillway
