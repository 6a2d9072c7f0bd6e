#include "offload/uring_io_engine.h"

#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace spillway {
namespace {

absl::string_view InitHint(int err) {
  switch (err) {
    case EPERM:
      return " (io_uring is disabled by kernel.io_uring_disabled or blocked by a seccomp filter, "
             "as in some containers)";
    case ENOSYS:
      return " (this kernel has no io_uring)";
    case ENOMEM:
      return " (out of locked memory: raise RLIMIT_MEMLOCK, e.g. ulimit -l unlimited)";
    default:
      return "";
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<UringIoEngine>> UringIoEngine::Create(IoOptions options) {
  SPW_RETURN_IF_ERROR(ValidateIoOptions(options));
  SPW_ASSIGN_OR_RETURN(std::vector<Buffer> buffers, AllocateBuffers(options));
  std::unique_ptr<UringIoEngine> engine(new UringIoEngine(std::move(options), std::move(buffers)));
  SPW_RETURN_IF_ERROR(engine->InitRing());
  engine->RegisterBuffers();
  engine->completer_ = std::thread([e = engine.get()] { e->CompletionLoop(); });
  return engine;
}

absl::Status UringIoEngine::InitRing() {
  const int depth = options().queue_depth;
  const int ret = io_uring_queue_init(depth, &ring_, 0);
  if (ret < 0) {
    return absl::UnavailableError(absl::StrCat("io_uring_queue_init(", depth,
                                               ") failed: ", std::strerror(-ret), InitHint(-ret)));
  }
  ring_ready_ = true;
  io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
  const bool supported = probe != nullptr && io_uring_opcode_supported(probe, IORING_OP_READ) &&
                         io_uring_opcode_supported(probe, IORING_OP_WRITE);
  if (probe != nullptr) io_uring_free_probe(probe);
  if (!supported) {
    return absl::UnavailableError(
        "this kernel's io_uring lacks IORING_OP_READ/IORING_OP_WRITE (needs Linux 5.6 or later)");
  }
  return absl::OkStatus();
}

void UringIoEngine::RegisterBuffers() {
  if (buffers().empty()) return;
  uint64_t needed = 0;
  std::vector<iovec> iovecs;
  for (const Buffer& b : buffers()) {
    iovecs.push_back({const_cast<std::byte*>(b.data()), b.bytes()});
    needed += b.bytes();
  }
  const std::string what = absl::StrCat(
      "registering ", buffers().size(), " io_uring buffers (buffer_count ", buffers().size(),
      " x buffer_size ", options().buffer_size, " = ", needed, " bytes)");
  const std::string fallback =
      "raise it (ulimit -l unlimited; docker run --ulimit memlock=-1; systemd "
      "LimitMEMLOCK=infinity) or lower buffer_count/buffer_size; using unregistered reads and "
      "writes";
  rlimit limit;
  if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0) {
    options().warn(absl::StrCat(what, ": getrlimit(RLIMIT_MEMLOCK) failed: ", std::strerror(errno),
                                "; using unregistered reads and writes"));
    return;
  }
  const std::string limit_text =
      limit.rlim_cur == RLIM_INFINITY ? "unlimited" : absl::StrCat(limit.rlim_cur, " bytes");
  if (limit.rlim_cur != RLIM_INFINITY && needed > limit.rlim_cur) {
    options().warn(
        absl::StrCat(what, " needs more than RLIMIT_MEMLOCK (", limit_text, "): ", fallback));
    return;
  }
  const int ret = io_uring_register_buffers(&ring_, iovecs.data(), iovecs.size());
  if (ret < 0) {
    options().warn(absl::StrCat(what, " failed: ", std::strerror(-ret), " (RLIMIT_MEMLOCK is ",
                                limit_text, "): ", fallback));
    return;
  }
  registered_ = true;
}

void UringIoEngine::IssuePendingLocked() {
  bool prepared = false;
  while (in_flight_ < options().queue_depth) {
    std::unique_ptr<Chunk> chunk = PopPendingLocked();
    if (chunk == nullptr) break;
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {  // the queue holds queue_depth entries: only after a failed submit
      RequeueLocked(std::move(chunk));
      break;
    }
    const int fd = chunk->file->fd();
    const auto length = static_cast<unsigned>(chunk->length);
    const bool fixed = registered_ && chunk->buffer_index >= 0;
    if (chunk->op == IoOp::kRead) {
      if (fixed) {
        io_uring_prep_read_fixed(sqe, fd, chunk->data, length, chunk->offset, chunk->buffer_index);
      } else {
        io_uring_prep_read(sqe, fd, chunk->data, length, chunk->offset);
      }
    } else if (fixed) {
      io_uring_prep_write_fixed(sqe, fd, chunk->data, length, chunk->offset, chunk->buffer_index);
    } else {
      io_uring_prep_write(sqe, fd, chunk->data, length, chunk->offset);
    }
    io_uring_sqe_set_data(sqe, chunk.release());
    ++in_flight_;
    prepared = true;
  }
  if (prepared) SubmitLocked();
}

bool UringIoEngine::SubmitLocked() {
  for (int attempt = 0;; ++attempt) {
    const int ret = io_uring_submit(&ring_);
    if (ret >= 0) return true;
    if (ret == -EINTR) continue;
    if ((ret == -EAGAIN || ret == -EBUSY) && attempt < kMaxRetries) {
      // The kernel is short of resources or the completion queue is full: let the completion
      // thread drain it, then try again.
      mu_.unlock();
      usleep(1000);
      mu_.lock();
      continue;
    }
    FailEngineLocked(PosixError(-ret, "io_uring_submit (NVMe I/O engine; recreate it)"));
    return false;
  }
}

void UringIoEngine::CompletionLoop() {
  while (true) {
    io_uring_cqe* cqe = nullptr;
    const int ret = io_uring_wait_cqe(&ring_, &cqe);
    if (ret == -EINTR || ret == -EAGAIN) continue;
    std::lock_guard<std::mutex> lock(mu_);
    if (ret < 0) {
      FailEngineLocked(PosixError(-ret, "waiting for io_uring completions"));
      return;
    }
    bool stop = false;
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++seen;
      void* data = io_uring_cqe_get_data(cqe);
      if (data == nullptr) {  // the destructor's no-op
        stop = true;
        continue;
      }
      --in_flight_;
      CompleteLocked(std::unique_ptr<Chunk>(static_cast<Chunk*>(data)), cqe->res);
    }
    io_uring_cq_advance(&ring_, seen);
    if (stop) return;
    IssuePendingLocked();
  }
}

UringIoEngine::~UringIoEngine() {
  if (completer_.joinable()) {
    DrainForShutdown();
    bool woken = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (sqe != nullptr) {
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data(sqe, nullptr);
        woken = SubmitLocked();
      }
    }
    // Without the no-op the thread may never wake; leave it rather than hang.
    if (woken) {
      completer_.join();
    } else {
      completer_.detach();
    }
  }
  if (ring_ready_) io_uring_queue_exit(&ring_);
}

}  // namespace spillway
