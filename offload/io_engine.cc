#include "offload/io_engine.h"

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "offload/posix_io_engine.h"
#include "offload/uring_io_engine.h"

namespace spillway {

absl::Status ValidateIoOptions(const IoOptions& o) {
  constexpr size_t kMiB = size_t{1} << 20;
  if (o.block_size < kMiB || o.block_size > 8 * kMiB || o.block_size % kNvmeAlignment != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "block_size ", o.block_size, " must be 1-8 MiB (1048576-8388608) and a multiple of 4096"));
  }
  if (o.queue_depth < 1 || o.queue_depth > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue_depth ", o.queue_depth, " must be between 1 and 1024"));
  }
  if (o.buffer_count < 0 || o.buffer_count > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("buffer_count ", o.buffer_count, " must be between 0 and 1024"));
  }
  if (o.buffer_size % kNvmeAlignment != 0 || (o.buffer_count > 0 && o.buffer_size == 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("buffer_size ", o.buffer_size,
                     " must be a positive multiple of 4096 when buffer_count > 0"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<IoEngine>> CreateIoEngine(const IoOptions& options) {
  SPW_RETURN_IF_ERROR(ValidateIoOptions(options));
  if (!options.nvme_path.empty()) SPW_RETURN_IF_ERROR(CheckNvmePath(options.nvme_path));
  if (!options.force_fallback) {
    absl::StatusOr<std::unique_ptr<UringIoEngine>> uring = UringIoEngine::Create(options);
    if (uring.ok()) return std::unique_ptr<IoEngine>(std::move(uring).value());
    if (!absl::IsUnavailable(uring.status())) return uring.status();
    options.warn(absl::StrCat(uring.status().message(), "; NVMe I/O uses pread/pwrite threads"));
  }
  SPW_ASSIGN_OR_RETURN(std::unique_ptr<PosixIoEngine> posix, PosixIoEngine::Create(options));
  return std::unique_ptr<IoEngine>(std::move(posix));
}

absl::Status IoEngine::Read(const NvmeFile& file, uint64_t offset, std::span<std::byte> dst) {
  SPW_ASSIGN_OR_RETURN(const Ticket ticket, SubmitRead(file, offset, dst));
  return Wait(ticket);
}

absl::Status IoEngine::Write(const NvmeFile& file, uint64_t offset,
                             std::span<const std::byte> src) {
  SPW_ASSIGN_OR_RETURN(const Ticket ticket, SubmitWrite(file, offset, src));
  return Wait(ticket);
}

}  // namespace spillway
