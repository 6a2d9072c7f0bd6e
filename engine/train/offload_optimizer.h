// The optimizer step offloaded to the CPU (zero_optimization.offload_optimizer.device = "cpu"),
// overlapped with the backend's work. Per Unit, in the step's last backward:
//   1. UnitResidency's grads-final hook (OnGradsFinal) issues the asynchronous copy of the
//      Unit's gradient part into its offload_grads on the backend's copy stream (Ops::*Async)
//      and queues the Unit for a worker thread;
//   2. the worker waits for that copy and runs StepOffloadedShard (optimizer_step.h): CPU AdamW
//      over the Unit's master / m / v, while the backend computes earlier Units' backward (the
//      worker takes Units whose copies have landed first: see ReadyTask);
//   3. each updated Unit goes back to the backend by an asynchronous copy, and the backend's
//      later ops wait for it on the backend, not on the host. Where every rank updates whole
//      Units (stage 0: no parameter all-gather follows), FinishStep returns at once and the
//      next forward's residency hook (OnParamsNeeded) waits for each Unit's update just before
//      the Unit is used, so the CPU step of later Units overlaps the forward of earlier ones
//      (the worker takes the lowest landed Unit first). There the worker itself uploads each Unit
//      as soon as it is updated, on the backend's unordered upload stream (Ops::UploadAsync: the
//      Unit's backward is over, as its gradient has landed), so the uploads overlap the backward
//      of earlier Units and the hook only orders the backend after its Unit's upload. Otherwise
//      FinishStep waits for every Unit and uploads it as soon as it is done.
// Gradient clipping needs the global norm before any update: with clipping on, step 2 of every
// Unit waits for FinishStep, which brings the clip scale (computed from the backend's gradients
// exactly as without offload), so results stay bitwise equal to the in-backend optimizer;
// the gradient copies still overlap the backward. With clipping off, step 2 starts as soon as
// the Unit's copy lands.
//
// Delayed update (offload_optimizer.delayed_update, ZeRO-Offload's one-step delay), from step
// `delayed_from` on (after delayed_update_warmup synchronous steps): FinishStep returns at once, so
// the CPU step also overlaps the next forward; the next step's hook for a Unit waits for its
// update, uploads it, then copies the new gradient. The forward and backward of step k+1 thus use
// the parameters after step k-1, and step k+1's gradient updates the master after step k. Flush()
// uploads the pending update (before evaluation, checkpoints, the end).
//
// Offloaded state in pageable memory on a GPU backend (pin_memory false): each gradient comes
// down in chunks through a bounded pool of pinned staging buffers (offload/staging_pool.h),
// which the worker empties into offload_grads as each chunk lands, before any Unit's step.
//
// Threads: every method is called on the training thread; only the worker touches the offloaded
// master, m and v while a step is in flight, and issues uploads besides the training thread's. On a
// GPU backend the worker's CPU kernels leave one CPU to the training thread (cpu_threads()): it
// spins while it feeds and waits for the GPU, and a statically scheduled kernel that shares its
// core finishes last (bench/RESULTS.md).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/config/config.h"
#include "engine/model/model.h"
#include "engine/train/external_optimizer_state.h"
#include "kernels/ops.h"
#include "offload/staging_pool.h"

namespace spillway {

// Seconds (and bytes) spent since the last TakeTimes().
struct OffloadTimes {
  double adam_s = 0.0;        // CPU AdamW on the worker thread
  double grads_wait_s = 0.0;  // the worker waiting for a Unit's gradients to land (backward, copy)
  double pcie_s = 0.0;        // the copy stream busy (GPU backends; 0 on host backends)
  double wait_s = 0.0;        // the training thread blocked on the offloaded step
  double pcie_bytes = 0.0;    // gradients down plus parameters up
};

class OffloadedOptimizer {
 public:
  // `model`, `ops`, `opt` and `external` must outlive it. Units whose optimizer is not offloaded
  // (offload_optimizer.ratio) are left to the backend's AdamW (ApplyOptimizerStep). With
  // `external` (state outside the Units' Buffers), each Unit steps through its StepUnit, always
  // after FinishStep and lowest Unit first, and its update goes up from offload_grads.
  static absl::StatusOr<std::unique_ptr<OffloadedOptimizer>> Create(
      Model& model, kernels::Ops& ops, const OptimizerConfig& opt, int64_t delayed_from,
      int staging_count = 4, size_t staging_elements = 10'000'000,
      ExternalOptimizerState* external = nullptr);
  ~OffloadedOptimizer();  // finishes the queued work, joins the worker
  OffloadedOptimizer(const OffloadedOptimizer&) = delete;
  OffloadedOptimizer& operator=(const OffloadedOptimizer&) = delete;

  // Before the step's first micro-batch: its number (1-based), learning rate, and whether the
  // updates must wait for FinishStep's scale (gradient clipping, loss scaling: the scale is
  // only known after the backward).
  // `optimizer_step` is AdamW's step count (the step less the skipped ones).
  void BeginStep(int64_t step, int64_t optimizer_step, double lr, bool clipping);
  // The residency's hooks.
  void OnGradsFinal(int u);
  void OnParamsNeeded(int u);
  // After the backward, with the factor AdamW applies to the gradients (clip scale over loss
  // scale; 1: none), or `skipped` (a non-finite norm: no Unit is updated and nothing goes up;
  // the step must have been begun with clipping). Synchronous mode: returns when
  // every Unit is updated and its upload issued, backend ops ordered after it, or, with whole
  // Units (see 3. above), at once. Delayed mode: hands the scale to the worker and returns.
  absl::Status FinishStep(float grad_scale, bool skipped = false);
  // Delayed mode: waits for the step in flight and uploads it. Returns whether anything was
  // uploaded (the caller then re-gathers sharded parameters).
  absl::StatusOr<bool> Flush();
  // Whether the current step's update is delayed.
  bool delayed() const { return Delayed(step_); }
  // Threads of the worker's CPU AdamW.
  int cpu_threads() const { return cpu_threads_; }
  // The pinned staging pool, or null when the offloaded state takes copies directly.
  const StagingPool* staging() const { return staging_.get(); }

  OffloadTimes TakeTimes();

 private:
  // A piece of a Unit's gradient on its way down through staging buffer `buffer`.
  struct Chunk {
    int unit = 0;
    int buffer = 0;
    int64_t ticket = 0;
    size_t offset = 0;  // in offload_grads, elements
    size_t numel = 0;
  };
  struct Task {
    int unit = 0;
    int64_t step = 0;
    int64_t ticket = 0;  // the gradient copy to wait for (0: staged in chunks)
    bool clipping = false;
    kernels::AdamWParams params;
  };

  OffloadedOptimizer(Model& model, kernels::Ops& ops, const OptimizerConfig& opt,
                     int64_t delayed_from, ExternalOptimizerState* external)
      : model_(model), ops_(ops), opt_(opt), delayed_from_(delayed_from), external_(external) {}
  absl::Status StepUnit(const Task& task);  // worker, without mu_
  void Work();
  // Under mu_: the queued task to step next (chunks landed, scale known), or queue_.end(). Among
  // the tasks whose gradients have landed: for synchronous steps the oldest step's lowest Unit
  // (the next forward needs it first), for delayed steps its highest (the next backward needs it
  // first). If none has landed, the one whose copy was issued first. External state: the lowest
  // Unit, landed or not (the order it streams in).
  std::deque<Task>::iterator ReadyTask();
  void LandChunk(const Chunk& chunk);  // worker, without mu_
  // Blocks until Unit u's update of `step` is done (timed as waiting).
  void WaitUpdated(int u, int64_t step);
  // Issues Unit u's pending upload on the training thread, unless the worker has.
  void Upload(int u);
  // Copies Unit u's updated parameters up (the worker's on the upload stream); returns the ticket.
  int64_t IssueUpload(int u, bool from_worker);
  // Whether the Unit's update is copied up (not: updated in place, in the backend, or empty).
  static bool UpdateGoesUp(const UnitState& unit);
  bool Delayed(int64_t step) const { return delayed_from_ > 0 && step >= delayed_from_; }
  // Whether the worker uploads the updates of `step` itself (whole Units, synchronous step).
  bool WorkerUploads(int64_t step) const { return lazy_uploads_ && !Delayed(step); }
  absl::Status error();

  Model& model_;
  kernels::Ops& ops_;
  const OptimizerConfig& opt_;
  const int64_t delayed_from_;  // 0: never
  ExternalOptimizerState* const external_;
  std::set<int64_t> skipped_;  // steps whose update was skipped (training thread only)
  int64_t step_ = 0;
  bool clipping_ = false;
  kernels::AdamWParams params_;
  std::vector<int> order_;        // this step's Units in hook order
  std::vector<int64_t> pending_;  // per Unit: the step of its update not yet uploaded, or 0
  int cpu_threads_ = 1;
  bool lazy_uploads_ = false;  // whole Units: the worker uploads, the next forward waits (3. above)
  std::unique_ptr<StagingPool> staging_;
  size_t staging_elements_ = 0;
  int64_t last_ticket_ = 0;  // of the last copy issued

  std::mutex mu_;  // guards the fields below, shared with the worker
  std::condition_variable cv_;
  std::deque<Task> queue_;
  std::deque<Chunk> landing_;        // staged chunks in copy order
  std::vector<int> unlanded_;        // per Unit: its chunks not yet in offload_grads
  std::map<int64_t, float> scales_;  // grad scale per step, once known (NaN: skipped)
  std::vector<int64_t> done_;        // per Unit: the last step whose update is done
  std::vector<int64_t> uploads_;     // per Unit: its upload's ticket, until the backend waits on it
  absl::Status error_;
  bool stop_ = false;
  OffloadTimes times_;
  std::thread worker_;
};

}  // namespace spillway
