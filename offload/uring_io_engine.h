// UringIoEngine: the IoEngine on io_uring (liburing).
//
// One ring of queue_depth entries. The caller's thread prepares and submits chunks; a
// completion thread waits for completions, retries or finishes chunks and submits more, so
// I/O progresses while the caller computes. Submission and completion each hold the engine's
// mutex; only the completion thread waits on the completion queue.
//
// The engine's buffers are registered as fixed buffers (io_uring_register_buffers) when
// RLIMIT_MEMLOCK allows buffer_count x buffer_size; otherwise, or if registering fails, a
// warning names the limit and the bytes needed and requests use plain reads and writes.
// Requests on other 4 KiB-aligned host memory always use plain reads and writes.
#pragma once

#include <liburing.h>

#include <memory>
#include <thread>

#include "offload/chunked_io_engine.h"

namespace spillway {

class UringIoEngine final : public ChunkedIoEngine {
 public:
  // Unavailable, with the reason, when the kernel refuses io_uring (ENOSYS; EPERM from
  // kernel.io_uring_disabled or a seccomp filter) or lacks IORING_OP_READ/WRITE (Linux < 5.6).
  static absl::StatusOr<std::unique_ptr<UringIoEngine>> Create(IoOptions options);
  ~UringIoEngine() override;

  absl::string_view name() const override { return "io_uring"; }
  bool registered_buffers() const override { return registered_; }

 private:
  UringIoEngine(IoOptions options, std::vector<Buffer> buffers)
      : ChunkedIoEngine(std::move(options), std::move(buffers)) {}
  absl::Status InitRing();
  void RegisterBuffers();
  void IssuePendingLocked() override;
  // Submits what is prepared in the submission queue; false after a fatal error.
  bool SubmitLocked();
  void CompletionLoop();

  io_uring ring_;
  bool ring_ready_ = false;
  bool registered_ = false;
  int in_flight_ = 0;  // guarded by mu_
  std::thread completer_;
};

}  // namespace spillway
