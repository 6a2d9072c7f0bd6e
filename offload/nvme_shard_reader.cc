#include "offload/nvme_shard_reader.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "offload/tile_stream.h"

namespace spillway {

absl::StatusOr<std::unique_ptr<NvmeShardReader>> NvmeShardReader::Create(
    const IoOptions& io, std::vector<Location> units, const std::vector<size_t>& slot_numels,
    Tier tier) {
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
  SPW_ASSIGN_OR_RETURN(
      s.ticket, engine_->SubmitRead(*where.file, where.offset, s.staging.span().first(bytes)));
  s.reading = true;
  stats_.bytes += bytes;
  return absl::OkStatus();
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
  SPW_RETURN_IF_ERROR(status);
  return s.staging.as<float>();
}

bool NvmeShardReader::Ready(int slot) {
  const Slot& s = slots_[slot];
  return !s.reading || s.memory != nullptr || engine_->Done(s.ticket);
}

size_t NvmeShardReader::host_bytes() const {
  size_t bytes = 0;
  for (const Slot& s : slots_) bytes += s.staging.bytes();
  return bytes;
}

NvmeShardReader::Stats NvmeShardReader::TakeStats() { return std::exchange(stats_, Stats()); }

}  // namespace spillway
