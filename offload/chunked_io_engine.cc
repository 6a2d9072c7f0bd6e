#include "offload/chunked_io_engine.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace spillway {
namespace {

absl::string_view OpName(IoOp op) { return op == IoOp::kRead ? "read" : "write"; }

std::string Describe(IoOp op, size_t bytes, uint64_t offset, const NvmeFile& file) {
  return absl::StrCat("NVMe ", OpName(op), " of ", bytes, " bytes at offset ", offset, " of ",
                      file.path());
}

absl::Status AttemptError(IoOp op, size_t bytes, uint64_t offset, const NvmeFile& file, int err) {
  const absl::Status status = PosixError(err, Describe(op, bytes, offset, file));
  absl::string_view hint;
  if (err == ENOSPC || err == EDQUOT) {
    hint = ": the disk under nvme_path is full; free space there or set nvme_path to a larger disk";
  } else if (err == EIO) {
    hint = ": the disk reported an I/O error; check dmesg and the disk's health";
  }
  return absl::Status(status.code(), absl::StrCat(status.message(), hint));
}

}  // namespace

absl::StatusOr<std::vector<Buffer>> ChunkedIoEngine::AllocateBuffers(const IoOptions& options) {
  std::vector<Buffer> buffers;
  for (int i = 0; i < options.buffer_count; ++i) {
    SPW_ASSIGN_OR_RETURN(
        Buffer b, Buffer::Allocate(options.buffer_size, Tier::kHost,
                                   absl::StrCat("NVMe I/O buffer ", i, " of ", options.buffer_count,
                                                " (buffer_count x buffer_size)")));
    buffers.push_back(std::move(b));
  }
  return buffers;
}

ChunkedIoEngine::ChunkedIoEngine(IoOptions options, std::vector<Buffer> buffers)
    : options_(std::move(options)), buffers_(std::move(buffers)) {}

absl::StatusOr<IoEngine::Ticket> ChunkedIoEngine::SubmitRead(const NvmeFile& file, uint64_t offset,
                                                             std::span<std::byte> dst) {
  return Submit(IoOp::kRead, file, offset, dst.data(), dst.size());
}

absl::StatusOr<IoEngine::Ticket> ChunkedIoEngine::SubmitWrite(const NvmeFile& file, uint64_t offset,
                                                              std::span<const std::byte> src) {
  // The engine only reads from `src` for a write; Chunk keeps one non-const pointer for both.
  return Submit(IoOp::kWrite, file, offset, const_cast<std::byte*>(src.data()), src.size());
}

absl::StatusOr<IoEngine::Ticket> ChunkedIoEngine::Submit(IoOp op, const NvmeFile& file,
                                                         uint64_t offset, std::byte* data,
                                                         size_t bytes) {
  if (reinterpret_cast<uintptr_t>(data) % kNvmeAlignment != 0 || offset % kNvmeAlignment != 0 ||
      bytes % kNvmeAlignment != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        Describe(op, bytes, offset, file),
        ": the buffer address, offset and length must be multiples of ", kNvmeAlignment));
  }
  if (offset > file.size() || bytes > file.size() - offset) {
    return absl::OutOfRangeError(absl::StrCat(Describe(op, bytes, offset, file),
                                              " reaches past the end of the file (", file.size(),
                                              " bytes)"));
  }
  int buffer_index = -1;
  for (size_t i = 0; i < buffers_.size(); ++i) {
    const std::byte* begin = buffers_[i].data();
    if (data >= begin && data + bytes <= begin + buffers_[i].bytes()) {
      buffer_index = static_cast<int>(i);
      break;
    }
  }

  std::lock_guard<std::mutex> lock(mu_);
  if (!fatal_.ok()) return fatal_;
  const Ticket ticket = next_ticket_++;
  Request& request = requests_[ticket];
  for (size_t done = 0; done < bytes; done += options_.block_size) {
    const size_t length = std::min(options_.block_size, bytes - done);
    pending_.push_back(std::make_unique<Chunk>(
        Chunk{ticket, op, &file, offset + done, data + done, length, buffer_index}));
    ++request.chunks_left;
  }
  if (request.chunks_left > 0) IssuePendingLocked();
  return ticket;
}

std::unique_ptr<ChunkedIoEngine::Chunk> ChunkedIoEngine::PopPendingLocked() {
  while (!pending_.empty()) {
    std::unique_ptr<Chunk> chunk = std::move(pending_.front());
    pending_.pop_front();
    if (requests_.at(chunk->ticket).status.ok()) return chunk;
    FinishChunkLocked(*chunk, absl::OkStatus());
  }
  return nullptr;
}

void ChunkedIoEngine::CompleteLocked(std::unique_ptr<Chunk> chunk, int result) {
  if (options_.completion_filter) {
    result = options_.completion_filter(
        IoAttempt{chunk->op, chunk->file->path(), chunk->offset, chunk->length, chunk->retry},
        result);
  }
  auto it = requests_.find(chunk->ticket);
  if (it == requests_.end()) return;  // abandoned after a fatal engine error
  if (!it->second.status.ok()) {      // the request failed already: no more attempts
    FinishChunkLocked(*chunk, absl::OkStatus());
    return;
  }
  const IoOp op = chunk->op;
  const NvmeFile& file = *chunk->file;
  if (result == static_cast<int64_t>(chunk->length)) {
    FinishChunkLocked(*chunk, absl::OkStatus());
    return;
  }
  if (result < 0 && result != -EAGAIN && result != -EINTR) {
    FinishChunkLocked(*chunk, AttemptError(op, chunk->length, chunk->offset, file, -result));
    return;
  }
  if (result > static_cast<int64_t>(chunk->length)) {
    FinishChunkLocked(
        *chunk, absl::InternalError(absl::StrCat(Describe(op, chunk->length, chunk->offset, file),
                                                 " moved ", result, " bytes, more than asked")));
    return;
  }
  // Short, -EAGAIN or -EINTR: go on from the last whole block moved (O_DIRECT needs aligned
  // offsets; moving part of a block again is harmless, the buffer holds the same bytes).
  const size_t advance = result > 0 ? result / kNvmeAlignment * kNvmeAlignment : 0;
  chunk->stalls = advance == 0 ? chunk->stalls + 1 : 0;
  if (chunk->stalls > kMaxRetries) {
    FinishChunkLocked(*chunk,
                      absl::UnavailableError(absl::StrCat(
                          Describe(op, chunk->length, chunk->offset, file), " made no progress in ",
                          kMaxRetries, " attempts in a row (last result ", result, ")")));
    return;
  }
  chunk->offset += advance;
  chunk->data += advance;
  chunk->length -= advance;
  ++chunk->retry;
  pending_.push_front(std::move(chunk));
}

void ChunkedIoEngine::FinishChunkLocked(const Chunk& chunk, absl::Status status) {
  Request& request = requests_.at(chunk.ticket);
  if (!status.ok() && request.status.ok()) request.status = std::move(status);
  if (--request.chunks_left == 0) done_.notify_all();
}

void ChunkedIoEngine::FailEngineLocked(absl::Status status) {
  if (fatal_.ok()) fatal_ = std::move(status);
  done_.notify_all();
}

absl::Status ChunkedIoEngine::Wait(Ticket ticket) {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (!fatal_.ok()) return fatal_;
    auto it = requests_.find(ticket);
    if (it == requests_.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "NVMe I/O ticket ", ticket, " is not outstanding (never submitted, or waited already)"));
    }
    if (it->second.chunks_left == 0) {
      absl::Status status = std::move(it->second.status);
      requests_.erase(it);
      return status;
    }
    done_.wait(lock);
  }
}

bool ChunkedIoEngine::Done(Ticket ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = requests_.find(ticket);
  return !fatal_.ok() || it == requests_.end() || it->second.chunks_left == 0;
}

absl::Status ChunkedIoEngine::WaitAll() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (!fatal_.ok()) return fatal_;
    const bool busy = std::any_of(requests_.begin(), requests_.end(),
                                  [](const auto& entry) { return entry.second.chunks_left > 0; });
    if (!busy) break;
    done_.wait(lock);
  }
  Ticket first_failed = 0;
  absl::Status status;
  for (auto& [ticket, request] : requests_) {
    if (!request.status.ok() && (first_failed == 0 || ticket < first_failed)) {
      first_failed = ticket;
      status = request.status;
    }
  }
  requests_.clear();
  return status;
}

void ChunkedIoEngine::DrainForShutdown() { WaitAll().IgnoreError(); }

absl::StatusOr<std::unique_ptr<NvmeFile>> ChunkedIoEngine::CreateFile(absl::string_view name,
                                                                      uint64_t bytes) {
  if (options_.nvme_path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot create NVMe file ", name, ": nvme_path is not set; set it to a directory"));
  }
  return NvmeFile::Create(options_.nvme_path, name, bytes, options_.warn);
}

}  // namespace spillway
