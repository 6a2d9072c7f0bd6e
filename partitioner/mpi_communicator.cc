#include "partitioner/mpi_communicator.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "partitioner/mpi_check.h"

namespace spillway {
namespace {

// MPI is initialised once per process; it is finalised with the last communicator if one of
// ours initialised it.
std::mutex mpi_mutex;
int live_communicators = 0;
bool we_initialized_mpi = false;

// Elements of one sum tile; a tile is read from every rank's part before it is written, which
// makes in-place reductions safe.
constexpr size_t kTile = 256;

size_t PartCount(const std::vector<size_t>& split, int q, size_t offset, size_t block) {
  const size_t length = split[q + 1] - split[q];
  return offset < length ? std::min(block, length - offset) : 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> MpiCommunicator::Create(Options options) {
  if (options.max_count < 1 || options.scratch_bytes < sizeof(float)) {
    return absl::InvalidArgumentError(absl::StrCat("MpiCommunicator: max_count ", options.max_count,
                                                   " and scratch_bytes ", options.scratch_bytes,
                                                   " must be positive"));
  }
  std::lock_guard<std::mutex> lock(mpi_mutex);
  int initialized = 0, finalized = 0;
  SPW_MPI_CHECK(MPI_Initialized(&initialized));
  SPW_MPI_CHECK(MPI_Finalized(&finalized));
  if (finalized) {
    return absl::FailedPreconditionError(
        "MpiCommunicator: MPI was already finalised and cannot be initialised again");
  }
  int provided = MPI_THREAD_SINGLE;
  if (!initialized) {
    SPW_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided));
    we_initialized_mpi = true;
  } else {
    SPW_MPI_CHECK(MPI_Query_thread(&provided));
  }
  if (provided < MPI_THREAD_SERIALIZED) {
    if (live_communicators == 0 && we_initialized_mpi) MPI_Finalize();
    return absl::FailedPreconditionError(absl::StrCat("MpiCommunicator: MPI provides thread level ",
                                                      provided, ", MPI_THREAD_SERIALIZED needed"));
  }
  MPI_Comm collectives = MPI_COMM_NULL, messages = MPI_COMM_NULL;
  SPW_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &collectives));
  SPW_MPI_CHECK(MPI_Comm_set_errhandler(collectives, MPI_ERRORS_RETURN));
  SPW_MPI_CHECK(MPI_Comm_dup(collectives, &messages));
  int rank = 0, world_size = 1;
  SPW_MPI_CHECK(MPI_Comm_rank(collectives, &rank));
  SPW_MPI_CHECK(MPI_Comm_size(collectives, &world_size));
  ++live_communicators;
  return std::unique_ptr<Communicator>(
      new MpiCommunicator(options, collectives, messages, rank, world_size));
}

MpiCommunicator::MpiCommunicator(Options options, MPI_Comm collectives, MPI_Comm messages, int rank,
                                 int world_size)
    : options_(options),
      collectives_(collectives),
      messages_(messages),
      rank_(rank),
      world_size_(world_size) {}

MpiCommunicator::~MpiCommunicator() {
  std::lock_guard<std::mutex> lock(mpi_mutex);
  MPI_Comm_free(&messages_);
  MPI_Comm_free(&collectives_);
  if (--live_communicators == 0 && we_initialized_mpi) MPI_Finalize();
}

MpiCommunicator::Split MpiCommunicator::EvenSplit(size_t n) const {
  Split split(world_size_ + 1);
  const size_t base = n / world_size_, extra = n % world_size_;
  for (int q = 0; q < world_size_; ++q) {
    split[q + 1] = split[q] + base + (static_cast<size_t>(q) < extra ? 1 : 0);
  }
  return split;
}

MpiCommunicator::Split MpiCommunicator::BlockSplit(size_t n_per_rank) const {
  Split split(world_size_ + 1);
  for (int q = 0; q < world_size_; ++q) split[q + 1] = split[q] + n_per_rank;
  return split;
}

size_t MpiCommunicator::BlockElements() const {
  const size_t by_scratch = std::max<size_t>(
      1, options_.scratch_bytes / sizeof(float) / static_cast<size_t>(world_size_));
  return std::min(by_scratch, static_cast<size_t>(options_.max_count));
}

size_t MpiCommunicator::LongestPart(const Split& split) const {
  size_t longest = 0;
  for (int q = 0; q < world_size_; ++q) longest = std::max(longest, split[q + 1] - split[q]);
  return longest;
}

absl::Status MpiCommunicator::ReduceScatter(const float* send, float* out, const Split& split) {
  const size_t longest = LongestPart(split);
  if (longest == 0) return absl::OkStatus();
  const size_t block = std::min(BlockElements(), longest);
  scratch_.resize(block * world_size_);
  for (size_t offset = 0; offset < longest; offset += block) {
    const size_t mine = PartCount(split, rank_, offset, block);
    requests_.clear();
    for (int q = 0; q < world_size_; ++q) {
      if (q == rank_) continue;
      if (mine > 0) {
        requests_.emplace_back();
        SPW_MPI_CHECK(MPI_Irecv(scratch_.data() + q * block, static_cast<int>(mine), MPI_FLOAT, q,
                                0, collectives_, &requests_.back()));
      }
      if (const size_t theirs = PartCount(split, q, offset, block); theirs > 0) {
        requests_.emplace_back();
        SPW_MPI_CHECK(MPI_Isend(send + split[q] + offset, static_cast<int>(theirs), MPI_FLOAT, q, 0,
                                collectives_, &requests_.back()));
      }
    }
    SPW_MPI_CHECK(
        MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE));
    const float* own = send + split[rank_] + offset;
    for (size_t tile = 0; tile < mine; tile += kTile) {
      const size_t count = std::min(kTile, mine - tile);
      float sum[kTile];
      for (int q = 0; q < world_size_; ++q) {
        const float* part = (q == rank_ ? own : scratch_.data() + q * block) + tile;
        if (q == 0) {
          std::memcpy(sum, part, count * sizeof(float));
        } else {
          for (size_t i = 0; i < count; ++i) sum[i] += part[i];
        }
      }
      std::memcpy(out + offset + tile, sum, count * sizeof(float));
    }
  }
  return absl::OkStatus();
}

absl::Status MpiCommunicator::Gather(float* data, const Split& split) {
  const size_t block = BlockElements(), longest = LongestPart(split);
  for (size_t offset = 0; offset < longest; offset += block) {
    const size_t mine = PartCount(split, rank_, offset, block);
    requests_.clear();
    for (int q = 0; q < world_size_; ++q) {
      if (q == rank_) continue;
      if (const size_t theirs = PartCount(split, q, offset, block); theirs > 0) {
        requests_.emplace_back();
        SPW_MPI_CHECK(MPI_Irecv(data + split[q] + offset, static_cast<int>(theirs), MPI_FLOAT, q, 0,
                                collectives_, &requests_.back()));
      }
      if (mine > 0) {
        requests_.emplace_back();
        SPW_MPI_CHECK(MPI_Isend(data + split[rank_] + offset, static_cast<int>(mine), MPI_FLOAT, q,
                                0, collectives_, &requests_.back()));
      }
    }
    SPW_MPI_CHECK(
        MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE));
  }
  return absl::OkStatus();
}

absl::Status MpiCommunicator::AllReduceSum(float* data, size_t n) {
  SPW_RETURN_IF_ERROR(CheckBuffers("AllReduceSum", data, data, n));
  const Split split = EvenSplit(n);
  SPW_RETURN_IF_ERROR(ReduceScatter(data, data + split[rank_], split));
  return Gather(data, split);
}

absl::Status MpiCommunicator::AllGather(const float* send, float* recv, size_t n_per_rank) {
  SPW_RETURN_IF_ERROR(CheckBuffers("AllGather", send, recv, n_per_rank));
  float* own = recv + rank_ * n_per_rank;
  if (send != own) std::copy_n(send, n_per_rank, own);
  return Gather(recv, BlockSplit(n_per_rank));
}

absl::Status MpiCommunicator::ReduceScatterSum(const float* send, float* recv, size_t n_per_rank) {
  SPW_RETURN_IF_ERROR(CheckBuffers("ReduceScatterSum", send, recv, n_per_rank));
  return ReduceScatter(send, recv, BlockSplit(n_per_rank));
}

absl::Status MpiCommunicator::Broadcast(void* data, size_t bytes, int root) {
  SPW_RETURN_IF_ERROR(CheckBuffers("Broadcast", data, data, bytes));
  SPW_RETURN_IF_ERROR(CheckRoot(root));
  char* p = static_cast<char*>(data);
  for (size_t offset = 0; offset < bytes; offset += options_.max_count) {
    const int count = static_cast<int>(std::min<size_t>(options_.max_count, bytes - offset));
    SPW_MPI_CHECK(MPI_Bcast(p + offset, count, MPI_BYTE, root, collectives_));
  }
  return absl::OkStatus();
}

absl::Status MpiCommunicator::Send(const void* data, size_t bytes, int peer, int tag) {
  SPW_RETURN_IF_ERROR(CheckBuffers("Send", data, data, bytes));
  SPW_RETURN_IF_ERROR(CheckPeer(peer, tag));
  const char* p = static_cast<const char*>(data);
  size_t offset = 0;
  do {
    const int count = static_cast<int>(std::min<size_t>(options_.max_count, bytes - offset));
    SPW_MPI_CHECK(MPI_Send(p + offset, count, MPI_BYTE, peer, tag, messages_));
    offset += count;
  } while (offset < bytes);
  return absl::OkStatus();
}

absl::Status MpiCommunicator::Recv(void* data, size_t bytes, int peer, int tag) {
  SPW_RETURN_IF_ERROR(CheckBuffers("Recv", data, data, bytes));
  SPW_RETURN_IF_ERROR(CheckPeer(peer, tag));
  char* p = static_cast<char*>(data);
  size_t offset = 0;
  do {
    const int count = static_cast<int>(std::min<size_t>(options_.max_count, bytes - offset));
    MPI_Status status;
    SPW_MPI_CHECK(MPI_Recv(p + offset, count, MPI_BYTE, peer, tag, messages_, &status));
    int received = 0;
    SPW_MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &received));
    if (received != count) {
      return absl::InvalidArgumentError(
          absl::StrCat("Recv of ", bytes, " bytes from rank ", peer, " tag ", tag, ": message of ",
                       offset + received, " bytes (sizes differ between Send and Recv)"));
    }
    offset += count;
  } while (offset < bytes);
  return absl::OkStatus();
}

absl::Status MpiCommunicator::Barrier() {
  SPW_MPI_CHECK(MPI_Barrier(collectives_));
  return absl::OkStatus();
}

absl::StatusOr<bool> MpiCommunicator::AllEqual(uint64_t value) {
  // max(value) and max(~value) = ~min(value): all equal iff max == min.
  const uint64_t mine[2] = {value, ~value};
  uint64_t max[2] = {0, 0};
  SPW_MPI_CHECK(MPI_Allreduce(mine, max, 2, MPI_UINT64_T, MPI_MAX, collectives_));
  return max[0] == ~max[1];
}

void MpiCommunicator::AbortJob(int exit_code) {
  int initialized = 0, finalized = 0;
  if (MPI_Initialized(&initialized) != MPI_SUCCESS || !initialized) return;
  if (MPI_Finalized(&finalized) != MPI_SUCCESS || finalized) return;
  MPI_Abort(MPI_COMM_WORLD, exit_code);
}

}  // namespace spillway
