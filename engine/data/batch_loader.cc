#include "engine/data/batch_loader.h"

#include <limits>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/rng.h"

namespace spillway {

absl::StatusOr<BatchLoader> BatchLoader::Create(std::shared_ptr<const TokenData> data,
                                                const BatchLoaderOptions& options) {
  if (data == nullptr) return absl::InvalidArgumentError("batch loader: no data");
  const std::string context = absl::StrCat("batch loader over ", data->name());
  if (options.batch_size <= 0 || options.seq_len <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": batch_size (", options.batch_size,
                                                   ") and seq_len (", options.seq_len,
                                                   ") must be positive"));
  }
  if (options.world_size <= 0 || options.rank < 0 || options.rank >= options.world_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        context, ": rank ", options.rank, " is not in [0, world_size ", options.world_size, ")"));
  }
  if (data->vocab_size() > uint64_t{std::numeric_limits<int32_t>::max()} + 1) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": vocab_size ", data->vocab_size(),
                                                   " does not fit int32 token ids"));
  }
  const uint64_t seq_len = static_cast<uint64_t>(options.seq_len);
  const uint64_t num_windows = data->size() == 0 ? 0 : (data->size() - 1) / seq_len;
  const uint64_t global_rows =
      static_cast<uint64_t>(options.batch_size) * static_cast<uint64_t>(options.world_size);
  if (num_windows < global_rows) {
    return absl::InvalidArgumentError(absl::StrCat(
        context, ": ", data->size(), " tokens make ", num_windows,
        " windows of seq_len+1 = ", seq_len + 1, " tokens at stride seq_len = ", seq_len,
        ", fewer than one global micro-batch of batch_size * world_size = ", options.batch_size,
        " * ", options.world_size, " = ", global_rows,
        " windows; use more data, a shorter seq_len or a smaller batch"));
  }
  return BatchLoader(std::move(data), options, num_windows);
}

absl::StatusOr<BatchLoader> BatchLoader::Sequential(std::shared_ptr<const TokenData> data,
                                                    BatchLoaderOptions options) {
  options.shuffle = false;
  return Create(std::move(data), options);
}

BatchLoader::BatchLoader(std::shared_ptr<const TokenData> data, const BatchLoaderOptions& options,
                         uint64_t num_windows)
    : data_(std::move(data)), options_(options), num_windows_(num_windows) {}

uint64_t BatchLoader::WindowAt(uint64_t epoch, uint64_t cursor) {
  if (!options_.shuffle) return cursor;
  if (!perm_valid_ || perm_epoch_ != epoch) {
    perm_.resize(num_windows_);
    std::iota(perm_.begin(), perm_.end(), uint64_t{0});
    Rng rng(options_.seed, epoch);
    for (uint64_t i = num_windows_ - 1; i > 0; --i) std::swap(perm_[i], perm_[rng.Below(i + 1)]);
    perm_epoch_ = epoch;
    perm_valid_ = true;
  }
  return perm_[cursor];
}

void BatchLoader::Next(int32_t* inputs, int32_t* targets) {
  const uint64_t batch = static_cast<uint64_t>(options_.batch_size);
  const uint64_t seq_len = static_cast<uint64_t>(options_.seq_len);
  const uint64_t first_row = static_cast<uint64_t>(options_.rank) * batch;
  for (uint64_t b = 0; b < batch; ++b) {
    // Global row first_row + b of this micro-batch; global_rows <= num_windows_, so it lies in
    // this epoch or the next.
    uint64_t epoch = position_.epoch;
    uint64_t cursor = position_.cursor + first_row + b;
    if (cursor >= num_windows_) {
      cursor -= num_windows_;
      ++epoch;
    }
    const uint64_t start = WindowAt(epoch, cursor) * seq_len;
    int32_t* in = inputs + b * seq_len;
    int32_t* tg = targets + b * seq_len;
    uint32_t token = data_->at(start);
    for (uint64_t t = 0; t < seq_len; ++t) {
      in[t] = static_cast<int32_t>(token);
      token = data_->at(start + t + 1);
      tg[t] = data_->masked(start + t + 1) ? -1 : static_cast<int32_t>(token);
    }
  }
  position_.cursor += batch * static_cast<uint64_t>(options_.world_size);
  if (position_.cursor >= num_windows_) {
    position_.cursor -= num_windows_;
    ++position_.epoch;
  }
}

absl::Status BatchLoader::SetPosition(const Position& position) {
  if (position.cursor >= num_windows_) {
    return absl::InvalidArgumentError(absl::StrCat("batch loader over ", data_->name(),
                                                   ": position cursor ", position.cursor,
                                                   " is out of range; there are ", num_windows_,
                                                   " windows (was the checkpoint made with "
                                                   "other data or another seq_len?)"));
  }
  position_ = position;
  return absl::OkStatus();
}

}  // namespace spillway
