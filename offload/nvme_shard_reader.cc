#include "offload/nvme_shard_reader.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "offload/tile_stream.h"

namespace spillway {

int NvmeShardReader::CacheCount(int64_t max_in_cpu, size_t shard_numel, int file_shards) {
  if (max_in_cpu <= 0 || shard_numel == 0) return 0;
  const uint64_t fit = static_cast<uint64_t>(max_in_cpu) / shard_numel;
  return static_cast<int>(std::min<uint64_t>(fit, static_cast<uint64_t>(file_shards)));
}

absl::StatusOr<std::unique_ptr<NvmeShardReader>> NvmeShardReader::Create(
    const IoOptions& io, std::vector<Location> units, const std::vector<size_t>& slot_numels,
    Tier tier, int cache_count, size_t cache_numel) {
  for (size_t u = 0; u < units.size(); ++u) {
    const bool unused = units[u].file == nullptr && units[u].memory == nullptr;
    if (unused ? units[u].numel != 0 : units[u].offset % kNvmeAlignment != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Unit ", u, "'s parameters have neither a 4 KiB-aligned place on NVMe nor in memory"));
    }
  }
  auto reader = std::unique_ptr<NvmeShardReader>(new NvmeShardReader());
  SPW_ASSIGN_OR_RETURN(reader->engine_, CreateIoEngine(io));
  reader->units_ = std::move(units);
  reader->slots_.resize(slot_numels.size());
  for (size_t s = 0; s < slot_numels.size(); ++s) {
    SPW_ASSIGN_OR_RETURN(reader->slots_[s].staging,
                         Buffer::Allocate(NvmeBytesForFloats(slot_numels[s]), tier,
                                          absl::StrCat("NVMe parameter staging, buffer ", s)));
  }
  reader->cache_.resize(static_cast<size_t>(std::max(cache_count, 0)));
  for (size_t e = 0; e < reader->cache_.size(); ++e) {
    SPW_ASSIGN_OR_RETURN(
        reader->cache_[e].buffer,
        Buffer::Allocate(NvmeBytesForFloats(cache_numel), tier,
                         absl::StrCat("NVMe parameter cache (offload_param.max_in_cpu), buffer ", e,
                                      " of ", reader->cache_.size())));
  }
  return reader;
}

NvmeShardReader::~NvmeShardReader() {
  if (engine_ != nullptr) engine_->WaitAll().IgnoreError();
}

absl::Status NvmeShardReader::StartRead(int unit, int slot) {
  Slot& s = slots_[slot];
  const Location& where = units_[unit];
  const uint64_t bytes = where.file == nullptr ? 0 : NvmeBytesForFloats(where.numel);
  if (where.file == nullptr && where.memory == nullptr) {
    return absl::InternalError(absl::StrCat("Unit ", unit, "'s parameters are not read here"));
  }
  if (s.reading || bytes > s.staging.bytes()) {
    return absl::InternalError(absl::StrCat("NVMe parameter staging ", slot, " is busy or holds ",
                                            s.staging.bytes(), " of ", bytes, " bytes"));
  }
  s.memory = where.memory;
  if (where.file == nullptr) {
    s.reading = true;
    return absl::OkStatus();
  }
  if (s.holds == unit || TakeFromCache(s, unit)) {
    s.memory = s.staging.as<float>();
    s.reading = true;
    stats_.cached_bytes += bytes;
    return absl::OkStatus();
  }
  KeepInCache(s);
  s.holds = -1;  // until the read is submitted
  SPW_ASSIGN_OR_RETURN(
      s.ticket, engine_->SubmitRead(*where.file, where.offset, s.staging.span().first(bytes)));
  s.holds = unit;
  s.reading = true;
  stats_.bytes += bytes;
  return absl::OkStatus();
}

void NvmeShardReader::Exchange(Slot& s, CacheEntry& e, int unit) {
  std::swap(s.staging, e.buffer);
  e.holds = std::exchange(s.holds, unit);
  e.last_use = e.holds < 0 ? 0 : ++clock_;
}

bool NvmeShardReader::TakeFromCache(Slot& s, int unit) {
  for (CacheEntry& e : cache_) {
    if (e.holds == unit && e.buffer.bytes() == s.staging.bytes()) {
      Exchange(s, e, unit);
      return true;
    }
  }
  return false;
}

void NvmeShardReader::KeepInCache(Slot& s) {
  if (s.holds < 0) return;
  CacheEntry* victim = nullptr;  // an empty entry (last_use 0), else the least recently kept
  for (CacheEntry& e : cache_) {
    if (e.buffer.bytes() != s.staging.bytes()) continue;
    if (victim == nullptr || e.last_use < victim->last_use) victim = &e;
  }
  if (victim != nullptr) Exchange(s, *victim, -1);
}

void NvmeShardReader::Invalidate() {
  for (Slot& s : slots_) s.holds = -1;
  for (CacheEntry& e : cache_) e = {std::move(e.buffer)};
}

absl::StatusOr<const float*> NvmeShardReader::FinishRead(int slot) {
  Slot& s = slots_[slot];
  if (!s.reading) return absl::InternalError(absl::StrCat("no read into NVMe staging ", slot));
  if (s.memory != nullptr) {
    s.reading = false;
    return s.memory;
  }
  const auto start = std::chrono::steady_clock::now();
  const absl::Status status = engine_->Wait(s.ticket);
  stats_.wait_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  s.reading = false;
  if (!status.ok()) {
    s.holds = -1;
    return status;
  }
  return s.staging.as<float>();
}

bool NvmeShardReader::Ready(int slot) {
  const Slot& s = slots_[slot];
  return !s.reading || s.memory != nullptr || engine_->Done(s.ticket);
}

size_t NvmeShardReader::host_bytes() const {
  size_t bytes = cache_bytes();
  for (const Slot& s : slots_) bytes += s.staging.bytes();
  return bytes;
}

size_t NvmeShardReader::cache_bytes() const {
  size_t bytes = 0;
  for (const CacheEntry& e : cache_) bytes += e.buffer.bytes();
  return bytes;
}

NvmeShardReader::Stats NvmeShardReader::TakeStats() {
  taken_.bytes += stats_.bytes;
  taken_.cached_bytes += stats_.cached_bytes;
  taken_.wait_s += stats_.wait_s;
  return std::exchange(stats_, Stats());
}

NvmeShardReader::Stats NvmeShardReader::totals() const {
  return {taken_.bytes + stats_.bytes, taken_.cached_bytes + stats_.cached_bytes,
          taken_.wait_s + stats_.wait_s};
}

}  // namespace spillway
