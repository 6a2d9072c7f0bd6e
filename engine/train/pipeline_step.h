// One training step of a pipelined run (pipeline.stages > 1, docs/pipeline.md): this rank is
// stage s (of p) of data-parallel replica d (of dp), rank = s * dp + d. It holds only the Units
// its stage uses, runs the schedule's actions on them (pipeline/stage_runner.h), reduces the
// gradients inside its stage's data-parallel group (ZeRO stages 0-1 through the model's
// UnitResidency on dp_group()), and updates its Units.
//
// GPipe and 1F1B flush every step: the gradient norm is global (all stages), and GPT-2's tied
// LM head (the last stage also holds the embed Unit) has the first and last stages add their
// two gradients of the embed Unit, so both copies take the same update.
// PipeMare never flushes: one 1F1B list runs for the whole run, cut at each stage's update,
// so each stage updates as soon as its step's gradients are done, with no collective across
// stages: its own gradient norm for clipping, T1 and T2 (docs/pipeline.md), and for the tied
// head the embed Unit is updated by the last stage alone (with the first stage's gradient of the
// step before), whose new weights replace the first stage's copy at the end of the first stage's
// same step; the first stage then steps its copy with its own gradient of that step (look-ahead).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/config/config.h"
#include "engine/data/batch_loader.h"
#include "engine/model/model.h"
#include "kernels/ops.h"
#include "partitioner/communicator.h"
#include "partitioner/unit_residency.h"
#include "pipeline/group_communicator.h"
#include "pipeline/partition.h"
#include "pipeline/peer_transport.h"
#include "pipeline/stage_runner.h"

namespace spillway {

struct PipelinePlacement {
  int stages = 1, dp = 1;
  int stage = 0, dp_index = 0;
  pipeline::StagePartition partition;  // every stage's Units
  int first_unit() const { return partition.begin(stage); }
  int end_unit() const { return partition.end(stage); }
};

// Where world rank `rank` sits, with the Units split by pipeline.partition.
absl::StatusOr<PipelinePlacement> PlacePipeline(const Config& config, int rank, int world_size);

// The relative compute cost per Unit that the "balanced" partition evens out: 6 FLOP per
// parameter of every block, attention's 12 T d per token, the LM head's 6 Vp d; the embedding
// lookup costs d.
std::vector<double> EstimatedUnitCosts(const ModelConfig& model);

// PipeMare's delay of stage `stage`: tau = ceil((stages - 1 - stage) / micro_batches) updates
// between the weights of a step's first forward on the stage and those of its backward.
int PipeMareDelay(int stages, int stage, int micro_batches);

class PipelineStep final : public pipeline::StageCompute {
 public:
  // `config` and `world` (the job's communicator over MPI, used from this thread only) must
  // outlive it.
  static absl::StatusOr<std::unique_ptr<PipelineStep>> Create(const Config& config,
                                                              const PipelinePlacement& placement,
                                                              Communicator& world);

  // This stage's data-parallel group: for the model's UnitResidency and the optimizer.
  Communicator& dp_group() { return *dp_group_; }
  const PipelinePlacement& placement() const { return placement_; }
  // The Units this stage holds (StageUnits), to build the model with.
  std::vector<int> HeldUnits(const ModelConfig& model) const {
    return StageUnits(model, placement_.first_unit(), placement_.end_unit());
  }
  // Connects the step to the model built with HeldUnits and to the data (this replica's
  // rows); allocates the runner's buffers in `ops`' tier.
  absl::Status Attach(Model& model, kernels::Ops& ops, BatchLoader& loader,
                      UnitResidency& residency);

  struct Result {
    double loss = 0.0;         // mean over the step's global batch (PipeMare: on rank 0 only)
    double grad_norm = 0.0;    // over all stages (PipeMare: this stage's), before clipping
    double utilization = 0.0;  // busy over wall time (PipeMare: this stage's)
  };
  // Step `step` (1-based) at learning rate `lr`: runs its micro-batches, reduces and clips the
  // gradients, applies AdamW.
  absl::StatusOr<Result> Step(int64_t step, double lr);

  struct Summary {
    std::vector<double> losses;       // every step's loss, as on rank 0
    std::vector<double> utilization;  // per stage: busy over wall time of all steps
  };
  // After the last step, on every rank: waits for transfers in flight and gathers the run's
  // losses and the stages' utilization.
  absl::StatusOr<Summary> Finish(const std::vector<double>& local_losses);

  // Weight versions each micro-batch of the PipeMare list saw on this stage, forward and
  // backward (pipeline::StageRunner); empty for GPipe and 1F1B.
  const std::vector<int64_t>& forward_versions() const { return runner_->forward_versions(); }
  const std::vector<int64_t>& backward_versions() const { return runner_->backward_versions(); }

  // StageCompute.
  float Forward(int mb, const float* input) override;
  const float* Output() const override;
  void BeginBackward(int mb) override;
  void EndBackward(int mb) override;
  void Backward(int mb, const float* output_grad, bool last) override;
  const float* InputGrad() const override;

 private:
  PipelineStep(const Config& config, const PipelinePlacement& placement, Communicator& world)
      : config_(config), placement_(placement), world_(world) {}
  int WorldRank(int stage) const { return stage * placement_.dp + placement_.dp_index; }
  bool pipemare() const { return config_.pipeline.schedule == "pipemare"; }
  // The global micro-batch `mb` of the running list is; its tokens, read when first needed.
  int64_t Global(int mb) const { return base_ + mb; }
  std::vector<int32_t>& Tokens(int64_t global, bool targets);
  absl::StatusOr<Result> SyncStep(int64_t step, double lr);
  absl::StatusOr<Result> AsyncStep(int64_t step, double lr);
  // PipeMare: builds the run's list and its cuts at the updates.
  absl::Status BeginAsync();
  int64_t AsyncSteps() const;
  // First and last stage: add their gradients of the shared embed Unit.
  absl::Status ReduceTiedUnit();
  // PipeMare's tied head, asynchronous step k: the first stage's embed gradient goes to the
  // last stage, which adds it to its own of step k + 1; the last stage's updated embed weights
  // go to the first stage, which takes them at the end of its step k.
  absl::Status PostTiedRecv(int64_t k);
  absl::Status SendTied(int64_t k, const Buffer& source, int peer, int tag);
  absl::Status SendTiedGrads(int64_t k);
  absl::Status AddTiedGrads(int64_t k);
  absl::Status SendTiedParams(int64_t k);
  absl::Status ReceiveTiedParams(int64_t k);
  // The first stage, after taking the last stage's update k (not the run's last): its own
  // gradient of step k (the lookup's) steps its copy at once, by AdamW on the copy's own moments
  // without weight decay at pipemare.tied_lookahead times `lr`, extrapolating over the lag with
  // which the shared weights get that gradient. The last stage applies it in update k + 1, whose
  // weights then replace the copy. Not where the Unit's optimizer is sharded or offloaded, nor
  // with tied_lookahead 0.
  absl::Status LookAheadTiedUnit(double lr, float clip, int64_t step);
  // The last stage's loss sums of step k to rank 0, which averages them.
  absl::Status SendLoss(int64_t k, double loss_sum);
  absl::StatusOr<double> ReceiveLoss();
  // T2 around AdamW: delta <- gamma delta + (1 - gamma)(w_new - w_old).
  void DiscrepancyBeforeUpdate();
  void DiscrepancyAfterUpdate();
  // w += factor * delta over the stage's own Units.
  void ShiftWeights(float factor);

  const Config& config_;
  PipelinePlacement placement_;
  Communicator& world_;
  std::unique_ptr<pipeline::GroupCommunicator> dp_group_;
  std::unique_ptr<pipeline::PeerTransport> transport_;
  std::unique_ptr<pipeline::StageRunner> runner_;
  Model* model_ = nullptr;
  kernels::Ops* ops_ = nullptr;
  BatchLoader* loader_ = nullptr;
  UnitResidency* residency_ = nullptr;
  int m_ = 1;  // micro-batches per step
  std::vector<int> owned_units_, held_units_, update_units_;
  bool shares_embed_ = false;  // the first and last stages both hold Unit 0

  // Tokens of the micro-batches in flight, by global index modulo the ring's size.
  std::vector<std::vector<int32_t>> inputs_, targets_;
  int64_t loaded_ = 0;  // global micro-batches read so far
  int64_t base_ = 0;

  // PipeMare.
  bool async_started_ = false;
  std::vector<size_t> chunk_end_;  // per async step: the end of its actions in the list
  int64_t updates_ = 0;            // this stage's updates so far (its weight version)
  int tau_ = 0;
  int shift_ = 0;            // T2: the updates the running backward's weights are moved back by
  bool correcting_ = false;  // T2 active for this stage
  float gamma_ = 0.0f;
  std::vector<std::vector<float>> delta_;  // T2's EMA, per owned Unit (host)
  std::vector<std::vector<float>> tie_send_, tie_recv_;
  std::vector<pipeline::PeerTransport::Handle> tie_send_h_, tie_recv_h_;
  std::vector<double> loss_send_;
  std::vector<pipeline::PeerTransport::Handle> loss_send_h_;
  std::vector<float> tied_mine_, tied_theirs_;
  double busy_s_ = 0.0, wall_s_ = 0.0;  // over the run
};

}  // namespace spillway
