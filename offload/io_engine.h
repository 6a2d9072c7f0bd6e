// IoEngine: asynchronous reads and writes between host memory and NvmeFiles.
//
// A request moves `bytes` between a host buffer and a file offset; buffer address, offset and
// length are multiples of kNvmeAlignment (4 KiB) and the range lies inside the file. Submit*
// returns a ticket at once; Wait(ticket) blocks until every byte of that request has moved
// (or failed) and returns its status. The buffer must stay valid and untouched until then.
// Every ticket is waited exactly once (WaitAll() waits for all of them).
//
// Each request is split into chunks of `block_size`; at most `queue_depth` chunks are in
// flight, and the I/O progresses in the background (an io_uring completion thread, or the
// fallback's worker threads), so the caller can compute meanwhile. A short read or write is
// resubmitted for the remainder (from the last 4 KiB boundary, as O_DIRECT requires), -EAGAIN
// and -EINTR are resubmitted as they are, up to kMaxRetries times in a row without progress;
// any other error (EIO, ENOSPC...) fails the request with a Status that names the file, the
// offset and the length. A failed request never reports success: its bytes are undefined.
//
// Implementations: io_uring (offload/uring_io_engine.h) and pread/pwrite threads
// (offload/posix_io_engine.h). CreateIoEngine picks io_uring, else the fallback.
//
// Threads: one caller thread submits and waits. Tests may install a completion filter, which
// runs on an engine thread, one call at a time, and must not call back into the engine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "offload/io_warning.h"
#include "offload/nvme_file.h"

namespace spillway {

enum class IoOp { kRead, kWrite };

// What a completion filter sees: one attempt at one chunk.
struct IoAttempt {
  IoOp op;
  absl::string_view path;
  uint64_t offset;  // file offset of this attempt
  size_t length;    // bytes asked for
  int retry;        // 0 for a chunk's first attempt, then 1, 2... for each resubmission
};

// Test-only: maps the kernel's result of an attempt (bytes moved, or -errno) to the result the
// engine acts on, to inject short I/O, -EAGAIN, -EIO or -ENOSPC. The real I/O has happened.
using CompletionFilter = std::function<int(const IoAttempt& attempt, int result)>;

struct IoOptions {
  std::string nvme_path;        // directory for CreateFile (checked by CreateIoEngine if set)
  size_t block_size = 1 << 20;  // chunk size: 1-8 MiB, a multiple of 4 KiB
  int queue_depth = 32;         // chunks in flight: 1-1024
  int buffer_count = 0;         // engine-owned I/O buffers (registered with io_uring): 0-1024
  size_t buffer_size = 0;       // bytes of each, a multiple of 4 KiB (> 0 if buffer_count > 0)
  bool force_fallback = false;  // use pread/pwrite even where io_uring works
  CompletionFilter completion_filter;  // test-only fault injection; empty in production
  WarningSink warn = WarnToStderr;
};

// OK, or InvalidArgument naming the option and its allowed range.
absl::Status ValidateIoOptions(const IoOptions& options);

class IoEngine {
 public:
  using Ticket = uint64_t;
  static constexpr int kMaxRetries = 100;

  virtual ~IoEngine() = default;

  // "io_uring" or "pread".
  virtual absl::string_view name() const = 0;
  // Whether the engine's buffers are registered as io_uring fixed buffers.
  virtual bool registered_buffers() const = 0;

  // InvalidArgument for a misaligned or out-of-range request; the ticket otherwise.
  virtual absl::StatusOr<Ticket> SubmitRead(const NvmeFile& file, uint64_t offset,
                                            std::span<std::byte> dst) = 0;
  virtual absl::StatusOr<Ticket> SubmitWrite(const NvmeFile& file, uint64_t offset,
                                             std::span<const std::byte> src) = 0;
  // Blocks until the request is done; its status. InvalidArgument for an unknown ticket.
  virtual absl::Status Wait(Ticket ticket) = 0;
  // Whether Wait(ticket) would return at once (done, failed, or unknown), without waiting.
  virtual bool Done(Ticket ticket) = 0;
  // Waits for every outstanding request; the first error among them.
  virtual absl::Status WaitAll() = 0;

  // The engine's own buffers: buffer_count of buffer_size bytes, 4 KiB aligned, zeroed.
  virtual int buffer_count() const = 0;
  virtual std::span<std::byte> buffer(int index) = 0;

  // An NvmeFile under the engine's nvme_path (see NvmeFile::Create), warnings to its sink.
  virtual absl::StatusOr<std::unique_ptr<NvmeFile>> CreateFile(absl::string_view name,
                                                               uint64_t bytes) = 0;

  // Synchronous conveniences: submit and wait.
  absl::Status Read(const NvmeFile& file, uint64_t offset, std::span<std::byte> dst);
  absl::Status Write(const NvmeFile& file, uint64_t offset, std::span<const std::byte> src);
};

// io_uring when the kernel allows it (and !force_fallback), else the pread/pwrite engine with
// a warning saying why. Errors: invalid options, nvme_path checks (CheckNvmePath), memory.
absl::StatusOr<std::unique_ptr<IoEngine>> CreateIoEngine(const IoOptions& options);

}  // namespace spillway
