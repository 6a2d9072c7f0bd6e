#include "engine/plan/plan_config.h"

#include <algorithm>

#include "core/status.h"
#include "engine/hf/hf_model.h"
#include "engine/model/gpt2_layout.h"
#include "engine/model/model.h"

namespace spillway {

absl::StatusOr<PlanInput> PlanInputFromConfig(const Config& config, int world_size,
                                              int ranks_per_node) {
  const ModelConfig& m = config.model;
  SPW_ASSIGN_OR_RETURN(const std::vector<UnitLayout> layouts, ModelLayouts(m));
  PlanInput in;
  const size_t padding_rows = static_cast<size_t>(PaddedVocab(m.vocab_size) - m.vocab_size);
  for (const UnitLayout& layout : layouts) {
    in.unit_numel.push_back(layout.numel());
    in.param_count += layout.param_count();
    for (const TensorSpec& t : layout.tensors()) {
      if (HasVocabPaddingRows(t.name)) in.param_count -= padding_rows * t.shape[1];
    }
  }
  const int B = static_cast<int>(config.train_micro_batch_size_per_gpu);
  in.layers = m.n_layer;
  in.d_model = m.d_model;
  in.seq_len = m.seq_len;
  in.micro_batch = B;
  // The trainer sets the ops' precision before creating the model, which sizes GPT-2's bf16
  // activations by it.
  const kernels::MatmulPrecision precision = MatmulPrecisionOf(config.precision.mode);
  in.activation_bytes = PlannedActivationBytes(m, B, false, precision);
  in.activation_bytes_checkpointed = PlannedActivationBytes(m, B, true, precision);
  if (KeepsWeightCopies(m, B, precision)) {
    for (const UnitLayout& layout : layouts) in.weight_copy_elements += WeightCopyElements(layout);
  }
  // A pipeline is planned as if unpipelined: every rank holds all Units (an upper bound on a
  // stage's), sharded over its data-parallel group only.
  const int dp = world_size / std::max(config.pipeline.stages, 1);
  in.world_size = dp;
  in.ranks_per_node = std::min(ranks_per_node, dp);
  in.stage =
      dp > 1 || config.zero.offload_param || config.zero.offload_param_auto ? config.zero_stage : 0;
  in.gpu = config.trainer.backend != "cpu";
  in.offload_optimizer = config.zero.offload_optimizer_auto ? Placement::kAuto
                         : config.zero.optimizer_nvme       ? Placement::kNvme
                         : config.zero.offload_optimizer    ? Placement::kCpu
                                                            : Placement::kNone;
  in.offload_ratio = config.zero.offload_ratio;
  in.offload_ratio_auto = config.zero.offload_ratio_auto;
  in.nvme_ratio = config.zero.nvme_ratio;
  in.offload_param = config.zero.offload_param_auto ? Placement::kAuto
                     : config.zero.param_nvme       ? Placement::kNvme
                     : config.zero.offload_param    ? Placement::kCpu
                                                    : Placement::kNone;
  if (config.zero.optimizer_nvme || config.zero.offload_optimizer_auto) {
    in.nvme_path = config.zero.nvme_path;
    in.nvme_buffer_count = static_cast<int>(config.zero.nvme_buffer_count);
    in.nvme_buffer_bytes = static_cast<size_t>(config.zero.nvme_buffer_size);
  }
  const OptimizerConfig& opt = config.optimizer;
  in.moments = opt.state_dtype == OptimizerConfig::StateDtype::kBf16   ? MomentDtype::kBf16
               : opt.state_dtype == OptimizerConfig::StateDtype::kInt8 ? MomentDtype::kInt8
                                                                       : MomentDtype::kFp32;
  // in.precision stays fp32: the bf16 and fp16 modes round matmul operands and keep the state
  // buffers in fp32 (kernels::Ops::SetMatmulPrecision); bf16 activations are in
  // activation_bytes above.
  in.master = opt.bf16_master ? MasterDtype::kBf16Kahan : MasterDtype::kFp32;
  in.pin_memory = config.zero.pin_memory;
  in.activation_checkpointing = config.activation_checkpointing;
  in.offload_activations = config.cpu_checkpointing;
  // The pinned staging pool of offload_optimizer (engine/train/offload_optimizer.h): only for
  // pageable offloaded state on a GPU backend.
  if (in.gpu && in.offload_optimizer == Placement::kCpu && !in.pin_memory) {
    in.pinned_pool_bytes = static_cast<size_t>(config.zero.staging_buffer_count) *
                           static_cast<size_t>(config.zero.staging_buffer_size) * sizeof(float);
  }
  in.prefetch_elements = static_cast<size_t>(config.zero.stage3_prefetch_bucket_size);
  in.max_live_elements = static_cast<size_t>(config.zero.stage3_max_live_parameters);
  in.param_max_in_cpu = static_cast<size_t>(config.zero.param_max_in_cpu);
  in.gpu_reserve_bytes = in.gpu ? kGpuRuntimeReserveBytes : 0;
  const bool sixteen_bit = config.precision.mode != PrecisionConfig::Mode::kFp32;
  if (in.gpu && sixteen_bit) in.gemm_copy_bytes = PlannedGemmCopyBytes(m, B, precision);
  if (in.gpu) in.attention_scratch_bytes = PlannedAttentionScratchBytes(m, B, precision);
  in.init_scratch_bytes = Model::kInitScratchBytes;
  return in;
}

}  // namespace spillway
