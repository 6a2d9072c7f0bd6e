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
constexpr int kTiedParamsTag = 4;
constexpr int kLossTag = 5;

// Per rank in the step's AllGather: gradient sum of squares, loss sum, busy and wall seconds.
constexpr int kReportDoubles = 4;

// Every rank's `n` doubles, through float AllGather (bit patterns).
absl::StatusOr<std::vector<double>> GatherDoubles(Communicator& comm, const double* mine, int n) {
  const size_t floats = n * sizeof(double) / sizeof(float);
  std::vector<float> packed(floats), all(floats * comm.world_size());
  std::memcpy(packed.data(), mine, n * sizeof(double));
  SPW_RETURN_IF_ERROR(comm.AllGather(packed.data(), all.data(), floats));
  std::vector<double> out(static_cast<size_t>(n) * comm.world_size());
  std::memcpy(out.data(), all.data(), out.size() * sizeof(double));
  return out;
}

}  // namespace

int PipeMareDelay(int stages, int stage, int micro_batches) {
  return (stages - 1 - stage + micro_batches - 1) / micro_batches;
}

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
  step->m_ = static_cast<int>(config.gradient_accumulation_steps);
  const size_t N =
      static_cast<size_t>(config.train_micro_batch_size_per_gpu) * config.model.seq_len;
  const int ring = std::max(step->m_, placement.stages) + 1;
  step->inputs_.assign(ring, std::vector<int32_t>(N));
  step->targets_.assign(ring, std::vector<int32_t>(N));
  return step;
}

absl::Status PipelineStep::Attach(Model& model, kernels::Ops& ops, BatchLoader& loader,
                                  UnitResidency& residency) {
  model_ = &model;
  ops_ = &ops;
  loader_ = &loader;
  residency_ = &residency;
  model.set_params_change_before_backward(pipemare());
  const PipelinePlacement& p = placement_;
  for (int u = p.first_unit(); u < p.end_unit(); ++u) owned_units_.push_back(u);
  held_units_ = StageUnits(model.config(), p.first_unit(), p.end_unit());
  const std::vector<int> last_uses =
      StageUnits(model.config(), p.partition.begin(p.stages - 1), p.partition.end(p.stages - 1));
  shares_embed_ = (p.stage == 0 || p.stage == p.stages - 1) &&
                  std::find(last_uses.begin(), last_uses.end(), 0) != last_uses.end();
  // PipeMare: the last stage alone updates a shared embed Unit.
  update_units_ = held_units_;
  if (pipemare() && shares_embed_ && p.stage == 0) {
    std::erase(update_units_, 0);
  }
  int in_flight = 0;
  for (pipeline::Schedule schedule : {pipeline::Schedule::kGPipe, pipeline::Schedule::kOneFOneB}) {
    // The list PipeMare runs is 1F1B's over more micro-batches: as many in flight as p - s.
    const int micro_batches = pipemare() ? std::max(m_, p.stages) : m_;
    in_flight = std::max(in_flight, pipeline::MaxInFlight(pipeline::StageActions(
                                        schedule, p.stages, micro_batches, p.stage)));
  }
  SPW_ASSIGN_OR_RETURN(runner_,
                       pipeline::StageRunner::Create(p.stage, p.stages, WorldRank(p.stage - 1),
                                                     WorldRank(p.stage + 1), model.boundary_numel(),
                                                     in_flight, ops, *transport_));
  if (!pipemare()) return absl::OkStatus();
  const PipeMareConfig& pm = config_.pipeline.pipemare;
  tau_ = PipeMareDelay(p.stages, p.stage, m_);
  correcting_ = pm.discrepancy_correction && tau_ > 0;
  gamma_ = static_cast<float>(std::pow(pm.discrepancy_decay, 1.0 / std::max(tau_, 1)));
  if (correcting_) {
    for (int u : owned_units_) {
      if (!model.unit(u).params.on_host()) {
        return absl::FailedPreconditionError(
            "pipeline.pipemare.discrepancy_correction needs the parameters in host memory "
            "(trainer.backend \"cpu\")");
      }
      delta_.emplace_back(model.unit(u).numel(), 0.0f);
    }
  }
  if (shares_embed_) {
    const size_t n = model.unit(0).grads.bytes() / sizeof(float);
    tie_send_.assign(2, std::vector<float>(n));
    tie_send_h_.assign(2, 0);
    tie_recv_.assign(2, std::vector<float>(n));
    tie_recv_h_.assign(2, 0);
  }
  loss_send_.assign(2, 0.0);
  loss_send_h_.assign(2, 0);
  return absl::OkStatus();
}

std::vector<int32_t>& PipelineStep::Tokens(int64_t global, bool targets) {
  const int64_t ring = static_cast<int64_t>(inputs_.size());
  for (; loaded_ <= global; ++loaded_) {
    loader_->Next(inputs_[loaded_ % ring].data(), targets_[loaded_ % ring].data());
  }
  return targets ? targets_[global % ring] : inputs_[global % ring];
}

float PipelineStep::Forward(int mb, const float* input) {
  const int64_t g = Global(mb);
  int32_t* inputs = Tokens(g, false).data();
  int32_t* targets = Tokens(g, true).data();
  return model_->ForwardUnitsLoss(placement_.first_unit(), placement_.end_unit(), inputs, targets,
                                  input);
}

const float* PipelineStep::Output() const { return model_->UnitsOutput(placement_.end_unit()); }

void PipelineStep::BeginBackward(int mb) {
  shift_ = 0;
  if (!correcting_ || !async_started_) return;
  shift_ = static_cast<int>(updates_ - runner_->forward_versions()[mb]);
  if (shift_ > 0) ShiftWeights(-static_cast<float>(shift_));
}

void PipelineStep::EndBackward(int mb) {
  if (shift_ > 0) ShiftWeights(static_cast<float>(shift_));
  shift_ = 0;
}

void PipelineStep::Backward(int mb, const float* output_grad, bool last) {
  const double scale = static_cast<double>(m_) * placement_.dp;
  model_->BackwardUnits(placement_.first_unit(), placement_.end_unit(),
                        static_cast<float>(1.0 / scale), last, output_grad);
}

const float* PipelineStep::InputGrad() const { return model_->InputGrad(); }

void PipelineStep::ShiftWeights(float factor) {
  for (size_t i = 0; i < owned_units_.size(); ++i) {
    float* w = model_->unit(owned_units_[i]).params.as<float>();
    const std::vector<float>& d = delta_[i];
    for (size_t e = 0; e < d.size(); ++e) w[e] += factor * d[e];
  }
}

void PipelineStep::DiscrepancyBeforeUpdate() {
  for (size_t i = 0; i < owned_units_.size(); ++i) {
    const float* w = model_->unit(owned_units_[i]).params.as<float>();
    std::vector<float>& d = delta_[i];
    for (size_t e = 0; e < d.size(); ++e) d[e] = gamma_ * d[e] - (1.0f - gamma_) * w[e];
  }
}

void PipelineStep::DiscrepancyAfterUpdate() {
  for (size_t i = 0; i < owned_units_.size(); ++i) {
    const float* w = model_->unit(owned_units_[i]).params.as<float>();
    std::vector<float>& d = delta_[i];
    for (size_t e = 0; e < d.size(); ++e) d[e] += (1.0f - gamma_) * w[e];
  }
}

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

absl::StatusOr<PipelineStep::Result> PipelineStep::Step(int64_t step, double lr) {
  if (pipemare() && step > config_.pipeline.pipemare.warmup_steps) return AsyncStep(step, lr);
  return SyncStep(step, lr);
}

absl::StatusOr<PipelineStep::Result> PipelineStep::SyncStep(int64_t step, double lr) {
  const PipelinePlacement& p = placement_;
  base_ = (step - 1) * m_;
  model_->ZeroGrads();
  runner_->set_weight_version(updates_);
  SPW_RETURN_IF_ERROR(runner_->Begin(pipeline::StageActions(config_.pipeline.schedule == "gpipe"
                                                                ? pipeline::Schedule::kGPipe
                                                                : pipeline::Schedule::kOneFOneB,
                                                            p.stages, m_, p.stage)));
  SPW_ASSIGN_OR_RETURN(const double loss_sum, runner_->RunThrough(runner_->size(), *this));
  SPW_RETURN_IF_ERROR(runner_->WaitSends());
  SPW_RETURN_IF_ERROR(residency_->FinishGrads());
  SPW_RETURN_IF_ERROR(ops_->Synchronize());
  if (shares_embed_) SPW_RETURN_IF_ERROR(ReduceTiedUnit());

  const pipeline::StageTiming& timing = runner_->last_run();
  busy_s_ += timing.busy_s;
  wall_s_ += timing.wall_s;
  SPW_ASSIGN_OR_RETURN(const double stage_sum_squares,
                       GradSumSquares(*model_, *ops_, owned_units_));
  const double mine[kReportDoubles] = {stage_sum_squares, loss_sum, timing.busy_s, timing.wall_s};
  SPW_ASSIGN_OR_RETURN(const std::vector<double> all, GatherDoubles(world_, mine, kReportDoubles));
  double sum_squares = 0.0, loss = 0.0, busy = 0.0, wall = 0.0;
  for (int r = 0; r < world_.world_size(); ++r) {
    const double* theirs = all.data() + r * kReportDoubles;
    if (r / p.dp == p.stages - 1) loss += theirs[1];
    if (r % p.dp != 0) continue;  // one replica: gradients are the same in all of them
    sum_squares += theirs[0];
    busy += theirs[2];
    wall = std::max(wall, theirs[3]);
  }
  Result result;
  result.loss = loss / (static_cast<double>(m_) * p.dp);
  result.grad_norm = std::sqrt(sum_squares);
  result.utilization = wall > 0 ? busy / (p.stages * wall) : 0.0;
  const float clip = ClipScale(result.grad_norm, config_.gradient_clipping);
  if (correcting_) DiscrepancyBeforeUpdate();
  // Synchronous steps update both copies of a shared embed Unit.
  SPW_RETURN_IF_ERROR(
      AdamWStep(*model_, *ops_, *dp_group_, config_.optimizer, lr, clip, step, held_units_));
  if (correcting_) DiscrepancyAfterUpdate();
  ++updates_;
  residency_->InvalidateParams();
  SPW_RETURN_IF_ERROR(ops_->Synchronize());
  return result;
}

absl::Status PipelineStep::BeginAsync() {
  const PipelinePlacement& p = placement_;
  const PipeMareConfig& pm = config_.pipeline.pipemare;
  const int64_t total = AsyncSteps() * m_;
  std::vector<pipeline::Action> actions = pipeline::StageActions(
      pipeline::Schedule::kOneFOneB, p.stages, static_cast<int>(total), p.stage);
  // Each step's piece ends with the backward (and its send) of its last micro-batch.
  for (size_t i = 0; i < actions.size(); ++i) {
    const pipeline::Action& a = actions[i];
    const bool ends_backward = a.kind == pipeline::ActionKind::kSendGradient ||
                               (a.kind == pipeline::ActionKind::kBackward && p.stage == 0);
    if (ends_backward && (a.micro_batch + 1) % m_ == 0) chunk_end_.push_back(i + 1);
  }
  base_ = pm.warmup_steps * m_;
  SPW_RETURN_IF_ERROR(runner_->Begin(std::move(actions)));
  async_started_ = true;
  return absl::OkStatus();
}

absl::StatusOr<PipelineStep::Result> PipelineStep::AsyncStep(int64_t step, double lr) {
  const PipelinePlacement& p = placement_;
  const PipeMareConfig& pm = config_.pipeline.pipemare;
  const int64_t k = step - 1 - pm.warmup_steps;  // the asynchronous step, from 0
  const bool first = p.stage == 0, last = p.stage == p.stages - 1;
  if (!async_started_) SPW_RETURN_IF_ERROR(BeginAsync());
  if (shares_embed_) SPW_RETURN_IF_ERROR(PostTiedRecv(k));
  model_->ZeroGrads();
  runner_->set_weight_version(updates_);
  SPW_ASSIGN_OR_RETURN(const double loss_sum, runner_->RunThrough(chunk_end_[k], *this));
  SPW_RETURN_IF_ERROR(residency_->FinishGrads());
  SPW_RETURN_IF_ERROR(ops_->Synchronize());
  const pipeline::StageTiming& timing = runner_->last_run();
  busy_s_ += timing.busy_s;
  wall_s_ += timing.wall_s;

  if (first && shares_embed_) SPW_RETURN_IF_ERROR(SendTiedGrads(k));
  if (last && shares_embed_ && k > 0) SPW_RETURN_IF_ERROR(AddTiedGrads(k - 1));
  Result result;
  if (last) SPW_RETURN_IF_ERROR(SendLoss(k, loss_sum));
  if (world_.rank() == 0) {
    SPW_ASSIGN_OR_RETURN(result.loss, ReceiveLoss());
  }
  SPW_ASSIGN_OR_RETURN(const double stage_sum_squares,
                       GradSumSquares(*model_, *ops_, update_units_));
  result.grad_norm = std::sqrt(stage_sum_squares);
  result.utilization = timing.wall_s > 0 ? timing.busy_s / timing.wall_s : 0.0;
  // Each stage clips its own norm to max / sqrt(p), so the global norm stays <= max.
  const float clip =
      ClipScale(result.grad_norm, config_.gradient_clipping / std::sqrt(double(p.stages)));
  double stage_lr = lr;
  if (pm.lr_rescheduling) {
    const double progress = pm.lr_anneal_steps == 0
                                ? 1.0
                                : std::min(static_cast<double>(step - 1) / pm.lr_anneal_steps, 1.0);
    stage_lr = lr * std::pow(std::max(tau_, 1), -(1.0 - progress));
  }
  if (correcting_) DiscrepancyBeforeUpdate();
  SPW_RETURN_IF_ERROR(AdamWStep(*model_, *ops_, *dp_group_, config_.optimizer, stage_lr, clip, step,
                                update_units_));
  if (last && shares_embed_) SPW_RETURN_IF_ERROR(SendTiedParams(k));
  if (first && shares_embed_) SPW_RETURN_IF_ERROR(ReceiveTiedParams(k));
  if (first && shares_embed_ && k + 1 < AsyncSteps()) {
    SPW_RETURN_IF_ERROR(LookAheadTiedUnit(stage_lr, clip, step));
  }
  if (correcting_) DiscrepancyAfterUpdate();
  ++updates_;
  residency_->InvalidateParams();
  SPW_RETURN_IF_ERROR(ops_->Synchronize());
  return result;
}

int64_t PipelineStep::AsyncSteps() const {
  return config_.trainer.steps - config_.pipeline.pipemare.warmup_steps;
}

absl::Status PipelineStep::SendLoss(int64_t k, double loss_sum) {
  const int slot = static_cast<int>(k % 2);
  if (loss_send_h_[slot] != 0) SPW_RETURN_IF_ERROR(transport_->Wait(loss_send_h_[slot]));
  loss_send_[slot] = loss_sum;
  SPW_ASSIGN_OR_RETURN(loss_send_h_[slot],
                       transport_->StartSend(&loss_send_[slot], sizeof(double), 0, kLossTag));
  return absl::OkStatus();
}

absl::StatusOr<double> PipelineStep::ReceiveLoss() {
  const PipelinePlacement& p = placement_;
  double sum = 0.0;
  for (int d = 0; d < p.dp; ++d) {
    double theirs = 0.0;
    SPW_ASSIGN_OR_RETURN(auto h, transport_->StartRecv(&theirs, sizeof(double),
                                                       (p.stages - 1) * p.dp + d, kLossTag));
    SPW_RETURN_IF_ERROR(transport_->Wait(h));
    sum += theirs;
  }
  return sum / (static_cast<double>(m_) * p.dp);
}

absl::Status PipelineStep::PostTiedRecv(int64_t k) {
  const PipelinePlacement& p = placement_;
  const bool first = p.stage == 0;
  // The first stage receives the step's updated weights; the last stage the first stage's
  // gradient of the step, which it adds one step later.
  if (!first && k + 1 >= AsyncSteps()) return absl::OkStatus();
  std::vector<float>& buf = tie_recv_[k % 2];
  SPW_ASSIGN_OR_RETURN(tie_recv_h_[k % 2],
                       transport_->StartRecv(buf.data(), buf.size() * sizeof(float),
                                             WorldRank(first ? p.stages - 1 : 0),
                                             first ? kTiedParamsTag : kTiedUnitTag));
  return absl::OkStatus();
}

absl::Status PipelineStep::SendTied(int64_t k, const Buffer& source, int peer, int tag) {
  const int slot = static_cast<int>(k % 2);
  if (tie_send_h_[slot] != 0) SPW_RETURN_IF_ERROR(transport_->Wait(tie_send_h_[slot]));
  tie_send_h_[slot] = 0;
  std::vector<float>& buf = tie_send_[slot];
  ops_->CopyToHost(buf.data(), source.data(), buf.size() * sizeof(float));
  SPW_RETURN_IF_ERROR(ops_->Synchronize());
  SPW_ASSIGN_OR_RETURN(tie_send_h_[slot],
                       transport_->StartSend(buf.data(), buf.size() * sizeof(float), peer, tag));
  return absl::OkStatus();
}

absl::Status PipelineStep::SendTiedGrads(int64_t k) {
  if (k + 1 >= AsyncSteps()) return absl::OkStatus();  // no update left to use it
  return SendTied(k, model_->unit(0).grads, WorldRank(placement_.stages - 1), kTiedUnitTag);
}

absl::Status PipelineStep::AddTiedGrads(int64_t k) {
  const int slot = static_cast<int>(k % 2);
  SPW_RETURN_IF_ERROR(transport_->Wait(tie_recv_h_[slot]));
  tie_recv_h_[slot] = 0;
  std::vector<float>& theirs = tie_recv_[slot];
  tied_mine_.resize(theirs.size());
  UnitState& unit = model_->unit(0);
  ops_->CopyToHost(tied_mine_.data(), unit.grads.data(), unit.grads.bytes());
  SPW_RETURN_IF_ERROR(ops_->Synchronize());
  for (size_t i = 0; i < theirs.size(); ++i) tied_mine_[i] += theirs[i];
  ops_->CopyToBackend(unit.grads.data(), tied_mine_.data(), unit.grads.bytes());
  return ops_->Synchronize();
}

absl::Status PipelineStep::SendTiedParams(int64_t k) {
  return SendTied(k, model_->unit(0).params, WorldRank(0), kTiedParamsTag);
}

absl::Status PipelineStep::ReceiveTiedParams(int64_t k) {
  const int slot = static_cast<int>(k % 2);
  SPW_RETURN_IF_ERROR(transport_->Wait(tie_recv_h_[slot]));
  tie_recv_h_[slot] = 0;
  UnitState& unit = model_->unit(0);
  ops_->CopyToBackend(unit.params.data(), tie_recv_[slot].data(), unit.params.bytes());
  return ops_->Synchronize();
}

absl::Status PipelineStep::LookAheadTiedUnit(double lr, float clip, int64_t step) {
  const UnitState& unit = model_->unit(0);
  const double scale = config_.pipeline.pipemare.tied_lookahead;
  if (unit.optimizer_sharded() || unit.optimizer_offloaded() || scale == 0.0) {
    return absl::OkStatus();
  }
  OptimizerConfig no_decay = config_.optimizer;
  no_decay.weight_decay = 0.0;  // the last stage's update decays the weights
  const int tied[] = {0};
  return AdamWStep(*model_, *ops_, *dp_group_, no_decay, scale * lr, clip, step, tied);
}

absl::StatusOr<PipelineStep::Summary> PipelineStep::Finish(
    const std::vector<double>& local_losses) {
  SPW_RETURN_IF_ERROR(runner_->WaitSends());
  for (auto* handles : {&tie_send_h_, &tie_recv_h_, &loss_send_h_}) {
    for (pipeline::PeerTransport::Handle& h : *handles) {
      if (h == 0) continue;
      SPW_RETURN_IF_ERROR(transport_->Wait(h));
      h = 0;
    }
  }
  Summary summary;
  const double mine[2] = {busy_s_, wall_s_};
  SPW_ASSIGN_OR_RETURN(const std::vector<double> all, GatherDoubles(world_, mine, 2));
  for (int s = 0; s < placement_.stages; ++s) {
    const double* theirs = all.data() + 2 * s * placement_.dp;
    summary.utilization.push_back(theirs[1] > 0 ? theirs[0] / theirs[1] : 0.0);
  }
  summary.losses = local_losses;
  if (!summary.losses.empty()) {
    SPW_RETURN_IF_ERROR(
        world_.Broadcast(summary.losses.data(), summary.losses.size() * sizeof(double), 0));
  }
  return summary;
}

}  // namespace spillway
