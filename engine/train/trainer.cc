#include "engine/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/file_io.h"
#include "core/status.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/data/synthetic_language.h"
#include "engine/hf/hf_folder.h"
#include "engine/hf/hf_model.h"
#include "engine/plan/fit.h"
#include "engine/plan/plan_config.h"
#include "engine/plan/report.h"
#include "engine/train/compact_adamw.h"
#include "engine/train/lr_schedule.h"
#include "engine/train/nvme_adamw.h"
#include "engine/train/optimizer_step.h"
#include "engine/train/sharded_checkpoint.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_adam.h"
#include "offload/nvme_file.h"
#include "partitioner/rank_info.h"
#include "partitioner/threaded_communicator.h"
#if SPILLWAY_WITH_NCCL
#include "partitioner/nccl_communicator.h"
#endif

namespace spillway {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// What a rank's checkpoint file holds of the model: per Unit, this rank's shard of its
// parameters and AdamW moments, as blobs named "<unit>/params", "<unit>/exp_avg" and
// "<unit>/exp_avg_sq"; each blob is the flat range [shard.begin, shard.end) of its Unit. With
// one rank the shard is the whole Unit.
struct CheckpointedRange {
  std::string name;
  Buffer* buffer;
  size_t origin;     // the flat index of the buffer's first element (the shard's, or 0)
  ShardRange shard;  // the flat range this rank saves
  size_t numel;      // the Unit's elements (the flat ranges' padding is past them)
  bool optimizer_state;
  bool whole;  // every rank holds the whole Unit in `buffer`, so loads all of it
  // External optimizer state (engine/train/external_optimizer_state.h): `buffer` is null and
  // the range is `moment` of Unit `unit` there, laid out as `buffer` would be.
  int unit = -1;
  ExternalOptimizerState::Moment moment = ExternalOptimizerState::kExpAvg;
  // Parameters on NVMe: saved from the external master of Unit `unit`, loaded into `buffer`
  // (UnitState::incoming_params), which CopyParamsToOffloadMaster then writes there.
  bool external_master = false;
};

std::vector<CheckpointedRange> CheckpointedRanges(Model& model) {
  std::vector<CheckpointedRange> out;
  for (int u = 0; u < model.num_units(); ++u) {
    UnitState& unit = model.unit(u);
    const std::string& name = unit.layout.name();
    const bool sharded = unit.optimizer_sharded();
    const size_t moment_origin = sharded ? unit.shard.begin : 0;
    const bool params_sharded = unit.params_sharded();
    out.push_back({name + "/params", &unit.incoming_params(), params_sharded ? unit.shard.begin : 0,
                   unit.shard, unit.numel(), false, !params_sharded, u,
                   ExternalOptimizerState::kExpAvg, unit.params_in_master});
    const bool external = unit.optimizer_state_external();
    out.push_back({name + "/exp_avg", external ? nullptr : &unit.exp_avg, moment_origin, unit.shard,
                   unit.numel(), true, !sharded, u, ExternalOptimizerState::kExpAvg});
    out.push_back({name + "/exp_avg_sq", external ? nullptr : &unit.exp_avg_sq, moment_origin,
                   unit.shard, unit.numel(), true, !sharded, u, ExternalOptimizerState::kExpAvgSq});
  }
  return out;
}

// The mean of `value` over all ranks (rank order, so the same on every rank).
absl::StatusOr<double> MeanOverRanks(Communicator& comm, double value) {
  if (comm.world_size() == 1) return value;
  float x = static_cast<float>(value);
  SPW_RETURN_IF_ERROR(comm.AllReduceSum(&x, 1));
  return static_cast<double>(x) / comm.world_size();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const Config& config, std::FILE* out,
                                                         Communicator* comm) {
  auto trainer = std::unique_ptr<Trainer>(new Trainer(config, out));
  if (comm == nullptr) {
    trainer->own_comm_ = Communicator::Single();
    comm = trainer->own_comm_.get();
  }
  trainer->comm_ = comm;
  // A pipelined rank makes every MPI call from this thread (pipeline/peer_transport.h).
  if (comm->world_size() > 1 && config.pipeline.stages == 1) {
    // Host collectives on a thread of their own: they overlap with compute, and a rank that
    // stops taking part makes the others fail after trainer.comm_timeout_s, not hang.
    trainer->threaded_comm_ =
        std::make_unique<ThreadedCommunicator>(comm, config.trainer.comm_timeout_s);
    trainer->comm_ = trainer->threaded_comm_.get();
  }
  trainer->data_comm_ = trainer->comm_;
  if (comm->rank() != 0) trainer->out_ = nullptr;
  SPW_RETURN_IF_ERROR(trainer->Setup());
  return trainer;
}

absl::Status Trainer::AgreeAcrossRanks(const absl::Status& local, absl::string_view what) {
  if (comm_->world_size() == 1) return local;
  float failed = local.ok() ? 0.0f : 1.0f;
  SPW_RETURN_IF_ERROR(comm_->AllReduceSum(&failed, 1));
  if (!local.ok()) return local;
  if (failed > 0) {
    return absl::AbortedError(absl::StrCat("another rank failed at ", what, "; see its message"));
  }
  return absl::OkStatus();
}

absl::Status Trainer::Setup() {
  const int world = comm_->world_size();
  if (world > 1) {
    SPW_ASSIGN_OR_RETURN(bool same,
                         comm_->AllEqual(std::hash<std::string>()(config_.canonical_json)));
    if (!same) {
      return absl::FailedPreconditionError(
          "the config differs between ranks; every rank must train with the same config");
    }
  }
  // One GPU per rank, or pipeline stages sharing a node's GPUs (rank_info.h's GpuForRank).
  int device = 0;
  const bool gpu_ranks = world > 1 && config_.trainer.backend != "cpu";
  const bool pipelined = config_.pipeline.stages > 1;
  if (gpu_ranks) {
    SPW_ASSIGN_OR_RETURN(const RankInfo info, RankInfoFromEnvironment());
    const int gpus = kernels::GpuCount();
    const absl::StatusOr<int> gpu = GpuForRank(info, gpus, /*may_share=*/pipelined);
    SPW_RETURN_IF_ERROR(
        AgreeAcrossRanks(Annotate(gpu.status(), "trainer.backend"), "choosing its GPU"));
    device = *gpu;
    if (info.local_world_size > gpus) {
      Print(absl::StrFormat("pipeline: %d stage ranks share this node's %d GPU%s",
                            info.local_world_size, gpus, gpus == 1 ? "" : "s"));
    }
  }
  absl::StatusOr<std::unique_ptr<kernels::Ops>> ops =
      kernels::CreateOps(config_.trainer.backend, device);
  SPW_RETURN_IF_ERROR(
      AgreeAcrossRanks(Annotate(ops.status(), "trainer.backend"), "creating its backend"));
  ops_ = std::move(ops).value();
  ops_->SetMatmulPrecision(MatmulPrecisionOf(config_.precision.mode));
  ops_->SetMatmulAutotune(config_.trainer.matmul_autotune);
  // Pipeline stages run without data parallelism on GPUs (config check): no NCCL, which would
  // refuse stages that share a GPU.
  if (gpu_ranks && !pipelined) {
#if SPILLWAY_WITH_NCCL
    SPW_ASSIGN_OR_RETURN(own_data_comm_, NcclCommunicator::Create(*comm_, ops_->native_stream(),
                                                                  config_.trainer.comm_timeout_s));
    data_comm_ = own_data_comm_.get();
#else
    return absl::FailedPreconditionError(
        "trainer.backend: several GPU ranks need NCCL, which this build of spillway lacks");
#endif
  }
  std::vector<int> held_units;  // empty: all
  if (config_.pipeline.stages > 1) {
    SPW_ASSIGN_OR_RETURN(const PipelinePlacement placement,
                         PlacePipeline(config_, comm_->rank(), world));
    SPW_ASSIGN_OR_RETURN(pipeline_, PipelineStep::Create(config_, placement, *comm_));
    data_comm_ = &pipeline_->dp_group();
    held_units = pipeline_->HeldUnits(config_.model);
  }
  SPW_RETURN_IF_ERROR(AgreeAcrossRanks(ResolveAutoOffload(), "choosing the optimizer placement"));
  SPW_RETURN_IF_ERROR(AgreeAcrossRanks(CheckMemoryPlan(), "checking the memory plan"));
  SPW_RETURN_IF_ERROR(LoadData());
  const int B = static_cast<int>(config_.train_micro_batch_size_per_gpu);
  // Data parallelism (and ZeRO) spans data_comm_: all ranks, or a pipeline stage's group.
  ShardingPlan sharding;
  sharding.world_size = data_comm_->world_size();
  sharding.rank = data_comm_->rank();
  // One rank has nothing to shard, unless its parameters live in CPU memory (stage 3).
  sharding.stage = sharding.world_size > 1 || config_.zero.offload_param ? config_.zero_stage : 0;
  sharding.offload_params = config_.zero.offload_param;
  sharding.params_in_master = config_.zero.param_nvme;
  sharding.offload_ratio = config_.zero.offload_ratio;  // AddUnits applies it to an offload
  sharding.offload_optimizer = config_.zero.offload_optimizer;
  sharding.offload_tier = memory_plan_.offload_tier;
  sharding.external_optimizer_state = config_.zero.optimizer_nvme || CompactAdamW::Wanted(config_);
  SPW_ASSIGN_OR_RETURN(
      model_, CreateModel(config_.model, B, config_.activation_checkpointing, ops_.get(), sharding,
                          config_.cpu_checkpointing, held_units));
  ResidencyOptions residency;
  residency.overlap = config_.zero.overlap_comm;
  residency.reduce_bucket_elements = static_cast<size_t>(config_.zero.reduce_bucket_size);
  residency.prefetch_elements = static_cast<size_t>(config_.zero.stage3_prefetch_bucket_size);
  residency.max_live_elements = static_cast<size_t>(config_.zero.stage3_max_live_parameters);
  SPW_ASSIGN_OR_RETURN(residency_,
                       UnitResidency::Create(model_->units(), *ops_, *data_comm_, residency));
  model_->set_residency(residency_.get());
  if (pipeline_ != nullptr) {
    SPW_RETURN_IF_ERROR(pipeline_->Attach(*model_, *ops_, *train_loader_, *residency_));
  }
  SPW_RETURN_IF_ERROR(AgreeAcrossRanks(CreateExternalState(), "creating its optimizer state"));
  // A pipeline stage steps its offloaded Units itself (AdamWStep), after the stage's schedule.
  if (config_.zero.offload_optimizer && pipeline_ == nullptr) {
    SPW_ASSIGN_OR_RETURN(
        offload_,
        OffloadedOptimizer::Create(
            *model_, *ops_, config_.optimizer,
            config_.zero.offload_delayed_update ? config_.zero.delayed_update_warmup + 1 : 0,
            static_cast<int>(config_.zero.staging_buffer_count),
            static_cast<size_t>(config_.zero.staging_buffer_size), external_state_.get()));
    residency_->set_grads_final_hook([this](int u) { offload_->OnGradsFinal(u); });
    residency_->set_params_needed_hook([this](int u) { offload_->OnParamsNeeded(u); });
  }
  // Large models take minutes here (one random stream per Unit; NVMe writes): say so first.
  const auto params_start = std::chrono::steady_clock::now();
  const std::string param_count = FormatCount(static_cast<double>(model_->param_count()));
  if (config_.model.init_from.empty()) {
    Print(
        absl::StrFormat("initialising %s parameters (seed %d)", param_count, config_.trainer.seed));
    SPW_RETURN_IF_ERROR(model_->InitParams(config_.trainer.seed));
  } else {
    Print(absl::StrFormat("loading %s parameters from %s", param_count, config_.model.init_from));
    SPW_RETURN_IF_ERROR(LoadInitialParams());
  }
  SPW_RETURN_IF_ERROR(CopyParamsToOffloadMaster(*model_, *ops_, external_state_.get()));
  params_ready_s_ =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - params_start).count();
  SPW_ASSIGN_OR_RETURN(step_scalars_,
                       DeviceScalars::Create(*ops_, kStepScalars, "the step's loss and norm"));
  const size_t N = static_cast<size_t>(B) * config_.model.seq_len;
  inputs_.resize(N);
  targets_.resize(N);
  PrintStartup();
  return absl::OkStatus();
}

absl::Status Trainer::ResolveAutoOffload() {
  if (!config_.zero.offload_optimizer_auto && !config_.zero.offload_param_auto &&
      !config_.zero.offload_ratio_auto) {
    return absl::OkStatus();
  }
  SPW_ASSIGN_OR_RETURN(const RankInfo ranks, RankInfoFromEnvironment());
  const int world = comm_->world_size();
  SPW_ASSIGN_OR_RETURN(
      const PlanInput input,
      PlanInputFromConfig(config_, world, std::min(world, ranks.local_world_size)));
  if (!input.nvme_path.empty()) {
    SPW_RETURN_IF_ERROR(
        Annotate(CheckNvmePath(input.nvme_path), "zero_optimization.offload_optimizer.nvme_path"));
  }
  SPW_ASSIGN_OR_RETURN(const Hardware hw,
                       DetectHardware(ops_->memory_tier() == Tier::kDevice, input.nvme_path));
  SPW_ASSIGN_OR_RETURN(const PlanResult result, PlanToFit(input, hw));
  if (!result.fit.fits()) return NotFitError(result, hw);
  // Every rank takes the most offloaded of the ranks' choices, so that all hold the same state
  // (a rank that offloads its parameters offloads its optimizer too, so the maxima agree).
  auto level_of = [](Placement p) {
    return p == Placement::kNvme ? 2.0f : p == Placement::kCpu ? 1.0f : 0.0f;
  };
  // Likewise the largest ratio and nvme_ratio (the least on the GPU, the most on NVMe).
  constexpr int kChoices = 4;  // optimizer level, parameter level, ratio, nvme_ratio
  const PlanInput& chosen = result.plan.input;
  float mine[kChoices] = {level_of(chosen.offload_optimizer), level_of(chosen.offload_param),
                          static_cast<float>(chosen.offload_ratio),
                          static_cast<float>(chosen.nvme_ratio)};
  std::vector<float> choices(kChoices * world);
  SPW_RETURN_IF_ERROR(comm_->AllGather(mine, choices.data(), kChoices));
  float most[kChoices] = {};
  for (int r = 0; r < world; ++r) {
    for (int c = 0; c < kChoices; ++c) most[c] = std::max(most[c], choices[kChoices * r + c]);
  }
  const float level = most[0], params = most[1];
  if (config_.zero.offload_optimizer_auto) {
    config_.zero.offload_optimizer_auto = false;
    config_.zero.offload_optimizer = level >= 1.0f;
    config_.zero.optimizer_nvme = level >= 2.0f;
  }
  if (config_.zero.offload_param_auto) {
    config_.zero.offload_param_auto = false;
    config_.zero.offload_param = params >= 1.0f;
    config_.zero.param_nvme = params >= 2.0f;
  }
  if (config_.zero.offload_ratio_auto) {
    config_.zero.offload_ratio_auto = false;
    // Back to the grid's doubles (a float need not hold k / kSplitSteps exactly).
    auto on_grid = [](float r) { return std::round(r * kSplitSteps) / kSplitSteps; };
    config_.zero.offload_ratio = config_.zero.offload_optimizer ? on_grid(most[2]) : 1.0;
    config_.zero.nvme_ratio = config_.zero.optimizer_nvme ? on_grid(most[3]) : 1.0;
  }
  Print(absl::StrFormat(
      "offload \"auto\": chose offload_optimizer \"%s\"%s, offload_param \"%s\"%s%s%s",
      config_.zero.optimizer_nvme      ? "nvme"
      : config_.zero.offload_optimizer ? "cpu"
                                       : "none",
      config_.zero.offload_ratio < 1.0
          ? absl::StrFormat(" with ratio %g (the last Units holding that share of the "
                            "elements step on the CPU, the others in the backend)",
                            config_.zero.offload_ratio)
          : "",
      config_.zero.param_nvme      ? "nvme"
      : config_.zero.offload_param ? "cpu"
                                   : "none",
      result.tried.empty() ? "" : " (", absl::StrJoin(result.tried, "; "),
      result.tried.empty() ? "" : ")"));
  return absl::OkStatus();
}

absl::Status Trainer::CheckMemoryPlan() {
  SPW_ASSIGN_OR_RETURN(const RankInfo ranks, RankInfoFromEnvironment());
  const int world = comm_->world_size();
  SPW_ASSIGN_OR_RETURN(
      const PlanInput input,
      PlanInputFromConfig(config_, world, std::min(world, ranks.local_world_size)));
  if (config_.zero.optimizer_nvme) {
    // A missing or read-only nvme_path is named as such, not as a tier with no space.
    SPW_RETURN_IF_ERROR(Annotate(CheckNvmePath(config_.zero.nvme_path),
                                 "zero_optimization.offload_optimizer.nvme_path"));
  }
  SPW_ASSIGN_OR_RETURN(const Hardware hw,
                       DetectHardware(ops_->memory_tier() == Tier::kDevice, input.nvme_path));
  SPW_ASSIGN_OR_RETURN(PlanResult result, PlanToFit(input, hw));
  if (!result.fit.fits()) {
    // A stage holds only its Units: the unpipelined plan is an upper bound, not a refusal.
    if (config_.pipeline.stages == 1) return NotFitError(result, hw);
    Print(
        absl::StrCat("memory plan: pipelined runs are planned as if unpipelined (every Unit "
                     "on every rank), an upper bound that exceeds this machine; going on: ",
                     NotFitError(result, hw).message()));
  }
  memory_plan_ = std::move(result.plan);
  return absl::OkStatus();
}

absl::Status Trainer::CreateExternalState() {
  if (CompactAdamW::Wanted(config_)) {
    SPW_ASSIGN_OR_RETURN(
        external_state_,
        CompactAdamW::Create(config_, *model_, memory_plan_.offload_tier, comm_->rank()));
  } else if (config_.zero.optimizer_nvme) {
    SPW_ASSIGN_OR_RETURN(external_state_, NvmeAdamW::Create(config_, *model_, comm_->rank()));
  }
  if (!config_.zero.param_nvme) return absl::OkStatus();
  std::vector<NvmeShardReader::Location> shards;
  int file_shards = 0;  // Units 1.. read from the file: the cache's candidates
  for (int u = 0; u < model_->num_units(); ++u) {
    shards.push_back(model_->unit(u).params_in_master ? external_state_->MasterLocation(u)
                                                      : NvmeShardReader::Location());
    if (u > 0 && shards.back().file != nullptr) ++file_shards;
  }
  const std::vector<size_t> slots = residency_->param_slot_shard_numels();
  const size_t ring_numel = slots.size() > 1 ? slots[1] : 0;
  const int cache =
      NvmeShardReader::CacheCount(config_.zero.param_max_in_cpu, ring_numel, file_shards);
  absl::StatusOr<std::unique_ptr<NvmeShardReader>> reader =
      NvmeShardReader::Create(NvmeIoOptions(config_), std::move(shards), slots,
                              memory_plan_.offload_tier, cache, ring_numel);
  if (!reader.ok()) return Annotate(reader.status(), "zero_optimization.offload_param.device");
  param_reader_ = std::move(reader).value();
  residency_->set_param_reader(param_reader_.get());
  return absl::OkStatus();
}

absl::Status Trainer::LoadInitialParams() {
  const std::string& path = config_.model.init_from;
  std::error_code ec;
  if (std::filesystem::exists(path + "/config.json", ec)) {
    absl::StatusOr<HfFolder> folder = HfFolder::Open(path);
    absl::Status loaded = folder.ok() ? LoadHfParams(*folder, *model_) : folder.status();
    residency_->InvalidateParams();
    return AgreeAcrossRanks(Annotate(loaded, "model.init_from"), "loading model.init_from");
  }
  if (!std::filesystem::is_directory(path, ec)) {
    return AgreeAcrossRanks(
        absl::NotFoundError(absl::StrCat("model.init_from: ", path,
                                         " is not a directory; give a Hugging Face model folder "
                                         "(with config.json) or a spillway checkpoint")),
        "loading model.init_from");
  }
  return Annotate(ReadCheckpoint(path, /*with_optimizer_state=*/false), "model.init_from");
}

absl::Status Trainer::LoadData() {
  const DataConfig& d = config_.data;
  if (d.synthetic) {
    const SyntheticDataConfig& s = d.synthetic_config;
    SPW_ASSIGN_OR_RETURN(SyntheticLanguage language, SyntheticLanguage::Create(s.seed));
    entropy_floor_ = language.EntropyNatsPerToken();
    SPW_ASSIGN_OR_RETURN(
        TokenData train,
        TokenData::FromVector(language.Generate(s.train_tokens, s.seed, kSyntheticTrainStream),
                              kSyntheticVocabSize, "data.synthetic (train split)"));
    train_data_ = std::make_shared<const TokenData>(std::move(train));
    if (s.val_tokens > 0) {
      SPW_ASSIGN_OR_RETURN(
          TokenData val,
          TokenData::FromVector(language.Generate(s.val_tokens, s.seed, kSyntheticValStream),
                                kSyntheticVocabSize, "data.synthetic (validation split)"));
      val_data_ = std::make_shared<const TokenData>(std::move(val));
    }
    data_description_ = language.Describe();
  } else {
    SPW_ASSIGN_OR_RETURN(TokenData train, TokenData::Open(d.train_path));
    train_data_ = std::make_shared<const TokenData>(std::move(train));
    if (!d.val_path.empty()) {
      SPW_ASSIGN_OR_RETURN(TokenData val, TokenData::Open(d.val_path));
      val_data_ = std::make_shared<const TokenData>(std::move(val));
    }
    data_description_ = absl::StrCat("token files ", d.train_path,
                                     d.val_path.empty() ? "" : absl::StrCat(", ", d.val_path));
  }
  for (const TokenData* data : {train_data_.get(), val_data_.get()}) {
    if (data != nullptr && data->vocab_size() > static_cast<uint32_t>(config_.model.vocab_size)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "model.vocab_size is %d but %s has a vocabulary of %d tokens; set model.vocab_size to "
          "at least %d",
          config_.model.vocab_size, data->name(), data->vocab_size(), data->vocab_size()));
    }
  }
  BatchLoaderOptions options;
  options.batch_size = config_.train_micro_batch_size_per_gpu;
  options.seq_len = config_.model.seq_len;
  options.seed = config_.trainer.seed;
  options.world_size = data_comm_->world_size();
  options.rank = data_comm_->rank();
  SPW_ASSIGN_OR_RETURN(BatchLoader train_loader, BatchLoader::Create(train_data_, options));
  train_loader_ = std::make_unique<BatchLoader>(std::move(train_loader));
  if (val_data_ != nullptr) {
    SPW_ASSIGN_OR_RETURN(BatchLoader val_loader, BatchLoader::Sequential(val_data_, options));
    val_loader_ = std::make_unique<BatchLoader>(std::move(val_loader));
  }
  return absl::OkStatus();
}

void Trainer::Print(const std::string& line) const {
  if (out_ == nullptr) return;
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

void Trainer::PrintStartup() const {
  const ModelConfig& m = config_.model;
  Print(absl::StrFormat(
      "model: %s, seq_len %d, vocab %d: %s parameters in %d Units%s, ready in %.1f s",
      model_->Describe(), m.seq_len, m.vocab_size,
      FormatCount(static_cast<double>(model_->param_count())), model_->num_units(),
      m.init_from.empty() ? "" : absl::StrCat(", loaded from ", m.init_from), params_ready_s_));
  const int world = comm_->world_size();
  for (const std::string& line : FormatStartupMemory(memory_plan_)) Print(line);
  if (memory_plan_.input.offload_optimizer != Placement::kNone) {
    // With offload_optimizer.ratio the first Units stay in the backend (the line below says which).
    const char* what =
        config_.zero.param_nvme ? "fp32 gradient shards; the parameter shards are the optimizer's "
                                  "fp32 master, on NVMe (with nvme_ratio the first offloaded "
                                  "Units' in CPU memory)"
        : config_.zero.offload_param && external_state_ != nullptr
            ? "fp32 parameter and gradient shards"
        : config_.zero.offload_param
            ? "fp32 parameter and gradient shards, which AdamW updates in place, Adam m and v"
        : external_state_ != nullptr ? "gradient copies"
                                     : "fp32 master parameters, gradient copies, Adam m and v";
    Print(absl::StrFormat(
        "%s offloaded to %s memory (%s); AdamW on the CPU (%s, %d threads on %d CPUs)",
        config_.zero.offload_param ? "parameters and optimizer" : "optimizer",
        TierName(memory_plan_.offload_tier), what,
        kernels::cpu::CpuIsaName(kernels::cpu::BestCpuIsa()),
        offload_ != nullptr ? offload_->cpu_threads() : kernels::cpu::CpuKernelThreads(),
        kernels::cpu::CpusAvailable()));
    if (config_.zero.offload_ratio < 1.0) {
      int first = 0;
      double in_backend = 0.0;
      for (; first < model_->num_units() && !model_->unit(first).optimizer_offloaded(); ++first) {
        in_backend += static_cast<double>(model_->unit(first).numel());
      }
      Print(absl::StrFormat(
          "partial offload (offload_optimizer.ratio %g): Units %d-%d step on the CPU, the first "
          "%d (%s elements) in the backend",
          config_.zero.offload_ratio, first, model_->num_units() - 1, first,
          FormatCount(in_backend)));
    }
  }
  if (external_state_ != nullptr) Print(external_state_->Describe());
  if (param_reader_ != nullptr) {
    const size_t cache = param_reader_->cache_bytes();
    Print(absl::StrFormat(
        "parameters read from NVMe through %s into %s of host staging (%d buffers), as far ahead "
        "as the stage-3 prefetch; %s",
        param_reader_->engine_name(),
        FormatBytes(static_cast<double>(param_reader_->host_bytes() - cache)),
        static_cast<int>(residency_->param_slot_shard_numels().size()),
        param_reader_->cache_count() == 0
            ? std::string("no cache (offload_param.max_in_cpu)")
            : absl::StrFormat("a %s cache keeps the last %d Units read for their next use "
                              "(offload_param.max_in_cpu)",
                              FormatBytes(static_cast<double>(cache)),
                              param_reader_->cache_count())));
  }
  if (offload_ != nullptr && offload_->staging() != nullptr) {
    const StagingPool& pool = *offload_->staging();
    Print(absl::StrFormat(
        "offload staging: %d pinned buffers of %s (%s), through which gradients reach the "
        "pageable offloaded state",
        pool.count(), FormatBytes(static_cast<double>(pool.buffer_bytes())),
        FormatBytes(static_cast<double>(pool.total_bytes()))));
  }
  if (residency_->working_bytes() > 0) {
    Print(absl::StrFormat(
        "ZeRO stage %d working buffers: %s (whole Units being gathered or reduced%s)",
        config_.zero_stage, FormatBytes(static_cast<double>(residency_->working_bytes())),
        residency_->prefetch_units() > 0
            ? absl::StrFormat(", prefetch %d Units ahead", residency_->prefetch_units())
            : ""));
  }
  const std::string ranks =
      world > 1 ? absl::StrFormat(" x %d ranks, ZeRO stage %d", world, config_.zero_stage) : "";
  Print(
      absl::StrFormat("batch: %d sequences x %d tokens per step (micro-batch %d x %d "
                      "accumulation steps%s), backend %s",
                      config_.train_batch_size, m.seq_len, config_.train_micro_batch_size_per_gpu,
                      config_.gradient_accumulation_steps, ranks, ops_->name()));
  if (pipeline_ != nullptr) {
    const PipelinePlacement& p = pipeline_->placement();
    std::string stages;
    for (int s = 0; s < p.stages; ++s) {
      absl::StrAppend(&stages, s == 0 ? "" : ", ", "[", p.partition.begin(s), ", ",
                      p.partition.end(s), ")");
    }
    Print(
        absl::StrFormat("pipeline: %d stages x %d data-parallel, schedule %s, %d micro-batches "
                        "per step, partition %s: Units %s",
                        p.stages, p.dp, config_.pipeline.schedule,
                        config_.gradient_accumulation_steps, config_.pipeline.partition, stages));
  }
  Print("data: " + data_description_);
}

absl::Status Trainer::PipelinedStep() {
  const int64_t step = step_ + 1;
  const double lr = LearningRate(config_.optimizer, config_.scheduler, step);
  SPW_ASSIGN_OR_RETURN(const PipelineStep::Result result, pipeline_->Step(step, lr));
  SPW_RETURN_IF_ERROR(CheckLoss(result.loss, step));
  step_ = step;
  step_losses_.push_back(result.loss);
  last_loss_ = result.loss;
  last_lr_ = lr;
  last_grad_norm_ = result.grad_norm;
  last_utilization_ = result.utilization;
  return absl::OkStatus();
}

absl::Status Trainer::CheckLoss(double loss, int64_t step) const {
  if (std::isfinite(loss)) return absl::OkStatus();
  return absl::InternalError(
      absl::StrFormat("the training loss is %f at step %d; lower optimizer.params.lr or set "
                      "gradient_clipping, and resume from the last checkpoint",
                      loss, step));
}

absl::Status Trainer::TrainStep() {
  if (pipeline_ != nullptr) return PipelinedStep();
  const int64_t step = step_ + 1;
  // Skipped steps do not count for the optimizer: neither its LR schedule nor bias correction.
  const int64_t optimizer_step = step - skipped_steps_;
  const double lr = LearningRate(config_.optimizer, config_.scheduler, optimizer_step);
  const double loss_scale = scaler_.scale();
  if (offload_ != nullptr) {
    // Loss scaling: the unscaling factor and whether the step is skipped come after the backward.
    offload_->BeginStep(step, optimizer_step, lr,
                        config_.gradient_clipping > 0.0 || scaler_.enabled() || loss_scale != 1.0);
  }
  const Clock::time_point start = Clock::now();
  SPW_RETURN_IF_ERROR(IssueForwardBackward(loss_scale));
  const int64_t accum = config_.gradient_accumulation_steps;
  // The step's one wait: the summed losses and the gradients' sum of squares.
  double scalars[kStepScalars];
  SPW_RETURN_IF_ERROR(step_scalars_.Read(*ops_, scalars));
  compute_s_ += SecondsSince(start);
  SPW_ASSIGN_OR_RETURN(const double loss,
                       MeanOverRanks(*comm_, scalars[kLossSum] / static_cast<double>(accum)));
  // fp16: a loss that is not finite is an overflow like the gradients' (the step is skipped).
  if (!scaler_.enabled()) SPW_RETURN_IF_ERROR(CheckLoss(loss, step));
  OptimizerStepResult result;
  if (std::isfinite(loss)) {
    GradScaling scaling;
    scaling.loss_scale = loss_scale;
    scaling.skip_non_finite = scaler_.enabled();
    SPW_ASSIGN_OR_RETURN(
        result,
        ApplyOptimizerStep(*model_, *ops_, *data_comm_, *comm_, config_.optimizer, lr,
                           config_.gradient_clipping, optimizer_step, scalars[kGradSumSquares],
                           scaling, external_state_.get(), offload_.get()));
  } else {
    result.grad_norm = std::numeric_limits<double>::quiet_NaN();
    result.skipped = true;
    if (offload_ != nullptr) SPW_RETURN_IF_ERROR(offload_->FinishStep(0.0f, /*skipped=*/true));
  }
  if (result.skipped) ++skipped_steps_;
  SPW_RETURN_IF_ERROR(scaler_.Update(result.skipped));
  residency_->InvalidateParams();
  step_ = step;
  step_losses_.push_back(loss);
  last_loss_ = loss;
  last_lr_ = lr;
  last_grad_norm_ = result.grad_norm;
  return absl::OkStatus();
}

bool Trainer::StepGraphEligible() const {
  return config_.trainer.cuda_graphs && ops_->memory_tier() == Tier::kDevice &&
         config_.gradient_accumulation_steps == 1 && comm_->world_size() == 1 &&
         pipeline_ == nullptr && offload_ == nullptr && external_state_ == nullptr &&
         param_reader_ == nullptr && !scaler_.enabled() && !config_.cpu_checkpointing &&
         residency_->working_bytes() == 0;
}

absl::Status Trainer::IssueForwardBackward(double loss_scale) {
  // The first step runs plain: it settles what the ops allocate and tune on first use.
  if (!step_graph_tried_ && plain_steps_ > 0 && StepGraphEligible()) {
    SPW_RETURN_IF_ERROR(CaptureStepGraph(loss_scale));
  }
  const bool copies_current = std::ranges::all_of(
      graph_reads_current_copies_, [&](int u) { return model_->unit(u).weight_copy_current; });
  if (step_graph_ != nullptr && copies_current) {
    int32_t* tokens = graph_tokens_.as<int32_t>();
    const size_t N = inputs_.size();
    train_loader_->Next(tokens, tokens + N);
    return step_graph_->Replay();
  }
  ++plain_steps_;
  return IssueMicroBatches(loss_scale, /*recorded_tokens=*/nullptr);
}

absl::Status Trainer::IssueMicroBatches(double loss_scale, const int32_t* recorded_tokens) {
  model_->ZeroGrads();
  step_scalars_.Zero(*ops_);
  const int64_t accum = config_.gradient_accumulation_steps;
  const size_t N = inputs_.size();
  for (int64_t micro = 0; micro < accum; ++micro) {
    if (recorded_tokens == nullptr) train_loader_->Next(inputs_.data(), targets_.data());
    const int32_t* inputs = recorded_tokens != nullptr ? recorded_tokens : inputs_.data();
    const int32_t* targets = recorded_tokens != nullptr ? recorded_tokens + N : targets_.data();
    model_->ForwardBackward(
        inputs, targets, step_scalars_.at(kLossSum),
        static_cast<float>(loss_scale) / static_cast<float>(accum * comm_->world_size()),
        micro == accum - 1);
    SPW_RETURN_IF_ERROR(residency_->FinishGrads());
  }
  AddGradSumSquares(*model_, *ops_, step_scalars_.at(kGradSumSquares));
  return absl::OkStatus();
}

absl::Status Trainer::CaptureStepGraph(double loss_scale) {
  step_graph_tried_ = true;
  const size_t N = inputs_.size();
  absl::Status recorded = [&]() -> absl::Status {
    SPW_ASSIGN_OR_RETURN(graph_tokens_, Buffer::Allocate(2 * N * sizeof(int32_t), Tier::kPinnedHost,
                                                         "the step graph's tokens"));
    graph_reads_current_copies_.clear();
    for (int u = 0; u < model_->num_units(); ++u) {
      if (model_->unit(u).weight_copy_current) graph_reads_current_copies_.push_back(u);
    }
    SPW_RETURN_IF_ERROR(ops_->BeginCapture());
    const absl::Status issued = IssueMicroBatches(loss_scale, graph_tokens_.as<int32_t>());
    absl::StatusOr<std::unique_ptr<kernels::OpsGraph>> graph = ops_->EndCapture();
    SPW_RETURN_IF_ERROR(issued);
    SPW_ASSIGN_OR_RETURN(step_graph_, std::move(graph));
    return absl::OkStatus();
  }();
  if (!recorded.ok()) {
    step_graph_.reset();
    Print(absl::StrCat("trainer.cuda_graphs: recording the step failed (", recorded.message(),
                       "); the steps run without a graph"));
    return absl::OkStatus();
  }
  Print(absl::StrFormat(
      "trainer.cuda_graphs: the forward and backward replay as one graph from step %d", step_ + 1));
  return absl::OkStatus();
}

absl::Status Trainer::Train() {
  const int64_t total = config_.trainer.steps;
  if (step_ >= total) {
    Print(absl::StrFormat("already at step %d of trainer.steps = %d: nothing to train", step_,
                          total));
    return absl::OkStatus();
  }
  SPW_RETURN_IF_ERROR(CheckCheckpointDir());
  SPW_ASSIGN_OR_RETURN(
      MetricsLog metrics,
      MetricsLog::Open(comm_->rank() == 0 ? config_.log.metrics_path : "", step_ > 0));
  const ModelConfig& m = config_.model;
  const double tokens_per_step = static_cast<double>(config_.train_batch_size) * m.seq_len;
  const double flops_per_token = model_->flops_per_token();
  const CheckpointConfig& ckpt = config_.checkpoint;

  Clock::time_point window_start = Clock::now();
  int64_t window_steps = 0;
  double seconds_per_step = 0.0;
  while (step_ < total) {
    SPW_RETURN_IF_ERROR(TrainStep());
    ++window_steps;
    const bool last = step_ == total;
    if (step_ % config_.steps_per_print == 0 || step_ == 1 || last) {
      seconds_per_step = SecondsSince(window_start) / static_cast<double>(window_steps);
      StepReport report;
      report.step = step_;
      report.total_steps = total;
      report.loss = last_loss_;
      report.lr = last_lr_;
      report.grad_norm = last_grad_norm_;
      if (scaler_.enabled()) {
        report.loss_scale = scaler_.scale();
        report.skipped_steps = skipped_steps_;
      }
      report.tokens_per_s = tokens_per_step / seconds_per_step;
      report.tflops = report.tokens_per_s * flops_per_token / 1e12;
      if (ops_->peak_flops() > 0) report.mfu = report.tflops * 1e12 / ops_->peak_flops();
      report.ms_per_step = 1e3 * seconds_per_step;
      report.eta_s = seconds_per_step * static_cast<double>(total - step_);
      report.pipeline_utilization = last_utilization_;
      Print(report.Format());
      if (offload_ != nullptr) Print(TakeOffloadSplit(window_steps));
      if (external_state_ != nullptr) {
        const std::string times = external_state_->TakeTimeReport();
        if (!times.empty()) Print(times);
      }
      if (param_reader_ != nullptr) {
        const NvmeShardReader::Stats reads = param_reader_->TakeStats();
        const double n = static_cast<double>(std::max<int64_t>(window_steps, 1));
        Print(absl::StrFormat(
            "nvme parameters per step: %s read, %s from the cache, %.1f ms waiting for reads",
            FormatBytes(static_cast<double>(reads.bytes) / n),
            FormatBytes(static_cast<double>(reads.cached_bytes) / n), 1e3 * reads.wait_s / n));
      }
      SPW_RETURN_IF_ERROR(metrics.Write(report.ToJson()));
      window_start = Clock::now();
      window_steps = 0;
    }
    const int64_t eval_every = config_.trainer.eval_interval;
    if (last || (!ckpt.dir.empty() && ckpt.interval > 0 && step_ % ckpt.interval == 0) ||
        (val_loader_ != nullptr && eval_every > 0 && step_ % eval_every == 0)) {
      SPW_RETURN_IF_ERROR(FlushOffload());
    }
    if (val_loader_ != nullptr && eval_every > 0 && (step_ % eval_every == 0 || last)) {
      SPW_ASSIGN_OR_RETURN(double eval_loss, Evaluate());
      std::string floor = entropy_floor_ ? absl::StrFormat(" (floor %.4f)", *entropy_floor_) : "";
      Print(absl::StrFormat("eval step %d | val loss %.4f%s", step_, eval_loss, floor));
      SPW_RETURN_IF_ERROR(metrics.Write({{"step", step_}, {"eval_loss", eval_loss}}));
    }
    if (!ckpt.dir.empty() && ((ckpt.interval > 0 && step_ % ckpt.interval == 0) || last)) {
      SPW_ASSIGN_OR_RETURN(std::string dir, SaveCheckpoint());
      Print("checkpoint: " + dir);
    }
    // Evals and checkpoints are not training time.
    if (window_steps == 0) window_start = Clock::now();
  }
  if (pipeline_ != nullptr) {
    SPW_ASSIGN_OR_RETURN(const PipelineStep::Summary summary, pipeline_->Finish(step_losses_));
    step_losses_ = summary.losses;
    std::string stages;
    double mean = 0.0;
    for (size_t s = 0; s < summary.utilization.size(); ++s) {
      absl::StrAppendFormat(&stages, "%s%.1f%%", s == 0 ? "" : ", ", 100 * summary.utilization[s]);
      mean += summary.utilization[s] / static_cast<double>(summary.utilization.size());
    }
    pipeline_utilization_ = summary.utilization;
    Print(absl::StrFormat("pipeline utilization (busy over wall time, per stage): %s; mean %.1f%%",
                          stages, 100 * mean));
  }
  return absl::OkStatus();
}

absl::Status Trainer::CheckCheckpointDir() const {
  const std::string& dir = config_.checkpoint.dir;
  if (dir.empty()) return absl::OkStatus();
  // Fail now, not after the first hours of training, if checkpoints cannot be written.
  const std::string probe = absl::StrCat(dir, "/.spillway_write_test.", comm_->rank());
  SPW_RETURN_IF_ERROR(Annotate(MakeDirectories(dir), "checkpoint.dir"));
  SPW_RETURN_IF_ERROR(Annotate(WriteFileAtomic(probe, absl::string_view("ok")), "checkpoint.dir"));
  std::remove(probe.c_str());
  if (step_ > 0) return absl::OkStatus();
  absl::StatusOr<std::vector<CheckpointDirEntry>> existing = ListCheckpoints(dir);
  if (existing.ok() && !existing->empty()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "checkpoint.dir %s already holds checkpoints of another run (newest %s); continue it "
        "with --resume %s, or set checkpoint.dir to a new directory",
        dir, existing->back().name, dir));
  }
  return absl::OkStatus();
}

absl::StatusOr<double> Trainer::Evaluate() {
  if (val_loader_ == nullptr) {
    return absl::FailedPreconditionError(
        "no validation data: set data.val_path or data.synthetic.val_tokens");
  }
  SPW_RETURN_IF_ERROR(FlushOffload());
  val_loader_->Reset();
  step_scalars_.Zero(*ops_);
  const int64_t batches = config_.trainer.eval_batches;
  for (int64_t i = 0; i < batches; ++i) {
    val_loader_->Next(inputs_.data(), targets_.data());
    model_->ForwardAccumulate(inputs_.data(), targets_.data(), step_scalars_.at(kLossSum));
  }
  double scalars[kStepScalars];
  SPW_RETURN_IF_ERROR(step_scalars_.Read(*ops_, scalars));
  SPW_RETURN_IF_ERROR(residency_->status());
  return MeanOverRanks(*comm_, scalars[kLossSum] / static_cast<double>(batches));
}

absl::StatusOr<std::string> Trainer::SaveCheckpoint() {
  const BatchLoader::Position position = train_loader_->position();
  nlohmann::json meta = {
      {"step", step_},
      {"model", CheckpointModelJson(config_.model)},
      {"train_batch_size", config_.train_batch_size},
      {"train_micro_batch_size_per_gpu", config_.train_micro_batch_size_per_gpu},
      {"gradient_accumulation_steps", config_.gradient_accumulation_steps},
      {"seed", config_.trainer.seed},
      {"world_size", comm_->world_size()},
      {"zero_stage", config_.zero_stage},
      {"data_position", {{"epoch", position.epoch}, {"cursor", position.cursor}}},
      {"last_loss", last_loss_},
      {"skipped_steps", skipped_steps_},
  };
  if (scaler_.enabled()) meta["loss_scaler"] = scaler_.ToJson();
  // Ranges in GPU memory are written from host copies.
  const std::vector<CheckpointedRange> ranges = CheckpointedRanges(*model_);
  std::vector<std::vector<std::byte>> staging;
  staging.reserve(ranges.size());
  std::vector<CheckpointBlob> blobs;
  for (const CheckpointedRange& r : ranges) {
    const size_t bytes = r.shard.shard_numel * sizeof(float);
    if (r.buffer == nullptr || r.external_master) {  // read back whole, keep this rank's range
      std::vector<std::byte> array(model_->unit(r.unit).optimizer_numel() * sizeof(float));
      float* floats = reinterpret_cast<float*>(array.data());
      SPW_RETURN_IF_ERROR(r.external_master
                              ? external_state_->ReadMaster(r.unit, floats)
                              : external_state_->ReadMoment(r.unit, r.moment, floats));
      const size_t skip = (r.shard.begin - r.origin) * sizeof(float);
      staging.emplace_back(array.begin() + skip, array.begin() + skip + bytes);
      blobs.push_back({r.name, staging.back()});
      continue;
    }
    std::byte* data = r.buffer->data() + (r.shard.begin - r.origin) * sizeof(float);
    if (r.buffer->on_host()) {
      blobs.push_back({r.name, {data, bytes}});
      continue;
    }
    staging.emplace_back(bytes);
    ops_->CopyToHost(staging.back().data(), data, bytes);
    blobs.push_back({r.name, staging.back()});
  }
  SPW_RETURN_IF_ERROR(ops_->Synchronize());
  CheckpointWriteOptions options;
  options.root = config_.checkpoint.dir;
  options.step = step_;
  options.rank = comm_->rank();
  options.world_size = comm_->world_size();
  options.keep_last = config_.checkpoint.keep_last;
  if (comm_->world_size() == 1) {
    absl::StatusOr<std::string> dir = WriteCheckpoint(options, meta, blobs);
    if (!dir.ok()) return Annotate(dir.status(), "checkpoint.dir");
    return dir;
  }
  // Several ranks: rank 0 prepares the directory, every rank writes its file, rank 0 commits.
  const bool leader = comm_->rank() == 0;
  SPW_RETURN_IF_ERROR(AgreeAcrossRanks(
      leader ? Annotate(PrepareCheckpoint(options).status(), "checkpoint.dir") : absl::OkStatus(),
      "preparing the checkpoint"));
  SPW_RETURN_IF_ERROR(AgreeAcrossRanks(Annotate(WriteRankFile(options, blobs), "checkpoint.dir"),
                                       "writing its checkpoint file"));
  absl::StatusOr<std::string> dir =
      leader ? CommitCheckpoint(options, meta)
             : absl::StatusOr<std::string>(
                   absl::StrCat(config_.checkpoint.dir, "/", CheckpointStepDirName(step_)));
  SPW_RETURN_IF_ERROR(
      AgreeAcrossRanks(Annotate(dir.status(), "checkpoint.dir"), "committing the checkpoint"));
  return dir;
}

absl::Status Trainer::ReadCheckpoint(const std::string& path, bool with_optimizer_state) {
  if (pipeline_ != nullptr) {
    return absl::FailedPreconditionError(
        "pipeline.stages: loading checkpoints into a pipelined run is not built yet");
  }
  SPW_RETURN_IF_ERROR(FlushOffload());  // no CPU step may still write the master copies
  residency_->InvalidateParams();
  // Every rank file, so that a checkpoint written by any number of ranks loads on this many.
  absl::StatusOr<std::vector<CheckpointReader>> opened = CheckpointReader::OpenAllRanks(path);
  SPW_RETURN_IF_ERROR(AgreeAcrossRanks(opened.status(), "opening the checkpoint"));
  const std::vector<CheckpointReader>& files = *opened;
  const nlohmann::json& meta = files.front().meta();
  SPW_RETURN_IF_ERROR(CheckCheckpointModel(files, config_.model));
  std::vector<float> host;
  for (const CheckpointedRange& r : CheckpointedRanges(*model_)) {
    if (r.optimizer_state && !with_optimizer_state) continue;
    const size_t begin = r.whole ? 0 : std::min(r.shard.begin, r.numel);
    const size_t end = r.whole ? r.numel : std::min(r.shard.end, r.numel);
    if (r.buffer == nullptr) {  // on NVMe: assemble the whole array, then write it
      std::vector<float> array(model_->unit(r.unit).optimizer_numel(), 0.0f);
      SPW_RETURN_IF_ERROR(
          LoadFlatRange(files, r.name, r.numel, begin, end, array.data() + (begin - r.origin)));
      SPW_RETURN_IF_ERROR(external_state_->WriteMoment(r.unit, r.moment, array.data()));
      continue;
    }
    float* dst = r.buffer->as<float>() + (begin - r.origin);
    if (r.buffer->on_host()) {
      SPW_RETURN_IF_ERROR(LoadFlatRange(files, r.name, r.numel, begin, end, dst));
      continue;
    }
    host.assign(end - begin, 0.0f);
    SPW_RETURN_IF_ERROR(LoadFlatRange(files, r.name, r.numel, begin, end, host.data()));
    ops_->CopyToBackend(dst, host.data(), host.size() * sizeof(float));
    SPW_RETURN_IF_ERROR(ops_->Synchronize());
  }
  SPW_RETURN_IF_ERROR(CopyParamsToOffloadMaster(*model_, *ops_, external_state_.get()));
  if (!with_optimizer_state) return absl::OkStatus();

  // The data position counts global micro-batches of windows: the global batch must match;
  // how it splits into ranks, micro-batches and accumulation steps may change.
  const int64_t saved_batch = meta.value("train_batch_size", int64_t{-1});
  if (saved_batch != config_.train_batch_size) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "checkpoint %s was trained with train_batch_size = %d but the config has %d; resuming "
        "needs the same global batch",
        path, saved_batch, config_.train_batch_size));
  }
  step_ = meta.value("step", int64_t{0});
  const nlohmann::json position = meta.value("data_position", nlohmann::json::object());
  BatchLoader::Position p{position.value("epoch", uint64_t{0}),
                          position.value("cursor", uint64_t{0})};
  SPW_RETURN_IF_ERROR(train_loader_->SetPosition(p));
  last_loss_ = meta.value("last_loss", 0.0);
  skipped_steps_ = meta.value("skipped_steps", int64_t{0});
  if (meta.contains("loss_scaler")) scaler_.FromJson(meta["loss_scaler"]);
  const int saved_world = static_cast<int>(files.size());
  Print(absl::StrFormat("resumed from %s at step %d%s", path, step_,
                        saved_world == comm_->world_size()
                            ? ""
                            : absl::StrFormat(" (written by %d ranks, resharded to %d)",
                                              saved_world, comm_->world_size())));
  return absl::OkStatus();
}

absl::Status Trainer::FlushOffload() {
  SPW_RETURN_IF_ERROR(FlushOffloadedStep(*model_, *ops_, *data_comm_, offload_.get()));
  residency_->InvalidateParams();
  return ops_->Synchronize();
}

std::string Trainer::TakeOffloadSplit(int64_t steps) {
  const OffloadTimes t = offload_->TakeTimes();
  const double n = static_cast<double>(std::max<int64_t>(steps, 1));
  const std::string line = absl::StrFormat(
      "offload per step: compute %.1f ms | PCIe %.1f ms (%s) | CPU Adam %.1f ms (%.1f ms waiting "
      "for gradients) | waiting %.1f ms%s",
      1e3 * compute_s_ / n, 1e3 * t.pcie_s / n,
      FormatBytes((t.pcie_bytes + residency_->TakeCopiedBytes()) / n), 1e3 * t.adam_s / n,
      1e3 * t.grads_wait_s / n, 1e3 * t.wait_s / n, offload_->delayed() ? " (delayed update)" : "");
  compute_s_ = 0.0;
  return line;
}

absl::StatusOr<std::vector<float>> Trainer::StoredParams(int unit) {
  SPW_RETURN_IF_ERROR(FlushOffload());
  if (model_->unit(unit).params_in_master) {
    std::vector<float> master(model_->unit(unit).optimizer_numel());
    SPW_RETURN_IF_ERROR(external_state_->ReadMaster(unit, master.data()));
    return master;
  }
  const Buffer& params = model_->unit(unit).params;
  std::vector<float> host(params.bytes() / sizeof(float));
  ops_->CopyToHost(host.data(), params.data(), params.bytes());
  SPW_RETURN_IF_ERROR(ops_->Synchronize());
  return host;
}

absl::Status Trainer::Resume(const std::string& path) { return ReadCheckpoint(path, true); }

absl::Status Trainer::LoadParams(const std::string& path) { return ReadCheckpoint(path, false); }

}  // namespace spillway
