// The "pipeline" section (docs/config.md, docs/pipeline.md).
#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "engine/config/sections.h"

namespace spillway::config_internal {

absl::Status ParsePipeline(const Json& value, int world_size, PipelineConfig* out,
                           int64_t* micro_batches) {
  SPW_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Open(value, "pipeline"));
  SPW_RETURN_IF_ERROR(
      r.CheckKeys({"stages", "partition", "micro_batches", "schedule", "pipemare"}));
  if (const Json* stages = r.Find("stages"); stages != nullptr && stages->is_string()) {
    SPW_ASSIGN_OR_RETURN(std::string s, ReadString(*stages, "pipeline.stages", {"auto"}));
    out->stages = world_size;
  } else {
    SPW_RETURN_IF_ERROR(r.Int("stages", &out->stages, 1, std::numeric_limits<int>::max()));
  }
  if (world_size % out->stages != 0) {
    return KeyError("pipeline.stages",
                    absl::StrCat("is ", out->stages, " but the world size ", world_size,
                                 " is not a multiple of it; start stages x data-parallel ranks"));
  }
  SPW_RETURN_IF_ERROR(r.String("partition", &out->partition, {"uniform", "balanced"}));
  SPW_RETURN_IF_ERROR(r.String("schedule", &out->schedule, {"gpipe", "1f1b", "pipemare"}));
  if (const Json* v = r.Find("pipemare")) {
    if (out->schedule != "pipemare") {
      return KeyError("pipeline.pipemare",
                      absl::StrCat("is set but pipeline.schedule is \"", out->schedule,
                                   "\"; set the schedule to \"pipemare\" or remove the section"));
    }
    SPW_ASSIGN_OR_RETURN(ObjectReader m, ObjectReader::Open(*v, "pipeline.pipemare"));
    SPW_RETURN_IF_ERROR(m.CheckKeys({"lr_rescheduling", "lr_anneal_steps", "discrepancy_correction",
                                     "discrepancy_decay", "warmup_steps", "tied_lookahead"}));
    PipeMareConfig& pm = out->pipemare;
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    SPW_RETURN_IF_ERROR(m.Bool("lr_rescheduling", &pm.lr_rescheduling));
    SPW_RETURN_IF_ERROR(m.Int("lr_anneal_steps", &pm.lr_anneal_steps, 0, kMax));
    SPW_RETURN_IF_ERROR(m.Bool("discrepancy_correction", &pm.discrepancy_correction));
    SPW_RETURN_IF_ERROR(
        m.Double("discrepancy_decay", &pm.discrepancy_decay, DoubleRange{0.0, true, 1.0, true}));
    SPW_RETURN_IF_ERROR(m.Int("warmup_steps", &pm.warmup_steps, 0, kMax));
    SPW_RETURN_IF_ERROR(m.Double("tied_lookahead", &pm.tied_lookahead, DoubleRange::AtLeast(0)));
  }
  SPW_RETURN_IF_ERROR(r.Int("micro_batches", micro_batches, 1, std::numeric_limits<int>::max()));
  return absl::OkStatus();
}

absl::Status CheckPipeline(const Config& c) {
  const PipelineConfig& p = c.pipeline;
  if (p.stages == 1) return absl::OkStatus();
  const int units = c.model.n_layer + 2;  // embed, the blocks, head
  if (p.stages > units) {
    return KeyError(
        "pipeline.stages",
        absl::StrCat("is ", p.stages, " but the model has only ", units, " Units (embed, ",
                     c.model.n_layer, " blocks, head); use at most ", units, " stages"));
  }
  if (p.schedule == "1f1b" && c.gradient_accumulation_steps < p.stages) {
    return KeyError("pipeline.micro_batches",
                    absl::StrCat("is ", c.gradient_accumulation_steps,
                                 " but the 1f1b schedule needs at least as many "
                                 "micro-batches per step as stages (",
                                 p.stages, "); raise it (or gradient_accumulation_steps)"));
  }
  if (c.zero_stage > 1) {
    return KeyError(
        "zero_optimization.stage",
        absl::StrCat("is ", c.zero_stage, " but a pipeline combines with ZeRO stages 0-1 only"));
  }
  if (c.trainer.backend != "cpu" &&
      c.train_batch_size != c.train_micro_batch_size_per_gpu * c.gradient_accumulation_steps) {
    return KeyError("trainer.backend",
                    absl::StrCat("is \"", c.trainer.backend,
                                 "\" but GPU pipeline stages run without data parallelism in "
                                 "this build: start exactly pipeline.stages ranks"));
  }
  if (c.trainer.backend != "cpu" && p.schedule == "pipemare" && p.pipemare.discrepancy_correction) {
    return KeyError("pipeline.pipemare.discrepancy_correction",
                    "runs on the CPU backend only in this build; set it to false for "
                    "trainer.backend \"cuda\"");
  }
  if (c.precision.mode != PrecisionConfig::Mode::kFp32) {
    const bool fp16 = c.precision.mode == PrecisionConfig::Mode::kFp16;
    return KeyError(fp16 ? "fp16.enabled" : "bf16.enabled",
                    "is true but pipelined runs train in fp32 in this build (no loss scaling "
                    "across stages); set it to false or pipeline.stages to 1");
  }
  if (c.zero.offload_optimizer_auto) {
    return KeyError("zero_optimization.offload_optimizer.device",
                    "\"auto\" is not built for pipelined runs; choose \"none\" or \"cpu\"");
  }
  if (c.zero.optimizer_nvme) {
    return KeyError("zero_optimization.offload_optimizer.device",
                    "is \"nvme\" but pipelined runs keep optimizer state in the Units' buffers "
                    "in this build; use \"cpu\" or \"none\"");
  }
  if (c.zero.offload_ratio < 1.0 || c.zero.offload_ratio_auto) {
    return KeyError("zero_optimization.offload_optimizer.ratio",
                    "below 1 or \"auto\" is not built for pipelined runs; set 1 or "
                    "pipeline.stages to 1");
  }
  if (c.zero.offload_delayed_update) {
    return KeyError("zero_optimization.offload_optimizer.delayed_update",
                    "is not built for pipelined runs (each stage steps its own Units after its "
                    "schedule); set it to false or pipeline.stages to 1");
  }
  if (c.cpu_checkpointing) {
    return KeyError("activation_checkpointing.cpu_checkpointing",
                    "is not built for pipelined runs (a stage keeps the inputs of its in-flight "
                    "micro-batches); set it to false or pipeline.stages to 1");
  }
  if (c.optimizer.compact()) {
    return KeyError(
        c.optimizer.bf16_master ? "optimizer.params.master_dtype" : "optimizer.params.state_dtype",
        "compact optimizer state is not built for pipelined runs; use fp32");
  }
  if (!c.checkpoint.dir.empty()) {
    return KeyError("checkpoint.dir", "checkpoints of pipelined runs are not built yet");
  }
  if (!c.model.init_from.empty()) {
    return KeyError("model.init_from", "initialising a pipelined run from a file is not built yet");
  }
  if (c.trainer.eval_interval > 0) {
    return KeyError("trainer.eval_interval",
                    "evaluation of pipelined runs is not built yet; set 0");
  }
  return absl::OkStatus();
}

}  // namespace spillway::config_internal
