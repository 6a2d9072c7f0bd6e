#include "engine/train/pipeline_step.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/status.h"
#include "engine/model/gpt2_layout.h"
#include "engine/model/llama_layout.h"
#include "engine/train/optimizer_step.h"

namespace spillway {
namespace {

// The dp group's collectives and the tied-Unit exchange: tags no other traffic uses.
constexpr int kGroupTag = 30001;
constexpr int kTiedUnitTag = 3;

// Per rank in the step's AllGather: gradient sum of squares, loss sum, busy and wall seconds.
constexpr int kReportDoubles = 4;

}  // namespace

std::vector<double> EstimatedUnitCosts(const ModelConfig& model) {
  const std::vector<UnitLayout> layouts =
      model.type == "llama" ? LlamaLayouts(model) : Gpt2Layouts(model);
  const double C = model.d_model, T = model.seq_len;
  std::vector<double> cost;
  for (size_t u = 0; u < layouts.size(); ++u) {
    if (u == 0) {
      cost.push_back(C);
    } else if (u + 1 == layouts.size()) {
      cost.push_back(6.0 * PaddedVocab(model.vocab_size) * C);
    } else {
      cost.push_back(6.0 * static_cast<double>(layouts[u].param_count()) + 12.0 * T * C);
    }
  }
  return cost;
}

absl::StatusOr<PipelinePlacement> PlacePipeline(const Config& config, int rank, int world_size) {
  PipelinePlacement p;
  p.stages = config.pipeline.stages;
  p.dp = world_size / p.stages;
  p.stage = rank / p.dp;
  p.dp_index = rank % p.dp;
  const int units = config.model.n_layer + 2;
  if (config.pipeline.partition == "balanced") {
    SPW_ASSIGN_OR_RETURN(p.partition,
                         pipeline::BalancedPartition(EstimatedUnitCosts(config.model), p.stages));
  } else {
    SPW_ASSIGN_OR_RETURN(p.partition, pipeline::UniformPartition(units, p.stages));
  }
  return p;
}

absl::StatusOr<std::unique_ptr<PipelineStep>> PipelineStep::Create(
    const Config& config, const PipelinePlacement& placement, Communicator& world) {
  auto step = std::unique_ptr<PipelineStep>(new PipelineStep(config, placement, world));
  std::vector<int> members;
  for (int d = 0; d < placement.dp; ++d) members.push_back(placement.stage * placement.dp + d);
  step->dp_group_ =
      std::make_unique<pipeline::GroupCommunicator>(&world, std::move(members), kGroupTag);
  SPW_ASSIGN_OR_RETURN(step->transport_, pipeline::MpiPeerTransport::Create());
  const int m = static_cast<int>(config.gradient_accumulation_steps);
  const size_t N =
      static_cast<size_t>(config.train_micro_batch_size_per_gpu) * config.model.seq_len;
  step->inputs_.assign(m, std::vector<int32_t>(N));
  step->targets_.assign(m, std::vector<int32_t>(N));
  return step;
}

absl::Status PipelineStep::Attach(Model& model, kernels::Ops& ops) {
  model_ = &model;
  ops_ = &ops;
  const PipelinePlacement& p = placement_;
  for (int u = p.first_unit(); u < p.end_unit(); ++u) owned_units_.push_back(u);
  held_units_ = StageUnits(model.config(), p.first_unit(), p.end_unit());
  const std::vector<int> last_uses =
      StageUnits(model.config(), p.partition.begin(p.stages - 1), p.partition.end(p.stages - 1));
  shares_embed_ = (p.stage == 0 || p.stage == p.stages - 1) &&
                  std::find(last_uses.begin(), last_uses.end(), 0) != last_uses.end();
  SPW_ASSIGN_OR_RETURN(pipeline::Schedule schedule,
                       pipeline::ParseSchedule(config_.pipeline.schedule));
  const int m = static_cast<int>(config_.gradient_accumulation_steps);
  SPW_ASSIGN_OR_RETURN(runner_, pipeline::StageRunner::Create(
                                    pipeline::StageActions(schedule, p.stages, m, p.stage), p.stage,
                                    p.stages, WorldRank(p.stage - 1), WorldRank(p.stage + 1),
                                    model.boundary_numel(), ops, *transport_));
  return absl::OkStatus();
}

float PipelineStep::Forward(int mb, const float* input) {
  return model_->ForwardUnits(placement_.first_unit(), placement_.end_unit(), inputs_[mb].data(),
                              targets_[mb].data(), input);
}

const float* PipelineStep::Output() const { return model_->UnitsOutput(placement_.end_unit()); }

void PipelineStep::Backward(int mb, const float* output_grad, bool last) {
  const double scale = static_cast<double>(config_.gradient_accumulation_steps) * placement_.dp;
  model_->BackwardUnits(placement_.first_unit(), placement_.end_unit(),
                        static_cast<float>(1.0 / scale), last, output_grad);
}

const float* PipelineStep::InputGrad() const { return model_->InputGrad(); }

absl::Status PipelineStep::ReduceTiedUnit() {
  UnitState& unit = model_->unit(0);
  const size_t bytes = unit.grads.bytes();
  tied_mine_.resize(bytes / sizeof(float));
  tied_theirs_.resize(tied_mine_.size());
  ops_->CopyToHost(tied_mine_.data(), unit.grads.data(), bytes);
  SPW_RETURN_IF_ERROR(ops_->Synchronize());
  const int peer = WorldRank(placement_.stage == 0 ? placement_.stages - 1 : 0);
  SPW_ASSIGN_OR_RETURN(auto recv,
                       transport_->StartRecv(tied_theirs_.data(), bytes, peer, kTiedUnitTag));
  SPW_ASSIGN_OR_RETURN(auto send,
                       transport_->StartSend(tied_mine_.data(), bytes, peer, kTiedUnitTag));
  SPW_RETURN_IF_ERROR(transport_->Wait(recv));
  SPW_RETURN_IF_ERROR(transport_->Wait(send));
  // Addition commutes exactly, so both stages get the same sum.
  for (size_t i = 0; i < tied_mine_.size(); ++i) tied_mine_[i] += tied_theirs_[i];
  ops_->CopyToBackend(unit.grads.data(), tied_mine_.data(), bytes);
  return ops_->Synchronize();
}

absl::StatusOr<PipelineStep::Result> PipelineStep::Step(int64_t step, double lr,
                                                        BatchLoader& loader,
                                                        UnitResidency& residency) {
  const PipelinePlacement& p = placement_;
  const int m = static_cast<int>(config_.gradient_accumulation_steps);
  model_->ZeroGrads();
  for (int mb = 0; mb < m; ++mb) loader.Next(inputs_[mb].data(), targets_[mb].data());
  SPW_ASSIGN_OR_RETURN(const double loss_sum, runner_->RunStep(*this));
  SPW_RETURN_IF_ERROR(residency.FinishGrads());
  SPW_RETURN_IF_ERROR(ops_->Synchronize());
  if (shares_embed_) SPW_RETURN_IF_ERROR(ReduceTiedUnit());

  const pipeline::StageTiming& timing = runner_->last_step();
  const double mine[kReportDoubles] = {GradSumSquares(*model_, *ops_, owned_units_), loss_sum,
                                       timing.busy_s, timing.wall_s};
  const int world = world_.world_size();
  constexpr size_t kFloats = kReportDoubles * sizeof(double) / sizeof(float);
  std::vector<float> all(kFloats * world);
  float packed[kFloats];
  std::memcpy(packed, mine, sizeof(mine));
  SPW_RETURN_IF_ERROR(world_.AllGather(packed, all.data(), kFloats));
  double sum_squares = 0.0, loss = 0.0, busy = 0.0, wall = 0.0;
  for (int r = 0; r < world; ++r) {
    double theirs[kReportDoubles];
    std::memcpy(theirs, all.data() + r * kFloats, sizeof(theirs));
    if (r / p.dp == p.stages - 1) loss += theirs[1];
    if (r % p.dp != 0) continue;  // one replica: gradients are the same in all of them
    sum_squares += theirs[0];
    busy += theirs[2];
    wall = std::max(wall, theirs[3]);
  }
  Result result;
  result.loss = loss / (static_cast<double>(m) * p.dp);
  result.grad_norm = std::sqrt(sum_squares);
  result.utilization = wall > 0 ? busy / (p.stages * wall) : 0.0;
  const float clip = ClipScale(result.grad_norm, config_.gradient_clipping);
  SPW_RETURN_IF_ERROR(
      AdamWStep(*model_, *ops_, *dp_group_, config_.optimizer, lr, clip, step, held_units_));
  residency.InvalidateParams();
  SPW_RETURN_IF_ERROR(ops_->Synchronize());
  return result;
}

}  // namespace spillway
