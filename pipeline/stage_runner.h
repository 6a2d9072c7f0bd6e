// Executes one pipeline stage's action list (pipeline/schedule.h) for each training step:
// computes through a StageCompute, moves activations and their gradients to and from the
// neighbouring stages through a PeerTransport, and times the stage's compute.
//
// Memory (the backend's tier, allocated once): the inputs of the micro-batches in flight
// (MaxInFlight + 1 slots, the extra one for the receive posted ahead), as many activation send
// buffers, and two gradient buffers each way. Only a micro-batch's stage input is kept; its
// forward is recomputed before its backward unless the stage's last forward was that
// micro-batch's (schedule.h). Receives are posted one message ahead, so a transfer overlaps
// the compute before it is needed; sends complete in the background and are waited for
// before their buffer is reused and at the end of the step.
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
// floats.
class StageCompute {
 public:
  virtual ~StageCompute() = default;
  // The stage's forward of micro-batch `mb` from `input` (null on the first stage, which reads
  // its tokens). Returns the micro-batch's mean loss on the last stage, 0 elsewhere.
  virtual float Forward(int mb, const float* input) = 0;
  virtual const float* Output() const = 0;  // after Forward, except on the last stage
  // The backward of the last Forward, which was of `mb`, from `output_grad` (null on the last
  // stage). `last`: the step's last backward on this stage.
  virtual void Backward(int mb, const float* output_grad, bool last) = 0;
  virtual const float* InputGrad() const = 0;  // after Backward, except on the first stage
};

struct StageTiming {
  double busy_s = 0.0;  // in Forward (recomputes included) and Backward
  double wall_s = 0.0;  // from the start of RunStep to its end
  int recomputes = 0;
};

class StageRunner {
 public:
  // `actions`: StageActions(...) for `stage` of `stages`. prev_peer / next_peer: the transport
  // ranks of stages stage - 1 and stage + 1 (ignored at the ends). `ops`, `transport` must
  // outlive the runner.
  static absl::StatusOr<std::unique_ptr<StageRunner>> Create(std::vector<Action> actions, int stage,
                                                             int stages, int prev_peer,
                                                             int next_peer, size_t boundary_numel,
                                                             kernels::Ops& ops,
                                                             PeerTransport& transport);

  // One step: every action in order. Returns the sum of the forwards' losses (the last
  // stage's micro-batch means; 0 on other stages).
  absl::StatusOr<double> RunStep(StageCompute& compute);
  const StageTiming& last_step() const { return last_; }

 private:
  StageRunner(std::vector<Action> actions, int stage, int stages, int prev_peer, int next_peer,
              size_t boundary_numel, kernels::Ops& ops, PeerTransport& transport);
  // Posts the receive of the next `kind` action after those posted so far, if any.
  absl::Status PostNextRecv(ActionKind kind);
  absl::Status WaitRecv(ActionKind kind, int mb);
  // Copies `src` into send buffer `slot` of `bufs` (after its previous send is done) and
  // starts sending it.
  absl::Status Send(std::vector<Buffer>& bufs, std::vector<PeerTransport::Handle>& handles,
                    int slot, const float* src, int peer, int tag);

  std::vector<Action> actions_;
  int stage_, stages_, prev_peer_, next_peer_;
  size_t numel_;
  kernels::Ops& ops_;
  PeerTransport& transport_;
  int slots_;  // input slots
  std::vector<Buffer> inputs_, act_out_, grad_in_, grad_out_;
  std::vector<PeerTransport::Handle> act_out_h_, grad_out_h_;
  // Per kind of receive: the micro-batches of its actions in order, how many are posted, and
  // the posted handles by micro-batch.
  struct RecvQueue {
    std::vector<int> micro_batches;
    size_t posted = 0;
    std::vector<PeerTransport::Handle> handles;  // by micro-batch; 0: not posted
  };
  RecvQueue act_recv_, grad_recv_;
  StageTiming last_;
};

}  // namespace spillway::pipeline
