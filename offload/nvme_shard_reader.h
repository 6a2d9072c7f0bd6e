// NvmeShardReader: reads Units' fp32 parameter shards from NVMe into host staging buffers,
// asynchronously, for offload_param.device = "nvme", where each shard is the optimizer's fp32
// master array in its NVMe file (engine/train/external_optimizer_state.h says where). A shard
// whose master lies in host memory (offload_optimizer.nvme_ratio below 1) is not copied: its
// read hands back that memory.
//
// It has an IoEngine of its own: the optimizer's engine belongs to the thread that steps it.
// Staging: one buffer per slot (the residency's gathered-parameter buffers), allocated once in
// `tier` (pinned memory for a GPU backend, so that the copy up is asynchronous), each
// slot_numels[s] floats rounded up to 4 KiB. A slot holds one read at a time: StartRead(u, s),
// then FinishRead(s), which waits for it; the caller leaves the staging alone until its copy up
// has landed. The writer of a master array must have finished writing it before StartRead
// (the residency's params-needed hook orders this). Errors name the file (IoEngine's).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/tier.h"
#include "offload/buffer.h"
#include "offload/io_engine.h"
#include "offload/nvme_file.h"

namespace spillway {

class NvmeShardReader {
 public:
  // Where one Unit's shard lies: `numel` floats at `offset` (a multiple of 4 KiB) of `file`,
  // whose array is padded to 4 KiB (NvmeBytesForFloats) so whole blocks can be read; or, with
  // no file, at `memory` (host memory).
  struct Location {
    const NvmeFile* file = nullptr;
    uint64_t offset = 0;
    size_t numel = 0;
    const float* memory = nullptr;
  };
  // Bytes read and seconds the caller blocked in FinishRead since the last TakeStats().
  struct Stats {
    uint64_t bytes = 0;
    double wait_s = 0.0;
  };

  // `units[u]`: Unit u's shard (every file and memory must outlive the reader); an empty
  // Location for a Unit never read here. Errors: CreateIoEngine's, a Location with neither a
  // file nor memory but elements, or misaligned, and allocation failures naming the staging.
  static absl::StatusOr<std::unique_ptr<NvmeShardReader>> Create(
      const IoOptions& io, std::vector<Location> units, const std::vector<size_t>& slot_numels,
      Tier tier);
  ~NvmeShardReader();  // waits for the reads in flight

  // Starts reading Unit `unit`'s shard into slot `slot`'s staging (which must be idle and
  // large enough).
  absl::Status StartRead(int unit, int slot);
  // Waits for slot `slot`'s read; the shard's floats in its staging.
  absl::StatusOr<const float*> FinishRead(int slot);
  // Whether FinishRead(slot) would return at once.
  bool Ready(int slot);

  size_t host_bytes() const;
  absl::string_view engine_name() const { return engine_->name(); }
  Stats TakeStats();

 private:
  struct Slot {
    Buffer staging;
    IoEngine::Ticket ticket = 0;
    bool reading = false;
    const float* memory = nullptr;  // the shard when it lies in memory
  };
  NvmeShardReader() = default;

  std::vector<Location> units_;
  std::vector<Slot> slots_;
  std::unique_ptr<IoEngine> engine_;
  Stats stats_;
};

}  // namespace spillway
