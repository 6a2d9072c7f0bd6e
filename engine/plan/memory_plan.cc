#include "engine/plan/memory_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "offload/nvme_file.h"
#include "offload/nvme_shard_reader.h"
#include "partitioner/offload_split.h"
#include "partitioner/shard.h"

namespace spillway {
namespace {

constexpr size_t kF32 = sizeof(float);
constexpr size_t kQuantBlock = 256;  // kernels/cpu/quant8.h: one fp32 scale per block

size_t ParamBytes(Precision p) { return p == Precision::kFp32 ? 4 : 2; }

// Bytes of m and v together for `n` elements.
size_t MomentBytes(MomentDtype m, size_t n) {
  switch (m) {
    case MomentDtype::kFp32:
      return 8 * n;
    case MomentDtype::kBf16:
      return 4 * n;
    case MomentDtype::kInt8:
      return 2 * (n + (n + kQuantBlock - 1) / kQuantBlock * kF32);
  }
  return 8 * n;
}

absl::Status KeyError(absl::string_view key, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(key, ": ", message));
}

}  // namespace

absl::string_view PlacementName(Placement p) {
  switch (p) {
    case Placement::kNone:
      return "none";
    case Placement::kCpu:
      return "cpu";
    case Placement::kNvme:
      return "nvme";
    case Placement::kAuto:
      return "auto";
  }
  return "none";
}

absl::StatusOr<Placement> ParsePlacement(absl::string_view name) {
  for (Placement p : {Placement::kNone, Placement::kCpu, Placement::kNvme, Placement::kAuto}) {
    if (name == PlacementName(p)) return p;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("device \"", name, "\": allowed are \"none\", \"cpu\", \"nvme\", \"auto\""));
}

absl::string_view CategoryName(Category c) {
  switch (c) {
    case Category::kParameters:
      return "parameters";
    case Category::kGradients:
      return "gradients";
    case Category::kOptimizer:
      return "optimizer state";
    case Category::kActivations:
      return "activations";
    case Category::kWorking:
      return "ZeRO working buffers";
    case Category::kPools:
      return "pools and reserve";
  }
  return "";
}

size_t MemoryPlan::Bytes(Tier tier) const {
  size_t sum = 0;
  for (const MemoryItem& i : items) sum += i.tier == tier ? i.bytes : 0;
  return sum;
}

size_t MemoryPlan::Bytes(Category category, Tier tier) const {
  size_t sum = 0;
  for (const MemoryItem& i : items) sum += i.tier == tier && i.category == category ? i.bytes : 0;
  return sum;
}

size_t MemoryPlan::Bytes(Category category) const {
  size_t sum = 0;
  for (const MemoryItem& i : items) sum += i.category == category ? i.bytes : 0;
  return sum;
}

size_t MemoryPlan::ActivationBytes(bool checkpointing) const {
  return checkpointing ? input.activation_bytes_checkpointed : input.activation_bytes;
}

absl::StatusOr<MemoryPlan> PlanMemory(const PlanInput& in) {
  if (in.offload_optimizer == Placement::kAuto || in.offload_param == Placement::kAuto) {
    return KeyError("zero_optimization.offload_*.device",
                    "\"auto\" is resolved by the planner's fit search, not by PlanMemory");
  }
  if (in.unit_numel.empty() || in.world_size < 1 || in.ranks_per_node < 1) {
    return absl::InvalidArgumentError("memory plan: no Units, or no ranks");
  }
  constexpr absl::string_view kParamKey = "zero_optimization.offload_param.device";
  const bool params_on_nvme = in.offload_param == Placement::kNvme;
  if (in.offload_param == Placement::kCpu || params_on_nvme) {
    const std::string device = absl::StrCat("\"", PlacementName(in.offload_param), "\"");
    if (in.world_size > 1 && in.stage != 3) {
      return KeyError(kParamKey,
                      absl::StrCat(device, " needs zero_optimization.stage 3, found ", in.stage));
    }
    if (params_on_nvme
            ? in.offload_optimizer != Placement::kNvme
            : in.offload_optimizer != Placement::kCpu && in.offload_optimizer != Placement::kNvme) {
      return KeyError(
          kParamKey, absl::StrCat(device, " needs offload_optimizer ",
                                  params_on_nvme ? "\"nvme\"" : "\"cpu\" or \"nvme\"", ", found \"",
                                  PlacementName(in.offload_optimizer), "\""));
    }
    if (params_on_nvme && in.master != MasterDtype::kFp32) {
      return KeyError("optimizer.params.master_dtype",
                      "\"bf16\" is not built with offload_param \"nvme\" (the parameters are "
                      "read from an fp32 master)");
    }
  }
  if (in.nvme_ratio < 1.0 && in.offload_optimizer == Placement::kNvme &&
      in.moments == MomentDtype::kFp32 && in.master == MasterDtype::kFp32) {
    return KeyError("zero_optimization.offload_optimizer.nvme_ratio",
                    "below 1 needs compact optimizer state (state_dtype \"bf16\" or \"int8\")");
  }
  if (in.offload_activations && !in.activation_checkpointing) {
    return KeyError("activation_checkpointing.cpu_checkpointing",
                    "needs activation_checkpointing.enabled (only the kept Unit inputs move)");
  }
  const bool nvme =
      in.offload_optimizer == Placement::kNvme || in.offload_param == Placement::kNvme;
  if (nvme && in.nvme_path.empty()) {
    return KeyError("zero_optimization.offload_optimizer.nvme_path",
                    "the \"nvme\" device needs a directory on the NVMe disk");
  }

  MemoryPlan plan;
  plan.input = in;
  const Tier compute = in.gpu ? Tier::kDevice : Tier::kHost;
  const Tier offload = in.gpu && in.pin_memory ? Tier::kPinnedHost : Tier::kHost;
  plan.compute_tier = compute;
  plan.offload_tier = offload;
  auto add = [&](std::string what, Category c, Tier t, size_t bytes) {
    if (bytes > 0) plan.items.push_back({std::move(what), c, t, bytes});
  };

  // Offloaded parameters are sharded (stage 3) on one rank too.
  const bool params_offloaded = in.offload_param == Placement::kCpu || params_on_nvme;
  const int stage = params_offloaded ? 3 : in.world_size > 1 ? in.stage : 0;
  const bool params_sharded = stage >= 3;
  const size_t pb = ParamBytes(in.precision);
  const bool separate_master =
      in.precision != Precision::kFp32 || in.offload_optimizer != Placement::kNone;
  const size_t master_bytes = 4;  // fp32, or bf16 + bf16 Kahan term: 4 either way

  // offload_optimizer.ratio: Units before first_offloaded keep their optimizer (fp32 moments)
  // and, with offload_param, their parameters and gradients in the compute tier (counted in
  // backend_*).
  const bool offloading =
      in.offload_optimizer == Placement::kCpu || in.offload_optimizer == Placement::kNvme;
  const int first_offloaded = offloading ? FirstOffloadedUnit(in.unit_numel, in.offload_ratio) : 0;
  size_t backend_elems = 0, backend_moments = 0, backend_params = 0, backend_grads = 0;
  // offload_optimizer.nvme_ratio: offloaded Units before first_nvme keep their NVMe-bound state
  // in the offload tier (memory_elems / memory_moments, part of optimizer_elems / moments).
  const int first_nvme =
      in.offload_optimizer == Placement::kNvme
          ? std::max(FirstOffloadedUnit(in.unit_numel, in.nvme_ratio), first_offloaded)
          : static_cast<int>(in.unit_numel.size());
  size_t memory_elems = 0, memory_moments = 0;
  size_t largest_nvme = 0;  // the largest optimizer array on NVMe, in elements
  size_t params = 0, grads = 0, optimizer_elems = 0, moments = 0;
  size_t largest = 0, largest_shard = 0;  // over Units 1.., as the residency sizes its ring
  std::vector<ShardRange> shards;
  for (size_t u = 0; u < in.unit_numel.size(); ++u) {
    const ShardRange s = ShardOf(in.unit_numel[u], in.world_size, 0);
    shards.push_back(s);
    const size_t unit_params = params_sharded ? s.shard_numel : s.padded_numel;
    const size_t unit_grads = stage >= 2 ? s.shard_numel : s.padded_numel;
    const size_t optimizer_numel = stage >= 1 ? s.shard_numel : s.padded_numel;
    if (static_cast<int>(u) < first_offloaded) {
      backend_elems += optimizer_numel;
      backend_moments += MomentBytes(MomentDtype::kFp32, optimizer_numel);
      backend_params += unit_params;
      backend_grads += unit_grads;
    } else {
      optimizer_elems += optimizer_numel;
      moments += MomentBytes(in.moments, optimizer_numel);  // quantisation blocks per Unit
      params += unit_params;
      grads += unit_grads;
    }
    if (static_cast<int>(u) >= first_nvme) {
      largest_nvme = std::max(largest_nvme, optimizer_numel);
    } else if (static_cast<int>(u) >= first_offloaded) {
      memory_elems += optimizer_numel;
      memory_moments += MomentBytes(in.moments, optimizer_numel);
    }
    if (u > 0) {
      largest = std::max(largest, s.padded_numel);
      largest_shard = std::max(largest_shard, s.shard_numel);
    }
  }
  const size_t n_units = in.unit_numel.size();

  // Offloaded: the parameter and gradient shards are the CPU AdamW's master and gradient copy;
  // on NVMe the master (counted with the optimizer) is the parameters.
  const Tier param_tier = params_offloaded ? offload : compute;
  if (params_offloaded) {
    add("parameters (first Units)", Category::kParameters, compute, backend_params * pb);
    add("gradients (first Units)", Category::kGradients, compute, backend_grads * kF32);
  } else {
    params += backend_params;
    grads += backend_grads;
  }
  if (!params_on_nvme) add("parameters", Category::kParameters, param_tier, params * pb);
  if (!params_sharded) {
    add("bf16 weight copies", Category::kParameters, compute,
        in.weight_copy_elements * sizeof(uint16_t));
  }
  add("gradients", Category::kGradients, param_tier, grads * kF32);

  // Offloaded parameters are the master of an fp32 CPU AdamW; NVMe and compact state keep theirs.
  const bool external_compact = in.moments != MomentDtype::kFp32 || in.master != MasterDtype::kFp32;
  const bool external_state = in.offload_optimizer == Placement::kNvme || external_compact;
  const bool has_master = separate_master && !(params_offloaded && !external_state);
  const size_t master = has_master ? optimizer_elems * master_bytes : 0;
  switch (in.offload_optimizer) {
    case Placement::kNone:
      add("Adam m and v", Category::kOptimizer, compute, moments);
      add("master parameters", Category::kOptimizer, compute, master);
      break;
    case Placement::kCpu:
      add("Adam m and v (first Units)", Category::kOptimizer, compute, backend_moments);
      if (in.precision != Precision::kFp32) {
        add("master (first Units)", Category::kOptimizer, compute, backend_elems * master_bytes);
      }
      add("Adam m and v", Category::kOptimizer, offload, moments);
      add("master parameters", Category::kOptimizer, offload, master);
      if (!params_offloaded)
        add("gradient copy", Category::kOptimizer, offload, optimizer_elems * kF32);
      break;
    case Placement::kNvme: {
      const size_t memory_master = has_master ? memory_elems * master_bytes : 0;
      add("Adam m and v (first Units)", Category::kOptimizer, compute, backend_moments);
      if (in.precision != Precision::kFp32) {
        add("master (first Units)", Category::kOptimizer, compute, backend_elems * master_bytes);
      }
      add("Adam m and v (in CPU memory)", Category::kOptimizer, offload, memory_moments);
      add("master (in CPU memory)", Category::kOptimizer, offload, memory_master);
      add("Adam m and v", Category::kOptimizer, Tier::kNvme, moments - memory_moments);
      add("master parameters", Category::kOptimizer, Tier::kNvme, master - memory_master);
      if (!params_offloaded)
        add("gradient copy", Category::kOptimizer, offload, optimizer_elems * kF32);
      break;
    }
    case Placement::kAuto:
      break;
  }

  // Working buffers, as UnitResidency::Allocate sizes them: slot 0 for Unit 0, then a ring of
  // buffers the size of the largest other Unit.
  if (params_sharded) {
    int prefetch = 0;
    size_t ahead = 0;
    const int n = static_cast<int>(n_units);
    while (prefetch + 1 < n - 1 && ahead + largest <= in.prefetch_elements) {
      ahead += largest;
      ++prefetch;
    }
    prefetch = std::max(prefetch, 1);
    while (prefetch > 1 &&
           shards[0].padded_numel + (prefetch + 2) * largest > in.max_live_elements) {
      --prefetch;
    }
    const size_t ring = n > 1 ? static_cast<size_t>(prefetch + 2) : 0;
    add("gathered parameters", Category::kWorking, compute,
        (shards[0].padded_numel + ring * largest) * pb);
    // offload/nvme_shard_reader.h: one staging buffer per gathered-parameter buffer; Unit 0's
    // only if Unit 0 is read from NVMe (ratio can keep it in the backend).
    if (params_on_nvme) {
      const size_t unit0 = first_offloaded == 0 ? shards[0].shard_numel * kF32 : 0;
      const size_t slot = RoundUpToNvmeAlignment(largest_shard * kF32);
      add("NVMe parameter staging", Category::kPools, offload,
          RoundUpToNvmeAlignment(unit0) + ring * slot);
      // The cache holds shards of Units 1.. read from the file (Unit 0 keeps its own slot).
      const int file_shards = static_cast<int>(n_units) - std::max(first_nvme, 1);
      const int cache = NvmeShardReader::CacheCount(static_cast<int64_t>(in.param_max_in_cpu),
                                                    largest_shard, std::max(file_shards, 0));
      add("NVMe parameter cache", Category::kPools, offload, static_cast<size_t>(cache) * slot);
    }
  }
  if (stage >= 2) {
    // Offloaded parameters reduce in place: no separate shard per buffer.
    const size_t ring = n_units > 1 ? 2 : 0;
    const bool in_place = (params_offloaded && first_offloaded == 0) || in.world_size == 1;
    const size_t shard_parts = in_place ? 0 : shards[0].shard_numel + ring * largest_shard;
    add("gradient reduction buffers", Category::kWorking, compute,
        (shards[0].padded_numel + ring * largest + shard_parts) * kF32);
  }

  // Activations per micro-batch.
  const size_t activations =
      in.activation_checkpointing ? in.activation_bytes_checkpointed : in.activation_bytes;
  if (in.offload_activations) {
    const size_t tokens = static_cast<size_t>(in.micro_batch) * in.seq_len;
    // As engine/model/residual_stream.h: the inputs of blocks 0..L-1 in CPU memory; the
    // backend keeps three rotating buffers and the head's input.
    const size_t array = tokens * in.d_model * kF32;
    const size_t kept = static_cast<size_t>(in.layers) * array;
    const size_t stream = (static_cast<size_t>(in.layers) + 1) * array;
    add("activations", Category::kActivations, compute,
        activations - std::min(stream, activations) + 4 * array);
    add("kept Unit inputs", Category::kActivations, offload, kept);
  } else {
    add("activations", Category::kActivations, compute, activations);
  }

  add("pinned buffer pool", Category::kPools, offload, in.pinned_pool_bytes);
  if (in.offload_optimizer == Placement::kNvme && !external_compact) {
    // offload/nvme_optimizer_state.h: buffer_count tiles per array (master, m, v), registered
    // with io_uring, a tile being buffer_size rounded down to 4 KiB, at most the largest array.
    const size_t tile = std::min(std::max<size_t>(in.nvme_buffer_bytes / 4096, 1) * 4096,
                                 (std::max<size_t>(largest_nvme, 1) + 1023) / 1024 * 4096);
    plan.registered_bytes = 3 * static_cast<size_t>(in.nvme_buffer_count) * tile;
    add("NVMe staging buffers", Category::kPools, offload, plan.registered_bytes);
  } else if (in.offload_optimizer == Placement::kNvme) {
    // engine/train/compact_adamw.h: three host slots, each array sized for the largest Unit.
    const size_t n = largest_nvme;
    const bool bf16_master = in.master == MasterDtype::kBf16Kahan;
    const size_t moment = in.moments == MomentDtype::kFp32   ? 4
                          : in.moments == MomentDtype::kBf16 ? 2
                                                             : 1;
    const size_t scales =
        in.moments == MomentDtype::kInt8 ? (n + kQuantBlock - 1) / kQuantBlock * kF32 : 0;
    const size_t slot = RoundUpToNvmeAlignment(n * (bf16_master ? 2 : 4)) +
                        RoundUpToNvmeAlignment(bf16_master ? n * 2 : 0) +
                        2 * RoundUpToNvmeAlignment(n * moment) + 2 * RoundUpToNvmeAlignment(scales);
    add("NVMe staging buffers", Category::kPools, offload, 3 * slot);
  }
  if (in.gpu) {
    add("16-bit GEMM operand copies", Category::kPools, Tier::kDevice, in.gemm_copy_bytes);
    add("attention scratch", Category::kPools, Tier::kDevice, in.attention_scratch_bytes);
    add("runtime reserve", Category::kPools, Tier::kDevice, in.gpu_reserve_bytes);
  }
  // Start-up only: whole-Unit host copies for the Units whose parameters are not stored whole in
  // host memory (in the GPU, or sharded over ranks), as many as fit in init_scratch_bytes.
  size_t copied = 0, largest_copied = 0;
  for (size_t u = 0; u < n_units; ++u) {
    const bool resident = static_cast<int>(u) < first_offloaded || !params_offloaded;
    const bool in_place = (resident ? !in.gpu : true) && (!params_sharded || in.world_size == 1);
    if (in_place) continue;
    copied += in.unit_numel[u] * kF32;
    largest_copied = std::max(largest_copied, in.unit_numel[u] * kF32);
  }
  if (copied > 0 && in.init_scratch_bytes > 0) {
    const size_t wave = std::max<size_t>(in.init_scratch_bytes / largest_copied, 1);
    add("parameter initialisation (start-up)", Category::kPools, Tier::kHost,
        std::min(copied, wave * largest_copied));
  }
  return plan;
}

}  // namespace spillway
