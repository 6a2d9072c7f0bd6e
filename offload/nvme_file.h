// NvmeFile: one preallocated scratch file of the NVMe tier, opened for direct I/O.
//
// Create() makes "<nvme_path>/spillway.<pid>.<name>", opens it with O_DIRECT, preallocates
// `bytes` rounded up to kNvmeAlignment with fallocate, and checks that a direct read works.
// Errors name the path and say what to do:
//  - NotFound: nvme_path does not exist or is not a directory;
//  - PermissionDenied: nvme_path is not writable (read-only filesystem, permissions, /proc);
//  - ResourceExhausted: not enough free space for the preallocation (bytes needed vs free,
//    from statvfs), checked before fallocate so a failed run never fills the disk.
// A filesystem that refuses O_DIRECT (tmpfs on older kernels, some FUSE/overlay mounts) gets
// buffered I/O instead, with one warning line; direct() tells which.
// The file is closed and removed when the NvmeFile is destroyed: no I/O on it may be
// outstanding then. Not copyable or movable (the I/O engine keeps pointers to it).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "offload/io_warning.h"

namespace spillway {

// Offsets, lengths and buffer addresses of NVMe I/O are multiples of this (O_DIRECT's rule).
inline constexpr uint64_t kNvmeAlignment = 4096;

inline constexpr uint64_t RoundUpToNvmeAlignment(uint64_t bytes) {
  return (bytes + kNvmeAlignment - 1) / kNvmeAlignment * kNvmeAlignment;
}

// OK if `nvme_path` is an existing, writable directory; the errors of Create() otherwise.
absl::Status CheckNvmePath(const std::string& nvme_path);

class NvmeFile {
 public:
  static absl::StatusOr<std::unique_ptr<NvmeFile>> Create(const std::string& nvme_path,
                                                          absl::string_view name, uint64_t bytes,
                                                          const WarningSink& warn = WarnToStderr);

  NvmeFile(const NvmeFile&) = delete;
  NvmeFile& operator=(const NvmeFile&) = delete;
  ~NvmeFile();

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }  // a multiple of kNvmeAlignment
  bool direct() const { return direct_; }

 private:
  NvmeFile(int fd, std::string path, uint64_t size, bool direct)
      : fd_(fd), path_(std::move(path)), size_(size), direct_(direct) {}

  int fd_;
  std::string path_;
  uint64_t size_;
  bool direct_;
};

}  // namespace spillway
