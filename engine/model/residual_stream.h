// The residual stream of a transformer of L blocks: arrays 0..L of (N,C) floats, array l the input
// of block l (array 0 the embedding output, array L the head's input). These are the Unit inputs
// that activation checkpointing keeps.
//
// In the backend's memory by default. Offloaded (activation_checkpointing.cpu_checkpointing):
// arrays 0..L-1 live in CPU memory (pinned for a GPU backend) and three backend buffers rotate
// through them; array L stays in the backend. The model calls the pass hooks and reads the
// pointers at(l) only as they allow:
//   forward:  BeginForward(); write at(0); for each block l: ForwardBlock(l), then compute
//             at(l+1) from at(l);
//   backward: for each block l from L-1 down: BackwardBlock(l), then recompute at(l+1) from at(l)
//             (same values, or a scratch) and run the block's backward from at(l).
// ForwardBlock(l) copies array l down (copy stream) once it is written, and gives array l+1 a
// buffer whose previous array has been copied; BackwardBlock(l) makes the compute wait for array
// l's copy up and starts the copy of array l-1, so the copy overlaps block l's backward. The
// copies go through kernels::Ops' copy stream; no host waits. Bitwise the same results.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/ops.h"
#include "offload/buffer.h"

namespace spillway {

class ResidualStream {
 public:
  // `blocks` = L >= 1; `numel` = N*C. `ops` must outlive it.
  static absl::StatusOr<ResidualStream> Create(int blocks, size_t numel, kernels::Ops& ops,
                                               bool offload);

  float* at(int l) const { return ptr_[l]; }
  void BeginForward();
  void ForwardBlock(int l);
  void BackwardBlock(int l);

  bool offloaded() const { return offload_; }
  size_t backend_bytes() const { return backend_.bytes(); }
  size_t host_bytes() const { return host_.bytes(); }
  // The backend bytes Create would allocate.
  static size_t PlannedBackendBytes(int blocks, size_t numel, bool offload);

 private:
  static constexpr int kSlots = 3;
  float* Slot(int l) { return backend_.as<float>() + (l % kSlots) * numel_; }
  float* Host(int l) { return host_.as<float>() + l * numel_; }

  kernels::Ops* ops_ = nullptr;
  int blocks_ = 0;
  size_t numel_ = 0;
  bool offload_ = false;
  Buffer backend_;  // all L+1 arrays, or kSlots rotating buffers and array L
  Buffer host_;     // offloaded: arrays 0..L-1
  std::vector<float*> ptr_;
  // Offloaded, per slot: the array it holds (-1: none), and the tickets of its last copy down
  // and up (0: none).
  int holds_[kSlots] = {-1, -1, -1};
  int64_t down_[kSlots] = {0, 0, 0};
  int64_t up_[kSlots] = {0, 0, 0};
};

}  // namespace spillway
