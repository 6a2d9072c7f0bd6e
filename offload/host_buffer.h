// HostBuffer: an owning, aligned, zero-initialised block of CPU memory (tier kHost).
//
// Move-only; freed on destruction. Allocation failures come back as ResourceExhausted with
// the byte count and the caller's purpose in the message, never as a crash.
#pragma once

#include <cstddef>
#include <span>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "offload/tier.h"

namespace spillway {

class HostBuffer {
 public:
  static constexpr size_t kDefaultAlignment = 4096;  // page: O_DIRECT and pinning want it

  HostBuffer() = default;
  // `purpose` names what the memory is for in an error message ("unit h.3 gradients").
  static absl::StatusOr<HostBuffer> Allocate(size_t bytes, absl::string_view purpose,
                                             size_t alignment = kDefaultAlignment);

  HostBuffer(HostBuffer&& other) noexcept;
  HostBuffer& operator=(HostBuffer&& other) noexcept;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  ~HostBuffer();

  Tier tier() const { return Tier::kHost; }
  size_t bytes() const { return bytes_; }
  std::byte* data() { return data_; }
  const std::byte* data() const { return data_; }

  template <typename T>
  T* as() {
    return reinterpret_cast<T*>(data_);
  }
  template <typename T>
  const T* as() const {
    return reinterpret_cast<const T*>(data_);
  }
  std::span<const std::byte> span() const { return {data_, bytes_}; }
  std::span<std::byte> span() { return {data_, bytes_}; }

 private:
  HostBuffer(std::byte* data, size_t bytes) : data_(data), bytes_(bytes) {}

  std::byte* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace spillway
