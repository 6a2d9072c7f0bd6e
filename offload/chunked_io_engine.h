// ChunkedIoEngine: what both IoEngines share, so they behave the same by construction:
// request checks, splitting into block_size chunks, tickets, the engine-owned buffers, and the
// retry rules for each completion (short I/O, -EAGAIN/-EINTR, errors; see io_engine.h).
//
// A backend moves chunks: it takes them with PopPendingLocked(), performs each as one
// pread/pwrite-like call at (file, offset, data, length), and hands the result (bytes or
// -errno) to CompleteLocked(), which either finishes the chunk or puts the remainder back at
// the front of the pending queue, to be issued again. Everything runs under mu_ (functions
// named *Locked expect it held), except the system calls themselves.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "offload/buffer.h"
#include "offload/io_engine.h"

namespace spillway {

class ChunkedIoEngine : public IoEngine {
 public:
  absl::StatusOr<Ticket> SubmitRead(const NvmeFile& file, uint64_t offset,
                                    std::span<std::byte> dst) override;
  absl::StatusOr<Ticket> SubmitWrite(const NvmeFile& file, uint64_t offset,
                                     std::span<const std::byte> src) override;
  absl::Status Wait(Ticket ticket) override;
  bool Done(Ticket ticket) override;
  absl::Status WaitAll() override;
  int buffer_count() const override { return static_cast<int>(buffers_.size()); }
  std::span<std::byte> buffer(int index) override { return buffers_.at(index).span(); }
  absl::StatusOr<std::unique_ptr<NvmeFile>> CreateFile(absl::string_view name,
                                                       uint64_t bytes) override;

 protected:
  struct Chunk {
    Ticket ticket;
    IoOp op;
    const NvmeFile* file;
    uint64_t offset;   // where the next attempt starts in the file
    std::byte* data;   // and in memory
    size_t length;     // bytes left
    int buffer_index;  // the engine buffer holding [data, data + length), or -1
    int retry = 0;     // attempts so far after the first
    int stalls = 0;    // attempts in a row that moved no whole 4 KiB block
  };

  // The engine's buffers, allocated from `options` (buffer_count x buffer_size).
  static absl::StatusOr<std::vector<Buffer>> AllocateBuffers(const IoOptions& options);
  ChunkedIoEngine(IoOptions options, std::vector<Buffer> buffers);

  const IoOptions& options() const { return options_; }
  const std::vector<Buffer>& buffers() const { return buffers_; }

  // Starts work on pending chunks (pending_ just grew).
  virtual void IssuePendingLocked() = 0;

  bool HasPendingLocked() const { return !pending_.empty(); }
  // The next chunk to perform, or null. Chunks of requests that have failed already are
  // finished here without I/O.
  std::unique_ptr<Chunk> PopPendingLocked();
  // Puts a popped chunk back at the front of the queue (the backend could not start it).
  void RequeueLocked(std::unique_ptr<Chunk> chunk) { pending_.push_front(std::move(chunk)); }
  // Acts on the result of one attempt (bytes moved, or -errno), after the completion filter:
  // finishes the chunk or requeues its remainder. The backend then issues pending work.
  void CompleteLocked(std::unique_ptr<Chunk> chunk, int result);
  // The engine cannot go on (its ring broke): every Wait returns `status` from now on.
  void FailEngineLocked(absl::Status status);
  // Waits until no request is outstanding, for destructors; ignores errors.
  void DrainForShutdown();

  std::mutex mu_;

 private:
  struct Request {
    size_t chunks_left = 0;
    absl::Status status;
  };

  absl::StatusOr<Ticket> Submit(IoOp op, const NvmeFile& file, uint64_t offset, std::byte* data,
                                size_t bytes);
  void FinishChunkLocked(const Chunk& chunk, absl::Status status);

  const IoOptions options_;
  std::vector<Buffer> buffers_;
  std::condition_variable done_;  // a request finished, or the engine failed
  // Guarded by mu_:
  Ticket next_ticket_ = 1;
  absl::flat_hash_map<Ticket, Request> requests_;
  std::deque<std::unique_ptr<Chunk>> pending_;
  absl::Status fatal_;
};

}  // namespace spillway
