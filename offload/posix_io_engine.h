// PosixIoEngine: the IoEngine on pread/pwrite, for kernels or containers without io_uring.
//
// min(queue_depth, kMaxThreads) worker threads each take one chunk at a time and perform it
// with one pread or pwrite, so up to that many chunks are in flight. Same requests, chunks,
// retries and errors as the io_uring engine (ChunkedIoEngine). Buffers are never registered.
#pragma once

#include <memory>
#include <thread>
#include <vector>

#include "offload/chunked_io_engine.h"

namespace spillway {

class PosixIoEngine final : public ChunkedIoEngine {
 public:
  static constexpr int kMaxThreads = 64;

  static absl::StatusOr<std::unique_ptr<PosixIoEngine>> Create(IoOptions options);
  ~PosixIoEngine() override;

  absl::string_view name() const override { return "pread"; }
  bool registered_buffers() const override { return false; }
  int thread_count() const { return static_cast<int>(workers_.size()); }

 private:
  PosixIoEngine(IoOptions options, std::vector<Buffer> buffers)
      : ChunkedIoEngine(std::move(options), std::move(buffers)) {}
  void IssuePendingLocked() override { work_.notify_all(); }
  void WorkerLoop();

  std::condition_variable work_;  // chunks are pending, or stopping_
  bool stopping_ = false;         // guarded by mu_
  std::vector<std::thread> workers_;
};

}  // namespace spillway
