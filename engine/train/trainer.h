// The training loop: micro-batches with gradient accumulation, the LR schedule, clipping,
// AdamW, periodic eval on the held-out split, progress lines, metrics JSONL and checkpoints.
//
// Several ranks (CPU backend over MPI, or one GPU per rank over NCCL): each takes its rows of every
// global micro-batch, the gradients are averaged across ranks, and ZeRO stages 1-3 shard the AdamW
// state, the gradients and the parameters (partitioner/unit_state.h, partitioner/unit_residency.h).
// With pipeline.stages > 1 each rank runs one stage of one data-parallel replica
// (engine/train/pipeline_step.h); data parallelism and ZeRO then act inside each stage's group.
// Only rank 0 prints and writes the metrics log; every rank writes its own shard of each
// checkpoint. Everything the loop does to state goes through the model (Units), kernels::Ops and
// the Communicator.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/config/config.h"
#include "engine/data/batch_loader.h"
#include "engine/data/token_data.h"
#include "engine/model/model.h"
#include "engine/plan/memory_plan.h"
#include "engine/train/external_optimizer_state.h"
#include "engine/train/loss_scaler.h"
#include "engine/train/offload_optimizer.h"
#include "engine/train/pipeline_step.h"
#include "engine/train/progress.h"
#include "kernels/ops.h"
#include "offload/buffer.h"
#include "offload/nvme_shard_reader.h"
#include "partitioner/communicator.h"

namespace spillway {

class Trainer {
 public:
  // Loads or generates the data, builds the model (model.type) and initialises it from
  // trainer.seed, or loads its parameters from model.init_from (a Hugging Face folder, or a
  // spillway checkpoint; the model section must describe the same model).
  // Progress and reports go to `out` on rank 0 (null: silent). `comm` (not owned; null: one
  // rank) connects the ranks; with several, every rank must call every method in the same
  // order, and the config (parsed for comm's world size) must be the same on all of them.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const Config& config,
                                                         std::FILE* out = stdout,
                                                         Communicator* comm = nullptr);

  // Restores parameters, optimizer state, step and data position from a checkpoint (a
  // step directory, or a checkpoint root whose `latest` is followed). The model section and
  // batch sizes of the config must match the checkpoint's.
  absl::Status Resume(const std::string& path);

  // Loads only the parameters of a checkpoint (for eval).
  absl::Status LoadParams(const std::string& path);

  // Trains from the current step to config.trainer.steps.
  absl::Status Train();

  // Mean loss over trainer.eval_batches micro-batches of the validation split, always the
  // same batches. Does not change any training state.
  absl::StatusOr<double> Evaluate();

  // Writes a checkpoint of the current state under checkpoint.dir; returns its directory.
  absl::StatusOr<std::string> SaveCheckpoint();

  // This rank's stored parameters of Unit `unit` (partitioner/unit_state.h: all of them, or
  // its shard at ZeRO stage 3), copied to the host.
  absl::StatusOr<std::vector<float>> StoredParams(int unit);

  int64_t step() const { return step_; }
  Model& model() { return *model_; }
  // Mean training loss of every step taken by this Trainer, in order.
  const std::vector<double>& step_losses() const { return step_losses_; }
  // Pipelined runs, after Train: per stage, busy over wall time of the steps trained.
  const std::vector<double>& pipeline_utilization() const { return pipeline_utilization_; }
  // Pipelined runs: this rank's stage step, for tests.
  PipelineStep* pipeline_step() { return pipeline_.get(); }
  // fp16: the current loss scale (1 otherwise) and the steps skipped for overflows so far.
  double loss_scale() const { return scaler_.scale(); }
  int64_t skipped_steps() const { return skipped_steps_; }
  // The per-token entropy floor of the data, when it is known (synthetic language).
  std::optional<double> entropy_floor() const { return entropy_floor_; }
  // The offloaded optimizer state on NVMe or in a compact format, else null.
  ExternalOptimizerState* external_state() { return external_state_.get(); }
  // Parameters on NVMe: their reader (staging and cache), else null.
  const NvmeShardReader* param_reader() const { return param_reader_.get(); }
  const MemoryPlan& memory_plan() const { return memory_plan_; }

 private:
  Trainer(const Config& config, std::FILE* out)
      : config_(config), out_(out), scaler_(config.precision) {}
  // OK if `local` is OK on every rank; otherwise `local`'s error here and, on the ranks that
  // succeeded, an error saying another rank failed at `what`.
  absl::Status AgreeAcrossRanks(const absl::Status& local, absl::string_view what);
  absl::Status Setup();
  // Creates external_state_ for offload_optimizer.device = "nvme" or a compact state format,
  // and with offload_param "nvme" the residency's param_reader_.
  absl::Status CreateExternalState();
  absl::Status LoadData();
  absl::Status TrainStep();
  absl::Status PipelinedStep();
  // The step's forward and backward (every micro-batch), its loss summed and its gradients'
  // sum of squares taken into step_scalars_; issued, not waited for. From the second step
  // where StepGraphEligible(), as one replayed graph (trainer.cuda_graphs).
  absl::Status IssueForwardBackward(double loss_scale);
  // The same op by op: each micro-batch's tokens from the loader, or (recording the step graph)
  // read from recorded_tokens, inputs then targets.
  absl::Status IssueMicroBatches(double loss_scale, const int32_t* recorded_tokens);
  bool StepGraphEligible() const;
  // Records step_graph_ from the forward and backward; where the recording fails, says why and
  // leaves step_graph_ null for good.
  absl::Status CaptureStepGraph(double loss_scale);
  // InternalError with advice unless `loss` is finite.
  absl::Status CheckLoss(double loss, int64_t step) const;
  // checkpoint.dir is writable and, unless resuming, holds no other run's checkpoints.
  absl::Status CheckCheckpointDir() const;
  absl::Status ReadCheckpoint(const std::string& path, bool with_optimizer_state);
  // model.init_from into the parameters.
  absl::Status LoadInitialParams();
  // Delayed offload: the backend takes the newest parameters (before evals, checkpoints).
  absl::Status FlushOffload();
  // "offload per step: compute ... | PCIe ... | CPU Adam ... | waiting ...", and resets them.
  std::string TakeOffloadSplit(int64_t steps);
  // The memory plan (engine/plan) against this machine, before anything is allocated:
  // ResourceExhausted naming each short tier's bytes if it does not fit.
  // offload_optimizer.device "auto": the cheapest placement that fits on every rank, written
  // into config_.zero before anything is allocated.
  absl::Status ResolveAutoOffload();
  absl::Status CheckMemoryPlan();
  void PrintStartup() const;
  void Print(const std::string& line) const;

  Config config_;
  std::FILE* out_;
  LossScaler scaler_;          // fp16's loss scale (scale 1 otherwise)
  int64_t skipped_steps_ = 0;  // steps skipped for fp16 overflows, not counted by the optimizer
  std::unique_ptr<Communicator> own_comm_;       // when Create() was given none
  std::unique_ptr<Communicator> threaded_comm_;  // wraps the given one for host ranks
  std::unique_ptr<Communicator> own_data_comm_;  // NCCL, for GPU ranks
  // comm_: host memory, for control (losses, agreement, checkpoints); data_comm_: the
  // backend's memory, for gradients and parameters. The same object for the CPU backend.
  Communicator* comm_ = nullptr;
  Communicator* data_comm_ = nullptr;
  std::unique_ptr<kernels::Ops> ops_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<PipelineStep> pipeline_;  // pipelined runs (pipeline.stages > 1)
  // What CheckMemoryPlan planned: the start-up report's numbers, and the offload tier every
  // offloaded buffer takes (not Unit 0's: offload_optimizer.ratio keeps the first Units in the
  // backend).
  MemoryPlan memory_plan_;
  double params_ready_s_ = 0.0;  // seconds to initialise or load the parameters, at start-up
  std::unique_ptr<UnitResidency> residency_;  // after model_: it points into its Units
  // The offloaded master, m and v when not in the Units' Buffers; null otherwise.
  std::unique_ptr<ExternalOptimizerState> external_state_;
  // offload_param "nvme": reads the parameter shards from external_state_'s file for the
  // residency's gathers; after external_state_, so that it goes first.
  std::unique_ptr<NvmeShardReader> param_reader_;
  std::unique_ptr<OffloadedOptimizer> offload_;  // offload_optimizer only; after residency_
  double compute_s_ = 0.0;  // forward + backward since the last offload split line
  std::shared_ptr<const TokenData> train_data_, val_data_;
  std::unique_ptr<BatchLoader> train_loader_, val_loader_;
  std::vector<int32_t> inputs_, targets_;
  // The forward and backward recorded as one graph, and the page-locked host memory its token
  // copies read (inputs, then targets: the loader fills it before each replay).
  std::unique_ptr<kernels::OpsGraph> step_graph_;
  Buffer graph_tokens_;
  // The Units whose weight copies were current when the graph was recorded: its forward does
  // not round them, so it replays only while AdamW keeps them current.
  std::vector<int> graph_reads_current_copies_;
  bool step_graph_tried_ = false;
  int64_t plain_steps_ = 0;  // steps this Trainer issued without a graph
  // Accumulated in the backend's memory over a step, read back once at its end.
  enum StepScalar { kLossSum, kGradSumSquares, kStepScalars };
  DeviceScalars step_scalars_;
  std::optional<double> entropy_floor_;
  std::string data_description_;
  int64_t step_ = 0;
  std::vector<double> step_losses_;
  // Last training step's results, for progress lines.
  double last_loss_ = 0.0, last_lr_ = 0.0, last_grad_norm_ = 0.0;
  double last_utilization_ = -1.0;  // pipelined runs
  std::vector<double> pipeline_utilization_;
};

}  // namespace spillway
