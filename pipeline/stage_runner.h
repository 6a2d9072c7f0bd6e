// Executes one pipeline stage's action list (pipeline/schedule.h), in pieces: a whole list per
// step for GPipe and 1F1B, one list for the whole run cut at each update for PipeMare.
// Computes through a StageCompute, moves activations and their gradients to and from the
// neighbouring stages through a PeerTransport, and times the stage's compute.
//
// Memory (the backend's tier, allocated once): the inputs of the micro-batches in flight
// (max_in_flight + 1 slots, the extra one for the receive posted ahead), as many activation
// send buffers, and two gradient buffers each way. A GPU backend's transfers go through pinned
// host copies of the send and receive buffers (the transport moves host memory). Only a
// micro-batch's stage input is kept; its forward is recomputed before its backward unless the
// stage's last forward was that micro-batch's (schedule.h). Receives are posted one message ahead,
// so a transfer overlaps the compute before it is needed; sends complete in the background and are
// waited for before their buffer is reused and at the end of the step.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/ops.h"
#include "offload/buffer.h"
#include "pipeline/peer_transport.h"
#include "pipeline/schedule.h"

namespace spillway::pipeline {

// One stage's model, as the runner uses it. Pointers are backend memory of boundary_numel
// floats; `mb` is the micro-batch number of the action list being run.
class StageCompute {
 public:
  virtual ~StageCompute() = default;
  // The stage's forward of micro-batch `mb` from `input` (null on the first stage, which reads
  // its tokens). Returns the micro-batch's mean loss on the last stage, 0 elsewhere.
  virtual float Forward(int mb, const float* input) = 0;
  virtual const float* Output() const = 0;  // after Forward, except on the last stage
  // Bracket the (recomputed forward and) backward of `mb`: PipeMare's discrepancy correction
  // swaps the weights there.
  virtual void BeginBackward(int mb) {}
  virtual void EndBackward(int mb) {}
  // The backward of the last Forward, which was of `mb`, from `output_grad` (null on the last
  // stage). `last`: the last backward of the actions being run (RunThrough's range).
  virtual void Backward(int mb, const float* output_grad, bool last) = 0;
  virtual const float* InputGrad() const = 0;  // after Backward, except on the first stage
};

struct StageTiming {
  double busy_s = 0.0;  // in Forward (recomputes included) and Backward
  double wall_s = 0.0;  // from the start of RunThrough to its end
  int recomputes = 0;
};

class StageRunner {
 public:
  // Stage `stage` of `stages`; prev_peer / next_peer: the transport ranks of stages stage - 1
  // and stage + 1 (ignored at the ends); `max_in_flight`: the most MaxInFlight of the lists it
  // will run. `ops`, `transport` must outlive the runner.
  static absl::StatusOr<std::unique_ptr<StageRunner>> Create(int stage, int stages, int prev_peer,
                                                             int next_peer, size_t boundary_numel,
                                                             int max_in_flight, kernels::Ops& ops,
                                                             PeerTransport& transport);

  // Starts running `actions` (StageActions for this stage): the previous list must be done
  // (all of it run, WaitSends called).
  absl::Status Begin(std::vector<Action> actions);
  size_t size() const { return actions_.size(); }
  // Runs the list's next actions, up to index `end` (exclusive). Returns the sum of their
  // forwards' losses (the last stage's micro-batch means; 0 on other stages).
  absl::StatusOr<double> RunThrough(size_t end, StageCompute& compute);
  // Waits for the sends still in flight.
  absl::Status WaitSends();
  const StageTiming& last_run() const { return last_; }

  // Weight versions (PipeMare): the number of updates the stage's weights have had. For each
  // micro-batch of the list, the version its forward saw and its backward saw (-1: not yet).
  void set_weight_version(int64_t version) { version_ = version; }
  const std::vector<int64_t>& forward_versions() const { return forward_version_; }
  const std::vector<int64_t>& backward_versions() const { return backward_version_; }

 private:
  StageRunner(int stage, int stages, int prev_peer, int next_peer, size_t boundary_numel, int slots,
              kernels::Ops& ops, PeerTransport& transport);
  // Posts the receive of the next `kind` action after those posted so far, if any.
  absl::Status PostNextRecv(ActionKind kind);
  absl::Status WaitRecv(ActionKind kind, int mb);
  // Copies `src` into send buffer `slot` of `bufs` (after its previous send is done) and
  // starts sending it.
  absl::Status Send(std::vector<Buffer>& bufs, std::vector<Buffer>& host,
                    std::vector<PeerTransport::Handle>& handles, int slot, const float* src,
                    int peer, int tag);
  bool staged() const { return !inputs_host_.empty() || !grad_in_host_.empty(); }

  int stage_, stages_, prev_peer_, next_peer_;
  size_t numel_;
  int slots_;  // input slots
  kernels::Ops& ops_;
  PeerTransport& transport_;
  std::vector<Action> actions_;
  size_t next_ = 0;         // the next action to run
  int forward_state_ = -1;  // the micro-batch whose forward the model holds
  std::vector<Buffer> inputs_, act_out_, grad_in_, grad_out_;
  // GPU backends: pinned host staging, one per buffer above (empty on the CPU backend).
  std::vector<Buffer> inputs_host_, act_out_host_, grad_in_host_, grad_out_host_;
  std::vector<PeerTransport::Handle> act_out_h_, grad_out_h_;
  // Per kind of receive: the micro-batches of its actions in order, how many are posted, and
  // the posted handles by micro-batch.
  struct RecvQueue {
    std::vector<int> micro_batches;
    size_t posted = 0;
    std::vector<PeerTransport::Handle> handles;  // by micro-batch; 0: not posted
  };
  RecvQueue act_recv_, grad_recv_;
  int64_t version_ = 0;
  std::vector<int64_t> forward_version_, backward_version_;
  StageTiming last_;
};

}  // namespace spillway::pipeline
