#include "offload/nvme_optimizer_state.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace spillway {

absl::StatusOr<std::unique_ptr<NvmeOptimizerState>> NvmeOptimizerState::Create(
    IoOptions io, std::vector<size_t> unit_numels, size_t tile_bytes, int buffers_per_array,
    absl::string_view name) {
  if (buffers_per_array < 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("buffer_count is ", buffers_per_array, "; it must be at least 3"));
  }
  auto state = std::unique_ptr<NvmeOptimizerState>(new NvmeOptimizerState());
  size_t largest = 1;
  uint64_t bytes = 0;
  for (size_t n : unit_numels) {
    state->unit_offsets_.push_back(bytes);
    bytes += kArrays * NvmeBytesForFloats(n);
    largest = std::max(largest, n);
  }
  const size_t tile_floats = std::max<size_t>(tile_bytes / kNvmeAlignment, 1) * 1024;
  state->tile_floats_ = std::min(tile_floats, (largest + 1023) / 1024 * 1024);
  state->buffers_per_array_ = buffers_per_array;
  state->numels_ = std::move(unit_numels);
  io.buffer_count = kArrays * buffers_per_array;
  io.buffer_size = state->tile_floats_ * sizeof(float);
  SPW_ASSIGN_OR_RETURN(state->engine_, CreateIoEngine(io));
  SPW_ASSIGN_OR_RETURN(state->file_,
                       state->engine_->CreateFile(name, std::max<uint64_t>(bytes, 1)));
  return state;
}

NvmeOptimizerState::~NvmeOptimizerState() {
  if (engine_ != nullptr) engine_->WaitAll().IgnoreError();
  file_.reset();
}

size_t NvmeOptimizerState::host_bytes() const {
  return static_cast<size_t>(engine_->buffer_count()) * tile_floats_ * sizeof(float);
}

absl::Status NvmeOptimizerState::WriteArray(int unit, Array array, const float* src) {
  std::span<std::byte> staging = engine_->buffer(0);
  const size_t n = numels_[unit];
  for (size_t first = 0; first < n; first += tile_floats_) {
    const size_t count = std::min(tile_floats_, n - first);
    const size_t bytes = RoundUpToNvmeAlignment(count * sizeof(float));
    std::memcpy(staging.data(), src + first, count * sizeof(float));
    std::memset(staging.data() + count * sizeof(float), 0, bytes - count * sizeof(float));
    SPW_RETURN_IF_ERROR(
        engine_->Write(*file_, offset(unit, array) + first * sizeof(float), staging.first(bytes)));
  }
  return absl::OkStatus();
}

absl::Status NvmeOptimizerState::ReadArray(int unit, Array array, float* dst) {
  std::span<std::byte> staging = engine_->buffer(0);
  const size_t n = numels_[unit];
  for (size_t first = 0; first < n; first += tile_floats_) {
    const size_t count = std::min(tile_floats_, n - first);
    const size_t bytes = RoundUpToNvmeAlignment(count * sizeof(float));
    SPW_RETURN_IF_ERROR(
        engine_->Read(*file_, offset(unit, array) + first * sizeof(float), staging.first(bytes)));
    std::memcpy(dst + first, staging.data(), count * sizeof(float));
  }
  return absl::OkStatus();
}

absl::Status NvmeOptimizerState::StreamUnit(int unit, const TileFn& compute) {
  const NvmeFile* files[kArrays] = {file_.get(), file_.get(), file_.get()};
  TileStreamOptions options;
  options.tile_floats = tile_floats_;
  options.buffers_per_array = buffers_per_array_;
  options.file_offsets = {offset(unit, kMaster), offset(unit, kExpAvg), offset(unit, kExpAvgSq)};
  SPW_ASSIGN_OR_RETURN(const TileStreamStats s,
                       StreamTiles(*engine_, files, numels_[unit], options,
                                   [&](size_t tile, float* const* t, size_t count) {
                                     return compute(tile * tile_floats_, t[kMaster], t[kExpAvg],
                                                    t[kExpAvgSq], count);
                                   }));
  stats_.tiles += s.tiles;
  stats_.read_wait_s += s.read_wait_s;
  stats_.compute_s += s.compute_s;
  stats_.write_wait_s += s.write_wait_s;
  stats_.total_s += s.total_s;
  stats_.bytes_read += s.bytes_read;
  stats_.bytes_written += s.bytes_written;
  return absl::OkStatus();
}

}  // namespace spillway
