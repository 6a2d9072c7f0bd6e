#include "offload/tile_stream.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace spillway {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

absl::Status CheckArguments(IoEngine& engine, std::span<const NvmeFile* const> files, size_t n,
                            const TileStreamOptions& o) {
  const size_t tile_bytes = o.tile_floats * sizeof(float);
  if (o.tile_floats == 0 || tile_bytes % kNvmeAlignment != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tile size ", o.tile_floats, " floats must be a positive multiple of 1024 (4 KiB)"));
  }
  if (o.buffers_per_array < 3) {
    return absl::InvalidArgumentError(absl::StrCat("buffers per array ", o.buffers_per_array,
                                                   " must be at least 3 (read, compute, write)"));
  }
  const int needed = static_cast<int>(files.size()) * o.buffers_per_array;
  if (files.empty() || o.first_buffer < 0 || o.first_buffer + needed > engine.buffer_count()) {
    return absl::InvalidArgumentError(
        absl::StrCat("streaming ", files.size(), " arrays with ", o.buffers_per_array,
                     " buffers each from engine buffer ", o.first_buffer, " needs buffer_count >= ",
                     o.first_buffer + needed, " (it is ", engine.buffer_count(), ")"));
  }
  for (int b = o.first_buffer; b < o.first_buffer + needed; ++b) {
    if (engine.buffer(b).size() < tile_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("tiles of ", o.tile_floats,
                                                     " floats need buffer_size >= ", tile_bytes,
                                                     " (it is ", engine.buffer(b).size(), ")"));
    }
  }
  if (!o.file_offsets.empty() && o.file_offsets.size() != files.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(o.file_offsets.size(), " file offsets for ", files.size(), " arrays"));
  }
  for (size_t a = 0; a < files.size(); ++a) {
    const uint64_t offset = o.file_offsets.empty() ? 0 : o.file_offsets[a];
    if (offset % kNvmeAlignment != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("array ", a, " starts at offset ", offset, ", not a multiple of 4 KiB"));
    }
    if (files[a]->size() < offset + NvmeBytesForFloats(n)) {
      return absl::InvalidArgumentError(absl::StrCat(files[a]->path(), " holds ", files[a]->size(),
                                                     " bytes, too few for ", n,
                                                     " floats at offset ", offset));
    }
  }
  return absl::OkStatus();
}

// The tickets of one slot's reads or writes (one per array).
struct TicketGroup {
  std::vector<IoEngine::Ticket> tickets;
  bool busy() const { return !tickets.empty(); }
};

class TileStreamer {
 public:
  TileStreamer(IoEngine& engine, std::span<const NvmeFile* const> files, size_t n,
               const TileStreamOptions& o)
      : engine_(engine),
        files_(files),
        n_(n),
        o_(o),
        reads_(o.buffers_per_array),
        writes_(o.buffers_per_array) {}

  absl::StatusOr<TileStreamStats> Run(const TileCompute& compute) {
    const Clock::time_point start = Clock::now();
    absl::Status status = Loop(compute);
    if (!status.ok()) {
      Abandon();
      return status;
    }
    stats_.total_s = SecondsSince(start);
    return stats_;
  }

 private:
  int depth() const { return o_.buffers_per_array; }
  size_t tile_count() const { return (n_ + o_.tile_floats - 1) / o_.tile_floats; }
  size_t count(size_t tile) const { return std::min(o_.tile_floats, n_ - tile * o_.tile_floats); }
  std::span<std::byte> slot_buffer(size_t array, size_t tile) {
    return engine_.buffer(o_.first_buffer + static_cast<int>(array) * depth() +
                          static_cast<int>(tile % depth()));
  }

  absl::Status Loop(const TileCompute& compute) {
    const size_t tiles = tile_count();
    std::vector<float*> pointers(files_.size());
    size_t next_read = 0;
    for (size_t i = 0; i < tiles; ++i) {
      while (next_read < tiles && next_read <= i + depth() - 2) {
        SPW_RETURN_IF_ERROR(Finish(writes_[next_read % depth()], stats_.write_wait_s));
        SPW_RETURN_IF_ERROR(Submit(IoOp::kRead, next_read));
        ++next_read;
      }
      SPW_RETURN_IF_ERROR(Finish(reads_[i % depth()], stats_.read_wait_s));
      for (size_t a = 0; a < files_.size(); ++a) {
        pointers[a] = reinterpret_cast<float*>(slot_buffer(a, i).data());
      }
      const Clock::time_point start = Clock::now();
      SPW_RETURN_IF_ERROR(
          Annotate(compute(i, pointers.data(), count(i)), absl::StrCat("computing tile ", i)));
      stats_.compute_s += SecondsSince(start);
      SPW_RETURN_IF_ERROR(Submit(IoOp::kWrite, i));
      ++stats_.tiles;
    }
    for (TicketGroup& group : writes_) {
      SPW_RETURN_IF_ERROR(Finish(group, stats_.write_wait_s));
    }
    return absl::OkStatus();
  }

  absl::Status Submit(IoOp op, size_t tile) {
    TicketGroup& group = (op == IoOp::kRead ? reads_ : writes_)[tile % depth()];
    const uint64_t tile_offset = uint64_t{tile} * o_.tile_floats * sizeof(float);
    const size_t bytes = RoundUpToNvmeAlignment(count(tile) * sizeof(float));
    for (size_t a = 0; a < files_.size(); ++a) {
      const uint64_t offset = tile_offset + (o_.file_offsets.empty() ? 0 : o_.file_offsets[a]);
      std::span<std::byte> buffer = slot_buffer(a, tile).first(bytes);
      absl::StatusOr<IoEngine::Ticket> ticket =
          op == IoOp::kRead ? engine_.SubmitRead(*files_[a], offset, buffer)
                            : engine_.SubmitWrite(*files_[a], offset, buffer);
      if (!ticket.ok()) return ticket.status();
      group.tickets.push_back(*ticket);
    }
    (op == IoOp::kRead ? stats_.bytes_read : stats_.bytes_written) += bytes * files_.size();
    return absl::OkStatus();
  }

  // Waits for every ticket of the group; the first error.
  absl::Status Finish(TicketGroup& group, double& seconds) {
    if (!group.busy()) return absl::OkStatus();
    const Clock::time_point start = Clock::now();
    absl::Status status;
    for (IoEngine::Ticket t : group.tickets) status.Update(engine_.Wait(t));
    group.tickets.clear();
    seconds += SecondsSince(start);
    return status;
  }

  // After an error: let every request still in flight finish before the buffers are reused.
  void Abandon() {
    double ignored = 0;
    for (TicketGroup& group : reads_) Finish(group, ignored).IgnoreError();
    for (TicketGroup& group : writes_) Finish(group, ignored).IgnoreError();
  }

  IoEngine& engine_;
  std::span<const NvmeFile* const> files_;
  const size_t n_;
  const TileStreamOptions o_;
  std::vector<TicketGroup> reads_;   // by slot
  std::vector<TicketGroup> writes_;  // by slot
  TileStreamStats stats_;
};

}  // namespace

absl::StatusOr<TileStreamStats> StreamTiles(IoEngine& engine,
                                            std::span<const NvmeFile* const> files, size_t n,
                                            const TileStreamOptions& options,
                                            const TileCompute& compute) {
  SPW_RETURN_IF_ERROR(CheckArguments(engine, files, n, options));
  return TileStreamer(engine, files, n, options).Run(compute);
}

}  // namespace spillway
