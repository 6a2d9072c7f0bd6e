// The memory planner: the bytes one rank needs in each tier (GPU, pinned CPU, pageable CPU,
// NVMe) for a training config, as a pure function of a small PlanInput, so that it can be
// computed (and tested) without building a model or touching the hardware.
//
// The model of each kind of state per Unit, per rank (P: the Unit's padded flat size, S = P /
// world: its shard; the stage decides which one a rank stores, partitioner/unit_state.h):
//   parameters   P or S (stage 3) x 4 B (fp32) or 2 B (bf16/fp16), in the compute tier; with
//                offload_param "cpu" (stage 3, also on one rank; needs offload_optimizer "cpu"
//                with fp32 state) S x 4 B in the offload tier, where they are also the master
//                plus, where a GPT-2 model at bf16 keeps bf16 copies of its GEMM weights
//                (KeepsWeightCopies, engine/model/model.h) and the parameters are whole (stage
//                <= 2), 2 B per element of those copies, in the compute tier
//   gradients    P or S (stage >= 2) x 4 B (fp32 accumulation at every precision), in the
//                compute tier; with offload_param S x 4 B in the offload tier, also the
//                optimizer's gradient copy
//   optimizer    P or S (stage >= 1) x (m + v + master + gradient copy): m and v 4+4 B (fp32),
//                2+2 (bf16) or 1+1 plus one fp32 scale per 256-element block (int8); the master
//                copy 4 B (fp32, or bf16 + bf16 Kahan term) where the parameters are not their
//                own master (mixed precision or offloaded optimizer, not offload_param); a 4 B
//                gradient copy when offloaded (not with offload_param). With offload "cpu" all
//                of it is in the offload tier; with "nvme" master, m and v are on NVMe and the
//                gradient copy in the offload tier.
//   working      ZeRO stage 3 gathered-parameter buffers and stage 2-3 gradient buffers (with
//                their reduced shards, except with offload_param), as
//                partitioner/unit_residency.h allocates them
//   activations  the model's plan per micro-batch (given, from PlannedActivationBytes); with
//                activation offload the kept Unit inputs move to pinned CPU memory and two
//                (N, C) fp32 staging buffers stay in the compute tier
//   pools        the pinned buffer pool, NVMe staging buffers (registered with io_uring, so
//                counted against RLIMIT_MEMLOCK), the parameter reader's staging and cache
//                (offload_param "nvme"), the 16-bit GEMM operand copies (GPU, bf16/fp16), the
//                attention's scratch (GPU), and a fixed GPU reserve for the runtime
// The offload tier is pinned CPU memory for a GPU backend with pin_memory, pageable otherwise;
// the compute tier is the GPU, or pageable CPU memory for the CPU backend.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/tier.h"

namespace spillway {

enum class Placement { kNone, kCpu, kNvme, kAuto };  // offload_*.device
enum class Precision { kFp32, kBf16, kFp16 };
enum class MomentDtype { kFp32, kBf16, kInt8 };  // Adam m and v
enum class MasterDtype { kFp32, kBf16Kahan };    // the master copy of the parameters

absl::string_view PlacementName(Placement p);  // "none", "cpu", "nvme", "auto"
absl::StatusOr<Placement> ParsePlacement(absl::string_view name);

struct PlanInput {
  // Model shape. unit_numel: each Unit's flat size as laid out (alignment gaps included).
  std::vector<size_t> unit_numel;
  size_t param_count = 0;  // for bytes per parameter in reports
  int layers = 0, d_model = 0, seq_len = 0, micro_batch = 0;
  // Activation bytes per micro-batch, with and without checkpointing (the model's plan).
  size_t activation_bytes = 0;
  size_t activation_bytes_checkpointed = 0;
  // The elements of the model's bf16 weight copies over all Units (WeightCopyElements, where
  // KeepsWeightCopies), kept where the parameters are whole.
  size_t weight_copy_elements = 0;

  int world_size = 1;
  int ranks_per_node = 1;  // host memory and disk are shared by a node's ranks
  int stage = 0;           // the effective stage (0 with one rank)
  bool gpu = false;        // the backend computes on a GPU; else the CPU is the compute tier

  Precision precision = Precision::kFp32;
  MomentDtype moments = MomentDtype::kFp32;
  MasterDtype master = MasterDtype::kFp32;
  Placement offload_optimizer = Placement::kNone;
  Placement offload_param = Placement::kNone;
  // offload_optimizer.ratio with "cpu": the last Units holding this share of the elements
  // offload their optimizer, the others keep it in the compute tier (partitioner/offload_split.h).
  double offload_ratio = 1.0;
  // offload_optimizer.ratio "auto": PlanToFit sets offload_ratio (fit.h).
  bool offload_ratio_auto = false;
  // offload_optimizer.nvme_ratio with "nvme" (compact state): the last Units holding this share
  // of the elements keep their state on NVMe, the first Units in the offload tier.
  double nvme_ratio = 1.0;
  bool pin_memory = true;
  bool activation_checkpointing = false;
  bool offload_activations = false;  // checkpointed Unit inputs in pinned CPU memory

  // ZeRO stage-3 working-set bounds, in elements (zero_optimization's keys).
  size_t prefetch_elements = 50'000'000;
  size_t max_live_elements = 1'000'000'000;
  // offload_param.max_in_cpu with "nvme": elements of parameter shards kept in the offload tier
  // between reads (whole largest shards, at most one per shard read from NVMe).
  size_t param_max_in_cpu = 0;

  size_t pinned_pool_bytes = 0;        // the pinned buffer pool (offload)
  int nvme_buffer_count = 0;           // NVMe staging buffers for the optimizer's tiles
  size_t nvme_buffer_bytes = 0;        // bytes each
  size_t gpu_reserve_bytes = 0;        // runtime memory outside spillway's buffers (GPU only)
  size_t gemm_copy_bytes = 0;          // 16-bit GEMM operand copies (GPU, PlannedGemmCopyBytes)
  size_t attention_scratch_bytes = 0;  // GPU, PlannedAttentionScratchBytes
  // Model::InitUnitsParallel's bound on host copies of Units it cannot fill in place (start-up).
  size_t init_scratch_bytes = 0;
  std::string nvme_path;
};

enum class Category {
  kParameters,
  kGradients,
  kOptimizer,
  kActivations,
  kWorking,  // ZeRO gather and reduction buffers
  kPools,    // pinned pool, NVMe staging, runtime reserve
};
absl::string_view CategoryName(Category c);

struct MemoryItem {
  std::string what;
  Category category;
  Tier tier;
  size_t bytes;  // per rank
};

struct MemoryPlan {
  PlanInput input;  // with concrete placements
  Tier compute_tier = Tier::kHost;
  Tier offload_tier = Tier::kHost;
  std::vector<MemoryItem> items;

  size_t Bytes(Tier tier) const;                     // per rank
  size_t Bytes(Category category, Tier tier) const;  // per rank
  size_t Bytes(Category category) const;             // per rank, every tier
  // Activation bytes per micro-batch with checkpointing `on` in the compute tier and the
  // pinned tier together (the report's "with and without" line).
  size_t ActivationBytes(bool checkpointing) const;
  // Bytes registered with io_uring (NVMe staging): RLIMIT_MEMLOCK applies to them.
  size_t registered_bytes = 0;
};

// The plan for `input`; InvalidArgument naming the key when a placement is kAuto (resolve it
// with PlanToFit, engine/plan/fit.h) or a combination is not built (offload_param: only "cpu",
// with offload_optimizer "cpu", fp32 state and, with several ranks, stage 3; activation offload
// needs checkpointing; NVMe needs nvme_path).
absl::StatusOr<MemoryPlan> PlanMemory(const PlanInput& input);

}  // namespace spillway
