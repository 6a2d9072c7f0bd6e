// ParseConfig: the top level of the config (batch sizes, scalars, which sections exist) and
// the cross-section checks. The sections themselves are in *_sections.cc.
#include "engine/config/config.h"

#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/file_io.h"
#include "core/status.h"
#include "engine/config/json_parse.h"
#include "engine/config/json_reader.h"
#include "engine/config/sections.h"

namespace spillway {
namespace {

using config_internal::DoubleRange;
using config_internal::Json;
using config_internal::KeyError;
using config_internal::ObjectReader;

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

// Top-level keys spillway reads.
constexpr absl::string_view kTopLevelKeys[] = {
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "steps_per_print",
    "optimizer",
    "scheduler",
    "activation_checkpointing",
    "bf16",
    "fp16",
    "zero_optimization",
    "wall_clock_breakdown",
    "model",
    "data",
    "trainer",
    "checkpoint",
    "log",
    "pipeline",
    "aio",
};

// DeepSpeed top-level keys for features spillway does not have (yet), with the reason.
struct Reserved {
  absl::string_view key;
  absl::string_view why;
};
constexpr Reserved kReservedKeys[] = {
    {"amp", "NVIDIA Apex AMP is not supported; mixed precision needs the CUDA backend"},
    {"prescale_gradients", "gradient prescaling is not built yet"},
    {"gradient_predivide_factor", "gradient predivision is not built yet"},
    {"communication_data_type", "choosing the communication data type is not built yet"},
    {"sparse_gradients", "sparse gradients are not built yet"},
    {"flops_profiler", "the FLOPs profiler is not built yet"},
    {"tensorboard", "TensorBoard logging is not built yet; use log.metrics_path"},
    {"wandb", "Weights & Biases logging is not built yet; use log.metrics_path"},
    {"csv_monitor", "the CSV monitor is not built yet; use log.metrics_path"},
    {"comms_logger", "the communication logger is not built yet"},
    {"elasticity", "elastic training is not built yet"},
    {"autotuning", "autotuning is not built yet"},
    {"data_efficiency", "data-efficiency sampling and routing are not built yet"},
    {"compression_training", "compression training is not built yet"},
    {"memory_breakdown", "the memory breakdown report is not built yet"},
};

// Any two of the three batch-size keys determine the third: train = micro * accum * world,
// where world is the data-parallel width. pipeline.micro_batches (> 0 when given) is the
// accumulation.
absl::Status ResolveBatchSizes(const ObjectReader& r, int world_size, int64_t micro_batches,
                               Config* c) {
  SPW_RETURN_IF_ERROR(r.Int("train_batch_size", &c->train_batch_size, 1, kInt64Max));
  SPW_RETURN_IF_ERROR(
      r.Int("train_micro_batch_size_per_gpu", &c->train_micro_batch_size_per_gpu, 1, kInt64Max));
  SPW_RETURN_IF_ERROR(
      r.Int("gradient_accumulation_steps", &c->gradient_accumulation_steps, 1, kInt64Max));
  if (micro_batches > 0 && r.Has("gradient_accumulation_steps") &&
      micro_batches != c->gradient_accumulation_steps) {
    return KeyError("pipeline.micro_batches",
                    absl::StrCat("is ", micro_batches, " but gradient_accumulation_steps is ",
                                 c->gradient_accumulation_steps,
                                 "; they are the same number: give one of them"));
  }
  if (micro_batches > 0) c->gradient_accumulation_steps = micro_batches;
  const bool has_train = r.Has("train_batch_size");
  const bool has_micro = r.Has("train_micro_batch_size_per_gpu");
  const bool has_accum = r.Has("gradient_accumulation_steps") || micro_batches > 0;
  const int64_t world = world_size;
  int64_t& train = c->train_batch_size;
  int64_t& micro = c->train_micro_batch_size_per_gpu;
  int64_t& accum = c->gradient_accumulation_steps;

  if (!has_train && !has_micro) {
    return KeyError("train_batch_size",
                    has_accum ? "gradient_accumulation_steps alone does not fix the batch size; "
                                "also set train_batch_size or train_micro_batch_size_per_gpu"
                              : "no batch size given; set train_batch_size and/or "
                                "train_micro_batch_size_per_gpu (and optionally "
                                "gradient_accumulation_steps)");
  }
  if (!has_train) {  // micro, and maybe accum
    if (!has_accum) accum = 1;
    if (__builtin_mul_overflow(micro, accum, &train) ||
        __builtin_mul_overflow(train, world, &train)) {
      return KeyError("train_micro_batch_size_per_gpu",
                      absl::StrCat("train_micro_batch_size_per_gpu (", micro,
                                   ") * gradient_accumulation_steps (", accum, ") * world_size (",
                                   world, ") overflows int64"));
    }
    return absl::OkStatus();
  }
  if (has_micro && has_accum) {
    int64_t product = 0;
    const bool overflow = __builtin_mul_overflow(micro, accum, &product) ||
                          __builtin_mul_overflow(product, world, &product);
    if (overflow || product != train) {
      return KeyError(
          "train_batch_size",
          absl::StrCat("must equal train_micro_batch_size_per_gpu (", micro,
                       ") * gradient_accumulation_steps (", accum, ") * world_size (", world,
                       ") = ", overflow ? "(overflow)" : absl::StrCat(product), ", found ", train));
    }
    return absl::OkStatus();
  }
  // train, and micro or accum or neither (then accum = 1).
  if (!has_micro && !has_accum) accum = 1;
  const int64_t known = has_micro ? micro : accum;
  int64_t per = 0;
  const bool overflow = __builtin_mul_overflow(known, world, &per);
  if (overflow || train % per != 0) {
    std::string divisor;
    if (has_micro) divisor = absl::StrCat("train_micro_batch_size_per_gpu (", micro, ") * ");
    if (has_accum) divisor = absl::StrCat("gradient_accumulation_steps (", accum, ") * ");
    std::string rest;
    if (!has_micro && !has_accum) {
      rest = " (gradient_accumulation_steps defaults to 1)";
    } else if (!overflow) {
      rest = absl::StrCat(" = ", per);
    }
    return KeyError("train_batch_size", absl::StrCat(train, " is not divisible by ", divisor,
                                                     "world_size (", world, ")", rest));
  }
  (has_micro ? accum : micro) = train / per;
  return absl::OkStatus();
}

// offload_param "cpu" (or "auto") needs stage 3 and the optimizer offloaded ("cpu", "nvme",
// or "auto", which then picks one of them with the parameters offloaded), synchronously: the
// CPU AdamW updates the offloaded parameter shards.
absl::Status CheckOffloadParam(const Config& c) {
  if (!c.zero.offload_param && !c.zero.offload_param_auto) return absl::OkStatus();
  constexpr absl::string_view kKey = "zero_optimization.offload_param.device";
  const char* device = c.zero.param_nvme      ? "\"nvme\""
                       : c.zero.offload_param ? "\"cpu\""
                                              : "\"auto\"";
  if (c.zero_stage != 3) {
    return KeyError(kKey, absl::StrCat(device,
                                       " needs zero_optimization.stage 3 (partitioned "
                                       "parameters), found ",
                                       c.zero_stage));
  }
  if (!c.zero.offload_optimizer && !c.zero.offload_optimizer_auto) {
    return KeyError(kKey, absl::StrCat(device,
                                       " needs zero_optimization.offload_optimizer.device "
                                       "\"cpu\", \"nvme\" or \"auto\" (the CPU AdamW updates the "
                                       "offloaded parameters), found \"none\""));
  }
  if (c.zero.param_nvme && !c.zero.optimizer_nvme) {
    return KeyError(kKey, absl::StrCat("\"nvme\" needs zero_optimization.offload_optimizer.device "
                                       "\"nvme\" (the parameters are the optimizer's master "
                                       "copy in its NVMe file), found \"",
                                       c.zero.offload_optimizer_auto ? "auto" : "cpu", "\""));
  }
  if (c.zero.param_nvme && c.optimizer.bf16_master) {
    return KeyError("optimizer.params.master_dtype",
                    "\"bf16\" is not built with offload_param \"nvme\" (the parameters are "
                    "read from an fp32 master); use \"fp32\"");
  }
  if (!c.zero.pin_memory && c.trainer.backend != "cpu") {
    return KeyError("zero_optimization.offload_optimizer.pin_memory",
                    "must be true with offload_param on a GPU backend (the GPU adds into the "
                    "offloaded gradient shards through their pinned mapping)");
  }
  if (c.zero.offload_delayed_update) {
    return KeyError("zero_optimization.offload_optimizer.delayed_update",
                    "is not built with offload_param (the CPU step updates the parameters the "
                    "next forward reads); set it to false");
  }
  return absl::OkStatus();
}

bool HasValidationData(const DataConfig& data) {
  return data.synthetic ? data.synthetic_config.val_tokens > 0 : !data.val_path.empty();
}

}  // namespace

absl::StatusOr<Config> ParseConfig(absl::string_view json_text, int world_size) {
  using namespace config_internal;  // NOLINT(build/namespaces): the section parsers
  if (world_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("world_size must be >= 1, found ", world_size));
  }
  SPW_ASSIGN_OR_RETURN(Json json, ParseJsonStrict(json_text));
  SPW_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Open(json, ""));
  for (const Reserved& reserved : kReservedKeys) {
    if (r.Has(reserved.key)) return KeyError(reserved.key, reserved.why);
  }
  SPW_RETURN_IF_ERROR(r.CheckKeys(kTopLevelKeys));

  Config c;
  int64_t micro_batches = 0;
  if (const Json* v = r.Find("pipeline")) {
    SPW_RETURN_IF_ERROR(ParsePipeline(*v, world_size, &c.pipeline, &micro_batches));
  }
  SPW_RETURN_IF_ERROR(ResolveBatchSizes(r, world_size / c.pipeline.stages, micro_batches, &c));
  SPW_RETURN_IF_ERROR(r.Double("gradient_clipping", &c.gradient_clipping, DoubleRange::AtLeast(0)));
  SPW_RETURN_IF_ERROR(r.Int("steps_per_print", &c.steps_per_print, 1, kInt64Max));
  bool wall_clock_breakdown = false;
  SPW_RETURN_IF_ERROR(r.Bool("wall_clock_breakdown", &wall_clock_breakdown));
  if (wall_clock_breakdown) {
    return KeyError("wall_clock_breakdown",
                    "the per-phase timing breakdown is not supported yet; only false is accepted");
  }

  for (absl::string_view key : {"model", "data", "trainer"}) SPW_RETURN_IF_ERROR(r.Require(key));
  SPW_RETURN_IF_ERROR(ParseModel(*r.Find("model"), &c.model));
  SPW_RETURN_IF_ERROR(ParseData(*r.Find("data"), &c.data));
  SPW_RETURN_IF_ERROR(ParseTrainer(*r.Find("trainer"), &c.trainer));
  if (const Json* v = r.Find("optimizer")) SPW_RETURN_IF_ERROR(ParseOptimizer(*v, &c.optimizer));
  if (const Json* v = r.Find("scheduler")) SPW_RETURN_IF_ERROR(ParseScheduler(*v, &c.scheduler));
  if (const Json* v = r.Find("activation_checkpointing")) {
    SPW_RETURN_IF_ERROR(
        ParseActivationCheckpointing(*v, &c.activation_checkpointing, &c.cpu_checkpointing));
  }
  SPW_RETURN_IF_ERROR(ParsePrecision(r.Find("bf16"), r.Find("fp16"), &c.precision));
  if (const Json* v = r.Find("zero_optimization")) {
    SPW_RETURN_IF_ERROR(ParseZeroOptimization(*v, &c.zero_stage, &c.zero));
  }
  if (const Json* v = r.Find("aio")) SPW_RETURN_IF_ERROR(ParseAio(*v, &c.aio));
  if (const Json* v = r.Find("checkpoint")) SPW_RETURN_IF_ERROR(ParseCheckpoint(*v, &c.checkpoint));
  if (const Json* v = r.Find("log")) SPW_RETURN_IF_ERROR(ParseLog(*v, &c.log));

  if (c.zero.nvme_ratio < 1.0 && !c.optimizer.compact()) {
    return KeyError("zero_optimization.offload_optimizer.nvme_ratio",
                    "below 1 needs compact optimizer state (optimizer.params.state_dtype \"bf16\" "
                    "or \"int8\"): fp32 state is all on NVMe or all in CPU memory");
  }
  if (c.optimizer.compact() && !c.zero.offload_optimizer) {
    return KeyError(
        c.optimizer.bf16_master ? "optimizer.params.master_dtype" : "optimizer.params.state_dtype",
        "compact optimizer state runs in the CPU AdamW: set "
        "zero_optimization.offload_optimizer.device to \"cpu\" or \"nvme\"");
  }
  if (c.trainer.eval_interval > 0 && !HasValidationData(c.data)) {
    return KeyError("trainer.eval_interval",
                    absl::StrCat("is ", c.trainer.eval_interval,
                                 " but there is no validation data; set data.val_path or "
                                 "data.synthetic.val_tokens > 0, or set eval_interval to 0"));
  }
  SPW_RETURN_IF_ERROR(CheckOffloadParam(c));
  SPW_RETURN_IF_ERROR(CheckPipeline(c));
  c.canonical_json = json.dump();
  return c;
}

absl::StatusOr<Config> LoadConfig(const std::string& path, int world_size) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    // Keep the code (NotFound, PermissionDenied...): the file, not its contents, is at fault.
    return absl::Status(text.status().code(), absl::StrCat("cannot read config file ", path, ": ",
                                                           text.status().message()));
  }
  absl::StatusOr<Config> config = ParseConfig(*text, world_size);
  if (!config.ok()) return Annotate(config.status(), absl::StrCat("config file ", path));
  return config;
}

}  // namespace spillway
