#include "engine/model/model.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "engine/model/bf16_activations.h"
#include "engine/model/gpt2.h"
#include "engine/model/gpt2_layout.h"
#include "engine/model/llama.h"
#include "engine/model/llama_layout.h"
#include "kernels/attention_scratch.h"
#include "partitioner/offload_split.h"

namespace spillway {

Model::~Model() = default;

void Model::ZeroGrads() {
  for (UnitState& unit : units_) {
    // Offloaded gradient shards take their first reduction of the step as a copy instead.
    if (unit.params_offloaded && residency_ != nullptr) continue;
    ops_->Fill(unit.grads.as<float>(), 0.0f, unit.grads.bytes() / sizeof(float));
  }
  if (residency_ != nullptr) residency_->BeginGradAccumulation();
}

double Model::flops_per_token() const {
  return 6.0 * static_cast<double>(param_count()) +
         12.0 * config_.n_layer * config_.d_model * config_.seq_len;
}

const TensorSpec* Model::FindTensor(absl::string_view name, int* unit_index) const {
  for (int u = 0; u < num_units(); ++u) {
    if (const TensorSpec* t = units_[u].layout.Find(name)) {
      if (unit_index != nullptr) *unit_index = u;
      return t;
    }
  }
  return nullptr;
}

float* Model::FindParam(absl::string_view name) {
  int u;
  const TensorSpec* t = FindTensor(name, &u);
  if (t == nullptr || units_[u].live_params == nullptr) return nullptr;
  units_[u].weight_copy_current = false;  // the caller may write through the pointer
  return units_[u].param(*t);
}

float* Model::FindGrad(absl::string_view name) {
  int u;
  const TensorSpec* t = FindTensor(name, &u);
  return t == nullptr || units_[u].live_grads == nullptr ? nullptr : units_[u].grad(*t);
}

absl::Status Model::SetUnitParams(int u, std::span<const float> whole) {
  UnitState& unit = units_[u];
  if (whole.size() != unit.numel()) {
    return absl::InternalError(absl::StrCat("Unit ", unit.layout.name(), ": ", whole.size(),
                                            " values given for ", unit.numel(), " parameters"));
  }
  const size_t begin = unit.params_sharded() ? std::min(unit.shard.begin, unit.numel()) : 0;
  const size_t end = unit.params_sharded() ? std::min(unit.shard.end, unit.numel()) : unit.numel();
  ops_->CopyToBackend(unit.incoming_params().as<float>() + unit.param_index(begin),
                      whole.data() + begin, (end - begin) * sizeof(float));
  unit.weight_copy_current = false;
  return ops_->Synchronize();
}

absl::Status Model::InitUnitsParallel(const std::function<void(int, std::span<float>)>& fill) {
  // In place: parameters (or, on NVMe, their incoming copy) stored whole in host memory.
  std::vector<int> in_place, copied;
  size_t largest_copied = 1;
  for (int u = 0; u < num_units(); ++u) {
    if (!holds(u)) continue;
    UnitState& unit = units_[u];
    const bool whole =
        !unit.params_sharded() || (unit.shard.begin == 0 && unit.shard.shard_numel >= unit.numel());
    if (unit.incoming_params().on_host() && whole) {
      in_place.push_back(u);
    } else {
      copied.push_back(u);
      largest_copied = std::max(largest_copied, unit.numel() * sizeof(float));
    }
  }
  // Host copies in flight (filled, or waiting to be set) stay within the planner's bound.
  const size_t scratch_limit =
      std::max<size_t>(kInitScratchBytes / largest_copied, 1) * largest_copied;
  auto bytes = [&](int u) { return units_[u].numel() * sizeof(float); };
  // Workers take the next copied Unit while its copy fits, else the next in-place one, else wait
  // for copies to be set; this thread sets each filled copy (SetUnitParams uses the backend).
  std::mutex mu;
  std::condition_variable changed;
  size_t next_copied = 0, next_in_place = 0, scratch = 0;
  size_t running = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 16);
  std::deque<std::pair<int, std::vector<float>>> filled;
  auto work = [&] {
    std::unique_lock lock(mu);
    while (true) {
      if (next_copied < copied.size() && scratch + bytes(copied[next_copied]) <= scratch_limit) {
        const int u = copied[next_copied++];
        scratch += bytes(u);
        lock.unlock();
        std::vector<float> host(units_[u].numel(), 0.0f);
        fill(u, host);
        lock.lock();
        filled.emplace_back(u, std::move(host));
        changed.notify_all();
      } else if (next_in_place < in_place.size()) {
        const int u = in_place[next_in_place++];
        lock.unlock();
        const std::span<float> host(units_[u].incoming_params().as<float>(), units_[u].numel());
        std::fill(host.begin(), host.end(), 0.0f);
        fill(u, host);
        lock.lock();
      } else if (next_copied < copied.size()) {
        changed.wait(lock);
      } else {
        break;
      }
    }
    --running;
    changed.notify_all();
  };
  std::vector<std::thread> workers;
  for (size_t i = running; i > 0; --i) workers.emplace_back(work);
  absl::Status status;
  std::unique_lock lock(mu);
  while (true) {
    changed.wait(lock, [&] { return !filled.empty() || running == 0; });
    if (filled.empty()) break;
    auto [u, host] = std::move(filled.front());
    filled.pop_front();
    lock.unlock();
    if (status.ok()) status = SetUnitParams(u, host);
    host = {};
    lock.lock();
    scratch -= bytes(u);
    changed.notify_all();
  }
  lock.unlock();
  for (std::thread& t : workers) t.join();
  return status;
}

float Model::ForwardUnitsLoss(int first, int end, const int32_t* inputs, const int32_t* targets,
                              const float* input) {
  constexpr float kFailed = std::numeric_limits<float>::quiet_NaN();
  if (forward_loss_.size() == 0) {
    absl::StatusOr<DeviceScalars> scalars = DeviceScalars::Create(*ops_, 1, "the forward's loss");
    if (!scalars.ok()) return kFailed;
    forward_loss_ = std::move(scalars).value();
  }
  forward_loss_.Zero(*ops_);
  ForwardUnits(first, end, inputs, targets, input, forward_loss_.at(0));
  if (end != num_units()) return 0.0f;
  double loss = 0.0;
  if (!forward_loss_.Read(*ops_, {&loss, 1}).ok()) return kFailed;
  return static_cast<float>(loss);
}

size_t Model::CountValidTargets(const int32_t* targets, size_t n) {
  size_t valid = 0;
  for (size_t i = 0; i < n; ++i) valid += targets[i] >= 0;
  return valid;
}

void Model::ForwardBackward(const int32_t* inputs, const int32_t* targets, double* loss_sum,
                            float loss_scale, bool last_micro_batch) {
  backward_loss_scale_ = loss_scale;
  ForwardUnits(0, num_units(), inputs, targets, nullptr, loss_sum);
  backward_loss_scale_.reset();
  RunBackwardUnits(0, num_units(), loss_scale, last_micro_batch, nullptr);
}

std::vector<int> StageUnits(const ModelConfig& config, int first, int end) {
  std::vector<int> units;
  if (config.type == "gpt2" && first > 0 && end == config.n_layer + 2) units.push_back(0);
  for (int u = first; u < end; ++u) units.push_back(u);
  return units;
}

absl::Status Model::AddUnits(std::vector<UnitLayout> layouts, const ShardingPlan& sharding,
                             std::span<const int> held) {
  const Tier tier = ops_->memory_tier();
  std::vector<size_t> numels;
  for (const UnitLayout& layout : layouts) numels.push_back(layout.numel());
  const int first_offloaded = FirstOffloadedUnit(numels, sharding.offload_ratio);
  for (UnitLayout& layout : layouts) {
    const int u = num_units();
    ShardingPlan plan = sharding;
    // The first Units keep everything in the backend: their optimizer, and so their parameters.
    const bool offloaded = u >= first_offloaded;
    plan.offload_optimizer = sharding.offload_optimizer && offloaded;
    plan.offload_params = sharding.offload_params && offloaded;
    plan.params_in_master = sharding.params_in_master && offloaded;
    plan.external_optimizer_state = sharding.external_optimizer_state && offloaded;
    const bool holds = held.empty() || std::find(held.begin(), held.end(), u) != held.end();
    held_.push_back(holds);
    if (!holds) {
      units_.push_back(UnitState{std::move(layout), ShardRange{}, sharding.stage, Buffer(),
                                 Buffer(), Buffer(), Buffer(), Buffer(), Buffer()});
      continue;
    }
    SPW_ASSIGN_OR_RETURN(UnitState state, UnitState::Allocate(std::move(layout), tier, plan));
    units_.push_back(std::move(state));
  }
  return absl::OkStatus();
}

void Model::CopyInBackend(float* dst, const float* src, size_t n) {
  ops_->Fill(dst, 0.0f, n);
  ops_->Accumulate(dst, src, n);
}

void Model::AcquireParams(int u) {
  if (residency_ != nullptr) residency_->AcquireParams(u);
}
void Model::ReleaseParams(int u) {
  if (residency_ != nullptr) residency_->ReleaseParams(u);
}
void Model::AcquireGrads(int u) {
  if (residency_ != nullptr) residency_->AcquireGrads(u);
}
void Model::ReleaseGrads(int u) {
  if (residency_ != nullptr) residency_->ReleaseGrads(u);
}
void Model::BeginPass(UnitResidency::Pass pass, bool last_backward) {
  if (residency_ != nullptr) residency_->BeginPass(pass, last_backward);
}

absl::StatusOr<std::unique_ptr<Model>> CreateModel(const ModelConfig& config, int batch,
                                                   bool activation_checkpointing, kernels::Ops* ops,
                                                   const ShardingPlan& sharding,
                                                   bool offload_checkpoints,
                                                   std::span<const int> held_units) {
  if (config.type == "gpt2") {
    SPW_ASSIGN_OR_RETURN(std::unique_ptr<Gpt2> model,
                         Gpt2::Create(config, batch, activation_checkpointing, ops, sharding,
                                      offload_checkpoints, held_units));
    return std::unique_ptr<Model>(std::move(model));
  }
  if (config.type == "llama") {
    SPW_ASSIGN_OR_RETURN(std::unique_ptr<Llama> model,
                         Llama::Create(config, batch, activation_checkpointing, ops, sharding,
                                       offload_checkpoints, held_units));
    return std::unique_ptr<Model>(std::move(model));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("model.type \"", config.type, "\": this build has gpt2 and llama"));
}

kernels::MatmulPrecision MatmulPrecisionOf(PrecisionConfig::Mode mode) {
  switch (mode) {
    case PrecisionConfig::Mode::kBf16:
      return kernels::MatmulPrecision::kBf16;
    case PrecisionConfig::Mode::kFp16:
      return kernels::MatmulPrecision::kFp16;
    case PrecisionConfig::Mode::kFp32:
      break;
  }
  return kernels::MatmulPrecision::kFp32;
}

size_t PlannedActivationBytes(const ModelConfig& config, int batch, bool activation_checkpointing,
                              kernels::MatmulPrecision precision) {
  if (config.type == "llama") {
    return Llama::PlannedActivationBytes(config, batch, activation_checkpointing);
  }
  return Gpt2::PlannedActivationBytes(config, batch, activation_checkpointing, precision);
}

namespace {

// Whether the model keeps bf16 activations at `precision` (GPT-2 decides so when it is created,
// engine/model/bf16_activations.h; Llama keeps fp32 ones).
bool KeepsBf16Activations(const ModelConfig& config, int batch,
                          kernels::MatmulPrecision precision) {
  return config.type != "llama" &&
         Bf16Activations::Enabled(precision, batch * config.seq_len, config.d_model);
}

}  // namespace

bool KeepsWeightCopies(const ModelConfig& config, int batch, kernels::MatmulPrecision precision) {
  return KeepsBf16Activations(config, batch, precision);
}

size_t WeightCopyElements(const UnitLayout& layout) {
  for (const TensorSpec& t : layout.tensors()) {
    if (t.shape.size() == 2) {
      return (layout.numel() + UnitLayout::kAlignElems - 1) / UnitLayout::kAlignElems *
             UnitLayout::kAlignElems;
    }
  }
  return 0;
}

size_t PlannedGemmCopyBytes(const ModelConfig& config, int batch,
                            kernels::MatmulPrecision precision) {
  const int N = batch * config.seq_len, C = config.d_model;
  if (KeepsBf16Activations(config, batch, precision)) {
    const size_t Vp = PaddedVocab(config.vocab_size), c = static_cast<size_t>(C);
    const size_t weight = std::max(Vp * c, 4 * c * c);
    return sizeof(uint16_t) *
           (kernels::MatmulCopySlot(weight) + kernels::MatmulCopySlot(static_cast<size_t>(N) * c));
  }
  // (C, OC) of each GEMM: the block's projections, then the head.
  std::vector<std::pair<int, int>> gemms;
  if (config.type == "llama") {
    const LlamaDims d = LlamaDimsOf(config);
    gemms = {{C, d.QKV()}, {C, C}, {C, 2 * d.F}, {d.F, C}, {C, d.Vp}};
  } else {
    gemms = {{C, 3 * C}, {C, C}, {C, 4 * C}, {4 * C, C}, {C, PaddedVocab(config.vocab_size)}};
  }
  size_t largest = 0;
  for (const auto& [c, oc] : gemms) {
    largest = std::max(largest, kernels::MatmulOperandCopyBytes(N, c, oc));
  }
  return largest;
}

size_t PlannedAttentionScratchBytes(const ModelConfig& config, int batch,
                                    kernels::MatmulPrecision precision) {
  int NH = config.n_head, NKV = config.n_head;
  if (config.type == "llama") NKV = LlamaDimsOf(config).NKV;
  const int hs = NH > 0 ? config.d_model / NH : 0;
  if (precision != kernels::MatmulPrecision::kFp32 && (hs == 64 || hs == 128)) {
    const kernels::AttentionScratchLayout l =
        kernels::TensorCoreAttentionScratch(batch, config.seq_len, NH, NKV, hs);
    // GPT-2's bf16 activations hand the kernels 16-bit qkv and dout.
    return KeepsBf16Activations(config, batch, precision) ? l.sums_bytes : l.bytes;
  }
  return static_cast<size_t>(batch) * config.seq_len * NH * sizeof(float);
}

bool HasVocabPaddingRows(absl::string_view tensor_name) {
  return tensor_name == "wte" || tensor_name == "embed_tokens.weight" ||
         tensor_name == "lm_head.weight";
}

}  // namespace spillway
