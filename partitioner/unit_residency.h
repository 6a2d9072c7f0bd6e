// Makes each Unit's whole parameters and gradients available to the model while it runs, and
// reduces the gradients across ranks, as the ZeRO stage asks (partitioner/unit_state.h):
// - stage 3: AcquireParams(u) all-gathers u's parameter shards into a working buffer and starts
//   gathering the next Units in the pass's direction (prefetch); ReleaseParams(u) lets the
//   buffer be reused. A gathered copy stays valid until reused or InvalidateParams().
// - stages 2-3: AcquireGrads(u) gives u a zeroed whole gradient buffer; ReleaseGrads(u)
//   reduce-scatters it and adds this rank's part to u's gradient shard (every micro-batch).
// - stages 0-1, several ranks: ReleaseGrads(u) in the step's last backward all-reduces u's
//   whole gradients in place, in pieces of at most reduce_bucket_size elements.
// With overlap_comm the collectives are started asynchronously (Communicator::Start*) and
// waited for only when their result is needed, so the reduction of Unit i runs during the
// backward of Unit i-1 and the gather of Unit i+1 during the forward of Unit i.
//
// Working memory, allocated once in the backend's tier: one parameter buffer for Unit 0 (the
// embeddings, which GPT-2's tied head uses at both ends of the pass) and prefetch + 2 buffers
// the size of the largest other Unit; the same for gradients with 2 ring buffers. On one rank
// (stage 3 with offload_param) a resident Unit's gather is a copy on the copy stream and its
// reduction happens in place: no collective touches the backend's memory.
//
// Offloaded parameters (UnitState::params_offloaded, every Unit's or, with
// offload_optimizer.ratio, the last Units'; one rank or several): the shards live in
// host memory. A gather copies this rank's shard up on the backend's copy stream into its place
// in the working buffer (the compute waits for it on the backend at AcquireParams, not the host),
// then all-gathers in place; a reduction reduce-scatters in place, adds the host shard's earlier
// micro-batches to this rank's part (read through the pinned memory's mapping) and copies the
// sum down on the copy stream, so no gradient shard lives in the backend; in the last backward
// it also takes the parts' sums of squares for the norm (grad_sum_squares).
//
// Parameters on NVMe (UnitState::params_in_master, set_param_reader): a gather first reads the
// shard from NVMe into the slot's host staging (offload/nvme_shard_reader.h; a master in CPU
// memory is used where it is), so the read runs as far ahead as the prefetch; the copy up (and
// all-gather) is issued when the Unit is acquired, or its slot reused, after the host waits for
// the read, or on one rank as soon as an earlier acquire finds the read landed, so that the copy
// runs beside that Unit's compute.
//
// Optimizer offload hooks in through set_grads_final_hook: it hears of each Unit as soon as
// its gradients are final in the step's last backward (stage 0 on one rank: at ReleaseGrads;
// stages 2-3: when its reduce-scatter completes; stages 0-1 on several ranks: at FinishGrads).
//
// Errors are sticky: the first failed collective is kept, later hooks do nothing, and
// FinishGrads() / status() return it. The hooks must be called in the model's order (a Unit
// acquired before its compute is issued, released after).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/ops.h"
#include "offload/buffer.h"
#include "offload/nvme_shard_reader.h"
#include "partitioner/communicator.h"
#include "partitioner/unit_state.h"

namespace spillway {

struct ResidencyOptions {
  bool overlap = true;                          // zero_optimization.overlap_comm
  size_t reduce_bucket_elements = 500'000'000;  // reduce_bucket_size
  size_t prefetch_elements = 50'000'000;        // stage3_prefetch_bucket_size
  size_t max_live_elements = 1'000'000'000;     // stage3_max_live_parameters
};

class UnitResidency {
 public:
  // `units`, `ops` and `comm` (the data-plane communicator, serving ops' memory) must outlive
  // it; every Unit must have the same stage.
  static absl::StatusOr<std::unique_ptr<UnitResidency>> Create(std::vector<UnitState>& units,
                                                               kernels::Ops& ops,
                                                               Communicator& comm,
                                                               const ResidencyOptions& options);

  enum class Pass { kForward, kBackward };
  // Starts a forward or backward pass (prefetch direction). `last_backward`: this backward is
  // the last of the step's micro-batches (stages 0-1 reduce their gradients in it).
  void BeginPass(Pass pass, bool last_backward = false);
  void AcquireParams(int u);
  void ReleaseParams(int u);
  void AcquireGrads(int u);
  void ReleaseGrads(int u);
  // Waits for (and completes) every gradient reduction started: the gradients are then
  // final for this micro-batch. Returns the sticky error, if any.
  absl::Status FinishGrads();
  // Called once per Unit with a rank-local part, in the step's last backward, on the model's
  // thread, when that part of its gradients is final: the ops that finish it are issued (not
  // necessarily done), and no later op of the step writes it.
  void set_grads_final_hook(std::function<void(int)> hook) { grads_final_ = std::move(hook); }
  // Called at every AcquireParams(u), before anything else, and before a gather (prefetches
  // included) reads u's stored parameters, on the model's thread.
  void set_params_needed_hook(std::function<void(int)> hook) { params_needed_ = std::move(hook); }
  // A step's accumulation starts (Model::ZeroGrads): the next reduction of each offloaded Unit
  // replaces its host gradient shard instead of adding to it.
  void BeginGradAccumulation();
  // Parameters on NVMe: where gathers read the shards (outlives the residency's gathers),
  // with one staging slot per gathered-parameter buffer of param_slot_shard_numels() (slot 0,
  // Unit 0's, empty unless Unit 0's parameters are read from NVMe).
  void set_param_reader(NvmeShardReader* reader) { param_reader_ = reader; }
  std::vector<size_t> param_slot_shard_numels() const;
  // The parameters changed (optimizer step, checkpoint load): gathered copies are stale, and
  // so are the shards the parameter reader keeps (NvmeShardReader::Invalidate).
  void InvalidateParams();

  absl::Status status() const { return status_; }
  size_t working_bytes() const;
  int prefetch_units() const { return prefetch_; }
  // Gathers and reductions started so far (for tests of prefetch and reuse).
  int64_t gathers() const { return gathers_; }
  // Bytes of offloaded parameters copied up and gradients copied down since the last call.
  double TakeCopiedBytes();
  // Offloaded Unit u: the sums of squares (backend memory) of this rank's part of each of its
  // tensors (ForEachTensorPart over [update_begin, update_end)), taken from the final gradient
  // in the backend before it went down, in the step's last backward: the gradient norm adds
  // them (Ops::AddInOrder) instead of reading the host shards back over PCIe.
  std::span<const double> grad_sum_squares(int u) const;

 private:
  struct Slot {
    Buffer buffer;
    Buffer reduced;  // gradient slots: the reduce-scatter's output (one shard)
    int unit = -1;   // whose data it holds (or is receiving), -1: none
    int users = 0;
    Communicator::Handle pending = 0;
    bool has_pending = false;
    // Offloaded Units: the copy (parameters up, or gradients down) that must land before the
    // compute reads the buffer, or writes it again.
    int64_t copy = 0;
    bool has_copy = false;
    // Parameters on NVMe: the read into this slot's staging is in flight (`unit`'s), and the
    // last copy up from that staging.
    bool reading = false;
    int64_t staging_copy = 0;
    int64_t last_use = 0;
  };

  UnitResidency(std::vector<UnitState>& units, kernels::Ops& ops, Communicator& comm,
                const ResidencyOptions& options)
      : units_(units), ops_(ops), comm_(comm), options_(options) {}
  absl::Status Allocate();
  // The slot holding (or now starting to gather) u's parameters; -1 if every slot is busy.
  int GatherInto(int u, bool required);
  // Orders the compute after the slot's copy and waits for its started collective, if any.
  void WaitPending(Slot& slot);
  // Starts gathering Unit u's offloaded parameter shard into `slot` (from NVMe: the read).
  void StartOffloadedGather(int u, Slot& slot);
  // Copies Unit u's shard from host memory `shard` into its place in `slot` and all-gathers.
  void CopyUpAndGather(int u, Slot& slot, const float* shard);
  // Parameters on NVMe: waits for the slot's read and copies it up.
  void FinishRead(Slot& slot);
  // Brings this rank's part of u's reduced gradient (in `slot`, in place) into its host shard,
  // adding the shard's earlier micro-batches to it first (so the backend holds the final sum).
  void LandOffloadedGrads(int u, Slot& slot);
  void CompleteReduction(Slot& slot);
  // Where the reduce-scatter puts this rank's part of `unit`'s gradient in `slot`.
  float* ReducedShard(const UnitState& unit, Slot& slot) const;
  void Check(const absl::Status& status);
  bool InWindow(int unit) const;

  std::vector<UnitState>& units_;
  kernels::Ops& ops_;
  Communicator& comm_;
  ResidencyOptions options_;
  int stage_ = 0;
  bool one_rank_ = false;         // the Units are not shared with other ranks
  bool reduce_in_place_ = false;  // no separate reduced shard buffers
  int prefetch_ = 0;
  size_t ring_shard_numel_ = 0;  // the largest shard of Units 1.. (the ring buffers' Units)
  Pass pass_ = Pass::kForward;
  bool last_backward_ = false;
  int window_start_ = -1;  // the Unit last acquired; the next prefetch_ ones are kept
  int64_t clock_ = 0;
  int64_t gathers_ = 0;
  std::vector<Slot> param_slots_;  // [0]: Unit 0's; then the ring
  std::vector<Slot> grad_slots_;
  std::vector<int> param_slot_of_;  // per Unit, or -1
  std::vector<int> grad_slot_of_;
  std::vector<Communicator::Handle> pending_reduces_;  // stages 0-1 all-reduces
  std::vector<int> reduced_units_;                     // their Units, for grads_final_
  std::vector<bool> grads_fresh_;    // offloaded Units: no reduction yet in this step
  std::vector<int64_t> grads_copy_;  // offloaded Units: their gradient copy of this step
  Buffer grad_sum_squares_;          // offloaded Units' tensor parts' sums of squares (doubles)
  std::vector<size_t> sums_begin_;   // per Unit: its first entry there
  std::vector<size_t> sums_count_;   // per Unit: its entries
  double copied_bytes_ = 0.0;
  NvmeShardReader* param_reader_ = nullptr;
  std::function<void(int)> grads_final_;
  std::function<void(int)> params_needed_;
  absl::Status status_;
};

}  // namespace spillway
