// NvmeOptimizerState: this rank's optimizer state on the NVMe tier (offload_optimizer.device =
// "nvme"): per Unit, three fp32 arrays (master parameters, Adam m, Adam v) in one preallocated
// O_DIRECT file under nvme_path, streamed through host memory one Unit at a time.
//
// File layout: for Unit 0, 1, ... in order, the master, m and v arrays of that Unit, each
// starting on a 4 KiB boundary. The file starts zeroed (fallocate), so m and v start at zero;
// the caller writes the master once (WriteArray) before the first step.
// Host memory: the engine's 3 x buffers_per_array buffers of one tile each, nothing per Unit.
// StreamUnit runs `compute` on every tile of a Unit with the read of the next tile and the
// write of the previous one in flight (offload/tile_stream.h). Errors (I/O, disk full, a
// compute error) name the file; after a failed write the state on disk is undefined, so the run
// must resume from a checkpoint.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "offload/io_engine.h"
#include "offload/nvme_file.h"
#include "offload/tile_stream.h"

namespace spillway {

class NvmeOptimizerState {
 public:
  enum Array { kMaster = 0, kExpAvg = 1, kExpAvgSq = 2 };
  static constexpr int kArrays = 3;

  // compute(first, master, m, v, count): one tile of a Unit's arrays, elements
  // [first, first + count), to update in place.
  using TileFn =
      std::function<absl::Status(size_t first, float* master, float* m, float* v, size_t count)>;

  // `unit_numels[u]`: floats per array of Unit u. The tile is tile_bytes rounded down to 4 KiB
  // (at most the largest Unit's array); io.buffer_count and io.buffer_size are set here.
  // Errors: those of CreateIoEngine and NvmeFile::Create (nvme_path, free space), annotated by
  // the caller with the config key.
  static absl::StatusOr<std::unique_ptr<NvmeOptimizerState>> Create(IoOptions io,
                                                                    std::vector<size_t> unit_numels,
                                                                    size_t tile_bytes,
                                                                    int buffers_per_array,
                                                                    absl::string_view name);

  ~NvmeOptimizerState();

  int num_units() const { return static_cast<int>(numels_.size()); }
  size_t numel(int unit) const { return numels_[unit]; }
  IoEngine& engine() { return *engine_; }
  const NvmeFile& file() const { return *file_; }
  size_t tile_floats() const { return tile_floats_; }
  // Host bytes of the engine's buffers.
  size_t host_bytes() const;

  // Whole-array transfers (initialisation, checkpoints): numel(unit) floats.
  absl::Status WriteArray(int unit, Array array, const float* src);
  absl::Status ReadArray(int unit, Array array, float* dst);

  // One pass over Unit `unit`'s three arrays, tile by tile; adds to stats().
  absl::Status StreamUnit(int unit, const TileFn& compute);

  // Byte offset of Unit `unit`'s `array` in file() (a multiple of 4 KiB).
  uint64_t offset(int unit, Array array) const {
    return unit_offsets_[unit] + static_cast<uint64_t>(array) * NvmeBytesForFloats(numels_[unit]);
  }

  const TileStreamStats& stats() const { return stats_; }
  void ResetStats() { stats_ = TileStreamStats(); }

 private:
  NvmeOptimizerState() = default;

  std::vector<size_t> numels_;
  std::vector<uint64_t> unit_offsets_;
  size_t tile_floats_ = 0;
  int buffers_per_array_ = 3;
  std::unique_ptr<IoEngine> engine_;
  std::unique_ptr<NvmeFile> file_;  // closed before the engine goes
  TileStreamStats stats_;
};

}  // namespace spillway
