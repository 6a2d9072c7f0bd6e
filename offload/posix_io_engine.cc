#include "offload/posix_io_engine.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/status.h"

namespace spillway {

absl::StatusOr<std::unique_ptr<PosixIoEngine>> PosixIoEngine::Create(IoOptions options) {
  SPW_RETURN_IF_ERROR(ValidateIoOptions(options));
  SPW_ASSIGN_OR_RETURN(std::vector<Buffer> buffers, AllocateBuffers(options));
  const int threads = std::min(options.queue_depth, kMaxThreads);
  std::unique_ptr<PosixIoEngine> engine(new PosixIoEngine(std::move(options), std::move(buffers)));
  for (int i = 0; i < threads; ++i) {
    engine->workers_.emplace_back([e = engine.get()] { e->WorkerLoop(); });
  }
  return engine;
}

void PosixIoEngine::WorkerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    while (!stopping_ && !HasPendingLocked()) work_.wait(lock);
    if (stopping_) return;
    std::unique_ptr<Chunk> chunk = PopPendingLocked();
    if (chunk == nullptr) continue;
    lock.unlock();
    const int fd = chunk->file->fd();
    const auto offset = static_cast<off_t>(chunk->offset);
    const ssize_t moved = chunk->op == IoOp::kRead ? pread(fd, chunk->data, chunk->length, offset)
                                                   : pwrite(fd, chunk->data, chunk->length, offset);
    const int result = moved >= 0 ? static_cast<int>(moved) : -errno;
    lock.lock();
    CompleteLocked(std::move(chunk), result);
  }
}

PosixIoEngine::~PosixIoEngine() {
  DrainForShutdown();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    work_.notify_all();
  }
  for (std::thread& t : workers_) t.join();
}

}  // namespace spillway
