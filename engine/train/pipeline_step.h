// One training step of a pipelined run (pipeline.stages > 1, docs/pipeline.md): this rank is
// stage s (of p) of data-parallel replica d (of dp), rank = s * dp + d. It holds only the Units
// its stage uses, runs the schedule's actions on them (pipeline/stage_runner.h), reduces the
// gradients inside its stage's data-parallel group (ZeRO stages 0-1 through the model's
// UnitResidency on dp_group()), and takes the optimizer step on its Units with the global
// gradient norm over all stages.
//
// GPT-2's tied LM head: the last stage also holds the embed Unit; after the backward the first
// and last stages of a replica add their two gradients of it, so both copies take the same
// update and stay equal.
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

class PipelineStep final : public pipeline::StageCompute {
 public:
  // `world` (the job's communicator over MPI, used from this thread only) must outlive it.
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
  // Connects the step to the model built with HeldUnits (allocates the runner's buffers in
  // `ops`' tier).
  absl::Status Attach(Model& model, kernels::Ops& ops);

  struct Result {
    double loss = 0.0;       // mean over the step's global batch
    double grad_norm = 0.0;  // over all stages, before clipping
    double utilization = 0.0;
  };
  // Reads the step's micro-batches from `loader` (this replica's rows), runs the schedule,
  // reduces and clips the gradients and applies AdamW at `lr`.
  absl::StatusOr<Result> Step(int64_t step, double lr, BatchLoader& loader,
                              UnitResidency& residency);

  // StageCompute.
  float Forward(int mb, const float* input) override;
  const float* Output() const override;
  void Backward(int mb, const float* output_grad, bool last) override;
  const float* InputGrad() const override;

 private:
  PipelineStep(const Config& config, const PipelinePlacement& placement, Communicator& world)
      : config_(config), placement_(placement), world_(world) {}
  int WorldRank(int stage) const { return stage * placement_.dp + placement_.dp_index; }
  // First and last stage: add their gradients of the shared embed Unit.
  absl::Status ReduceTiedUnit();

  const Config& config_;
  PipelinePlacement placement_;
  Communicator& world_;
  std::unique_ptr<pipeline::GroupCommunicator> dp_group_;
  std::unique_ptr<pipeline::PeerTransport> transport_;
  std::unique_ptr<pipeline::StageRunner> runner_;
  Model* model_ = nullptr;
  kernels::Ops* ops_ = nullptr;
  std::vector<int> owned_units_, held_units_;
  bool shares_embed_ = false;  // the first and last stages both hold Unit 0
  std::vector<std::vector<int32_t>> inputs_, targets_;  // per micro-batch of the step
  std::vector<float> tied_mine_, tied_theirs_;
};

}  // namespace spillway
