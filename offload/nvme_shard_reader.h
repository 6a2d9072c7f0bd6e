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
//
// Cache (offload_param.max_in_cpu): `cache_count` more buffers of `cache_numel` floats in the
// same tier keep shards read earlier. When a slot whose staging has that size starts a new
// read, its old shard moves into the cache (buffers are swapped, nothing is copied; the least
// recently used entry gives way), and a read of a shard the slot or the cache still holds
// costs no I/O. This serves the backward the shards the forward read last. Invalidate() drops
// every kept shard: the caller must call it whenever a master array may have changed (an
// optimizer step, a checkpoint load) and before the next StartRead.
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
  // Bytes read, bytes served by the cache instead, and seconds the caller blocked in
  // FinishRead since the last TakeStats().
  struct Stats {
    uint64_t bytes = 0;
    uint64_t cached_bytes = 0;
    double wait_s = 0.0;
  };

  // `units[u]`: Unit u's shard (every file and memory must outlive the reader); an empty
  // Location for a Unit never read here. Errors: CreateIoEngine's, a Location with neither a
  // file nor memory but elements, or misaligned, and allocation failures naming the staging.
  static absl::StatusOr<std::unique_ptr<NvmeShardReader>> Create(
      const IoOptions& io, std::vector<Location> units, const std::vector<size_t>& slot_numels,
      Tier tier, int cache_count = 0, size_t cache_numel = 0);

  // Cache entries for offload_param.max_in_cpu elements of shards of `shard_numel` floats, at
  // most one per shard read from a file (`file_shards`); the planner counts the same.
  static int CacheCount(int64_t max_in_cpu, size_t shard_numel, int file_shards);
  ~NvmeShardReader();  // waits for the reads in flight

  // Starts reading Unit `unit`'s shard into slot `slot`'s staging (which must be idle and
  // large enough).
  absl::Status StartRead(int unit, int slot);
  // Waits for slot `slot`'s read; the shard's floats in its staging (or in host memory).
  absl::StatusOr<const float*> FinishRead(int slot);
  // Whether FinishRead(slot) would return at once.
  bool Ready(int slot);

  // Every shard kept from earlier reads is forgotten (no read may be in flight).
  void Invalidate();

  size_t host_bytes() const;  // staging and cache
  int cache_count() const { return static_cast<int>(cache_.size()); }
  size_t cache_bytes() const;
  absl::string_view engine_name() const { return engine_->name(); }
  Stats TakeStats();
  Stats totals() const;  // since creation

 private:
  struct Slot {
    Buffer staging;
    int holds = -1;  // the Unit whose shard the staging holds (or is receiving), -1: none
    IoEngine::Ticket ticket = 0;
    bool reading = false;
    const float* memory = nullptr;  // the shard when it lies in memory (or in the staging)
  };
  struct CacheEntry {
    Buffer buffer;
    int holds = -1;
    int64_t last_use = 0;  // 0 while it holds nothing
  };
  NvmeShardReader() = default;
  // KeepInCache: slot `s`'s shard, if any, moves into the cache (its staging takes the evicted
  // entry's buffer). TakeFromCache: `unit`'s shard comes from the cache into `s` (whose shard
  // takes its place); false if the cache does not hold it.
  void KeepInCache(Slot& s);
  bool TakeFromCache(Slot& s, int unit);
  // Swaps the buffers of `s` and `e`: `e` keeps the slot's shard, and `s` then holds `unit`.
  void Exchange(Slot& s, CacheEntry& e, int unit);

  std::vector<Location> units_;
  std::vector<Slot> slots_;
  std::vector<CacheEntry> cache_;
  int64_t clock_ = 0;
  std::unique_ptr<IoEngine> engine_;
  Stats stats_;
  Stats taken_;  // the sum of what TakeStats returned
};

}  // namespace spillway
