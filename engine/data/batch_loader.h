// Deterministic, rank-sharded (B, T) batches of next-token-prediction windows.
//
// Window w is tokens [w*T, w*T + T] (T+1 tokens; windows overlap by one token), and there are
// num_windows = (size - 1) / T of them. All ranks see one global stream of windows:
//  - shuffled (training): epoch e is a Fisher-Yates permutation of all windows drawn from
//    Rng(seed, e); epochs follow each other, so every window is visited exactly once per epoch
//    (a micro-batch may straddle two epochs);
//  - sequential (eval): windows 0, 1, 2, ... wrapping around, so eval sees the same batches.
// A global micro-batch is the next B * world_size windows of the stream; rank r takes rows
// [r*B, (r+1)*B). Position (the next window's epoch and index in that epoch) is the same on
// every rank and is all a checkpoint needs. docs/data.md has the details.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/data/token_data.h"

namespace spillway {

struct BatchLoaderOptions {
  int64_t batch_size = 0;  // B: rows per rank per micro-batch
  int64_t seq_len = 0;     // T
  int world_size = 1;
  int rank = 0;
  uint64_t seed = 0;
  bool shuffle = true;  // false: sequential eval order
};

class BatchLoader {
 public:
  struct Position {
    uint64_t epoch = 0;   // shuffled: the permutation's epoch; sequential: completed passes
    uint64_t cursor = 0;  // index of the next window within the epoch, < num_windows()
    bool operator==(const Position&) const = default;
  };

  // Fails if the options are out of range (B, T > 0; 0 <= rank < world_size), if the vocab
  // does not fit int32, or if there are fewer windows than one global micro-batch (the message
  // names the data, its token count, T, and B * world_size).
  static absl::StatusOr<BatchLoader> Create(std::shared_ptr<const TokenData> data,
                                            const BatchLoaderOptions& options);
  // Create() with options.shuffle = false: windows 0, 1, 2, ... wrapping around.
  static absl::StatusOr<BatchLoader> Sequential(std::shared_ptr<const TokenData> data,
                                                BatchLoaderOptions options);

  // Fills this rank's rows of the next global micro-batch, each (B, T) row-major:
  // inputs[b][t] = window[t], targets[b][t] = window[t + 1], or -1 (ignored by the loss) where
  // that token is masked (see TokenData::masked). Then advances.
  void Next(int32_t* inputs, int32_t* targets);

  Position position() const { return position_; }
  // Fails (InvalidArgument) if position.cursor >= num_windows().
  absl::Status SetPosition(const Position& position);
  // Back to the start: {epoch 0, cursor 0}.
  void Reset() { position_ = Position{}; }

  uint64_t num_windows() const { return num_windows_; }
  int64_t batch_size() const { return options_.batch_size; }
  int64_t seq_len() const { return options_.seq_len; }
  const BatchLoaderOptions& options() const { return options_; }
  const TokenData& data() const { return *data_; }

  // The window that global stream slot (epoch, cursor) holds; cursor < num_windows().
  uint64_t WindowAt(uint64_t epoch, uint64_t cursor);

 private:
  BatchLoader(std::shared_ptr<const TokenData> data, const BatchLoaderOptions& options,
              uint64_t num_windows);

  std::shared_ptr<const TokenData> data_;
  BatchLoaderOptions options_;
  uint64_t num_windows_;
  Position position_;
  // The permutation of epoch perm_epoch_ (shuffled mode), built on first use.
  std::vector<uint64_t> perm_;
  uint64_t perm_epoch_ = 0;
  bool perm_valid_ = false;
};

}  // namespace spillway
