// Buffer: an owning, aligned, zero-initialised block of memory in one tier (host or GPU).
//
// Move-only; freed on destruction. Allocation failures come back as ResourceExhausted with the
// byte count, the tier and the caller's purpose in the message, never as a crash. Host tiers
// may be read and written through data(); device memory only through a backend's ops and
// copies (kernels::Ops::CopyToBackend / CopyToHost).
#pragma once

#include <cstddef>
#include <span>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/tier.h"

namespace spillway {

class Buffer {
 public:
  static constexpr size_t kHostAlignment = 4096;  // page: O_DIRECT and pinning want it

  Buffer() = default;
  // `purpose` names what the memory is for in an error message ("unit h.3 gradients").
  // Tier kHost, kPinnedHost or kDevice (the last two need a CUDA build and a GPU).
  static absl::StatusOr<Buffer> Allocate(size_t bytes, Tier tier, absl::string_view purpose);

  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  Tier tier() const { return tier_; }
  bool on_host() const { return tier_ == Tier::kHost || tier_ == Tier::kPinnedHost; }
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
  Buffer(std::byte* data, size_t bytes, Tier tier) : data_(data), bytes_(bytes), tier_(tier) {}
  void Free();

  std::byte* data_ = nullptr;
  size_t bytes_ = 0;
  Tier tier_ = Tier::kHost;
};

}  // namespace spillway
