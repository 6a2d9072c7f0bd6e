// The sections whose keys are DeepSpeed's: optimizer, scheduler, activation_checkpointing,
// bf16, fp16, zero_optimization. Keys for features spillway has not built are recognised and
// rejected with a message that says so.
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "engine/config/sections.h"

namespace spillway::config_internal {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
// DeepSpeed's ZeRO options spillway does not have (yet).
constexpr absl::string_view kZeroOptionsNotBuilt[] = {
    "contiguous_gradients",
    "allgather_bucket_size",
    "reduce_scatter",
    "allgather_partitions",
    "sub_group_size",
    "round_robin_gradients",
    "stage3_param_persistence_threshold",
    "stage3_max_reuse_distance",
    "stage3_gather_16bit_weights_on_model_save",
};

// A key whose only accepted values are false and null (DeepSpeed's defaults); true means a
// feature that is not built yet, described by `feature`.
absl::Status FalseOnly(const ObjectReader& r, absl::string_view key, absl::string_view feature) {
  const Json* v = r.Find(key);
  if (v == nullptr || v->is_null()) return absl::OkStatus();
  SPW_ASSIGN_OR_RETURN(bool on, ReadBool(*v, r.KeyPath(key)));
  if (on) return KeyError(r.KeyPath(key), absl::StrCat(feature, "; only false is accepted"));
  return absl::OkStatus();
}

absl::Status ParseWarmupLR(const ObjectReader& p, SchedulerConfig* out) {
  SPW_RETURN_IF_ERROR(
      p.CheckKeys({"warmup_min_lr", "warmup_max_lr", "warmup_num_steps", "warmup_type"}));
  // DeepSpeed's defaults.
  out->warmup_min_lr = 0.0;
  out->warmup_max_lr = 0.001;
  out->warmup_num_steps = 1000;
  std::string warmup_type = "log";
  SPW_RETURN_IF_ERROR(p.Double("warmup_min_lr", &out->warmup_min_lr, DoubleRange::AtLeast(0)));
  SPW_RETURN_IF_ERROR(p.Double("warmup_max_lr", &out->warmup_max_lr, DoubleRange::Above(0)));
  SPW_RETURN_IF_ERROR(p.Int("warmup_num_steps", &out->warmup_num_steps, 0, kInt64Max));
  SPW_RETURN_IF_ERROR(p.String("warmup_type", &warmup_type, {"linear", "log"}));
  out->warmup_log = warmup_type == "log";
  if (out->warmup_min_lr > out->warmup_max_lr) {
    return KeyError(p.KeyPath("warmup_min_lr"),
                    absl::StrCat("must be <= ", p.KeyPath("warmup_max_lr"), " (",
                                 out->warmup_max_lr, "), found ", out->warmup_min_lr));
  }
  if (out->warmup_log && out->warmup_num_steps < 2) {
    return KeyError(p.KeyPath("warmup_num_steps"),
                    absl::StrCat("must be >= 2 with warmup_type \"log\" (log(1) = 0), found ",
                                 out->warmup_num_steps, "; use \"linear\" for shorter warmups"));
  }
  return absl::OkStatus();
}

absl::Status ParseWarmupCosineLR(const ObjectReader& p, SchedulerConfig* out) {
  SPW_RETURN_IF_ERROR(p.CheckKeys(
      {"total_num_steps", "warmup_min_ratio", "warmup_num_steps", "cos_min_ratio", "warmup_type"}));
  out->warmup_min_ratio = 0.0;
  out->warmup_num_steps = 1000;
  out->cos_min_ratio = 0.0001;
  out->warmup_log = false;
  SPW_RETURN_IF_ERROR(p.Int("total_num_steps", &out->total_num_steps, 1, kInt64Max, true));
  SPW_RETURN_IF_ERROR(
      p.Double("warmup_min_ratio", &out->warmup_min_ratio, DoubleRange::Closed(0, 1)));
  SPW_RETURN_IF_ERROR(p.Int("warmup_num_steps", &out->warmup_num_steps, 0, kInt64Max));
  SPW_RETURN_IF_ERROR(p.Double("cos_min_ratio", &out->cos_min_ratio, DoubleRange::Closed(0, 1)));
  if (const Json* v = p.Find("warmup_type"); v != nullptr) {
    SPW_ASSIGN_OR_RETURN(std::string warmup_type, ReadString(*v, p.KeyPath("warmup_type")));
    if (warmup_type == "log") {
      return KeyError(p.KeyPath("warmup_type"),
                      "\"log\" warmup is not built yet for WarmupCosineLR; use \"linear\"");
    }
    SPW_RETURN_IF_ERROR(ReadString(*v, p.KeyPath("warmup_type"), {"linear"}).status());
  }
  if (out->warmup_num_steps > out->total_num_steps) {
    return KeyError(p.KeyPath("warmup_num_steps"),
                    absl::StrCat("must be <= ", p.KeyPath("total_num_steps"), " (",
                                 out->total_num_steps, "), found ", out->warmup_num_steps));
  }
  return absl::OkStatus();
}

// A count DeepSpeed configs often write as 1e8: a number with an integral value in [min, max].
absl::Status WholeNumber(const ObjectReader& r, absl::string_view key, int64_t* out, int64_t min,
                         int64_t max) {
  double count = static_cast<double>(*out);
  SPW_RETURN_IF_ERROR(r.Double(key, &count, DoubleRange{}));
  if (count != std::floor(count) || count < static_cast<double>(min) ||
      count > static_cast<double>(max)) {
    return KeyError(r.KeyPath(key), absl::StrCat("must be a whole number in [", min, ", ", max,
                                                 "], found ", count));
  }
  *out = static_cast<int64_t>(count);
  return absl::OkStatus();
}

// offload_optimizer: device "cpu" sets zero->offload_optimizer (and pin_memory, the delayed
// update and the staging pool); "nvme" also sets zero->optimizer_nvme and reads nvme_path
// (required), buffer_count and buffer_size; "auto" sets zero->offload_optimizer_auto and reads
// the same keys, nvme_path optional. The delayed update needs device "cpu"; nvme_ratio below 1
// needs "nvme" (and compact state, checked once the optimizer section is read).
absl::Status ParseOffloadOptimizer(const ObjectReader& zero_reader, ZeroConfig* zero) {
  const Json* v = zero_reader.Find("offload_optimizer");
  if (v == nullptr || v->is_null()) return absl::OkStatus();
  SPW_ASSIGN_OR_RETURN(ObjectReader r,
                       ObjectReader::Open(*v, zero_reader.KeyPath("offload_optimizer")));
  SPW_RETURN_IF_ERROR(r.CheckKeys(
      {"device", "nvme_path", "buffer_count", "buffer_size", "max_in_cpu", "pin_memory",
       "pipeline_read", "pipeline_write", "fast_init", "ratio", "nvme_ratio", "delayed_update",
       "delayed_update_warmup", "staging_buffer_count", "staging_buffer_size"}));
  std::string device = "none";
  SPW_RETURN_IF_ERROR(r.String("device", &device, {"none", "cpu", "nvme", "auto"}));
  bool want_delayed = false;
  SPW_RETURN_IF_ERROR(r.Bool("delayed_update", &want_delayed));
  SPW_RETURN_IF_ERROR(
      r.Int("delayed_update_warmup", &zero->delayed_update_warmup, 0, 1'000'000'000));
  SPW_RETURN_IF_ERROR(r.Int("staging_buffer_count", &zero->staging_buffer_count, 1, 1024));
  SPW_RETURN_IF_ERROR(
      r.Int("staging_buffer_size", &zero->staging_buffer_size, 1, 1'000'000'000'000));
  if (want_delayed && device != "cpu") {
    return KeyError(r.KeyPath("delayed_update"),
                    "the delayed update needs the optimizer offloaded: set device to \"cpu\"");
  }
  zero->offload_delayed_update = want_delayed;
  if (const Json* ratio = r.Find("ratio"); ratio != nullptr && ratio->is_string()) {
    SPW_RETURN_IF_ERROR(ReadString(*ratio, r.KeyPath("ratio"), {"auto"}).status());
    zero->offload_ratio_auto = true;
  } else {
    SPW_RETURN_IF_ERROR(r.Double("ratio", &zero->offload_ratio, {0.0, true, 1.0, false}));
  }
  // "auto" may also leave the choice of the device to the planner.
  const bool auto_ratio = zero->offload_ratio_auto;
  const bool device_splits =
      device == "cpu" || device == "nvme" || (auto_ratio && device == "auto");
  if ((auto_ratio || zero->offload_ratio < 1.0) && (!device_splits || want_delayed)) {
    return KeyError(
        r.KeyPath("ratio"),
        absl::StrCat(auto_ratio ? "\"auto\"" : "below 1",
                     " (partial offload) needs device \"cpu\" or \"nvme\"",
                     auto_ratio ? " (or \"auto\")" : "", " without delayed_update, found device \"",
                     device, "\"", want_delayed ? " with delayed_update" : ""));
  }
  SPW_RETURN_IF_ERROR(r.Double("nvme_ratio", &zero->nvme_ratio, {0.0, true, 1.0, false}));
  if (zero->nvme_ratio < 1.0 && device != "nvme") {
    return KeyError(r.KeyPath("nvme_ratio"),
                    absl::StrCat("below 1 (the first Units' state in CPU memory, the last Units' "
                                 "on NVMe) needs device \"nvme\", found \"",
                                 device, "\""));
  }
  if (device == "none") return absl::OkStatus();
  SPW_RETURN_IF_ERROR(r.Bool("pin_memory", &zero->pin_memory));
  if (device == "auto") {
    zero->offload_optimizer_auto = true;
    if (!r.Has("nvme_path")) return absl::OkStatus();  // no NVMe candidate
    SPW_RETURN_IF_ERROR(r.NonEmptyString("nvme_path", &zero->nvme_path));
    SPW_RETURN_IF_ERROR(WholeNumber(r, "buffer_count", &zero->nvme_buffer_count, 3, 256));
    return WholeNumber(r, "buffer_size", &zero->nvme_buffer_size, 4096, int64_t{1} << 32);
  }
  zero->offload_optimizer = true;
  if (device == "cpu") return absl::OkStatus();
  zero->optimizer_nvme = true;
  if (!r.Has("nvme_path")) {
    return KeyError(r.KeyPath("nvme_path"),
                    "is required with device \"nvme\": a directory on a local NVMe disk where "
                    "each rank keeps its optimizer state file");
  }
  SPW_RETURN_IF_ERROR(r.NonEmptyString("nvme_path", &zero->nvme_path));
  SPW_RETURN_IF_ERROR(WholeNumber(r, "buffer_count", &zero->nvme_buffer_count, 3, 256));
  return WholeNumber(r, "buffer_size", &zero->nvme_buffer_size, 4096, int64_t{1} << 32);
}

// offload_param: device "none", "cpu" (sets zero->offload_param), "nvme" (also sets
// zero->param_nvme; an nvme_path here must be offload_optimizer's, whose file holds the
// parameters) or "auto" (sets zero->offload_param_auto); pin_memory is shared with
// offload_optimizer. The combinations it needs are checked by CheckOffloadParam once every
// section is read.
absl::Status ParseOffloadParam(const ObjectReader& zero_reader, ZeroConfig* zero) {
  const Json* v = zero_reader.Find("offload_param");
  if (v == nullptr || v->is_null()) return absl::OkStatus();
  SPW_ASSIGN_OR_RETURN(ObjectReader r,
                       ObjectReader::Open(*v, zero_reader.KeyPath("offload_param")));
  for (absl::string_view k :
       {"delayed_update", "delayed_update_warmup", "staging_buffer_count", "staging_buffer_size"}) {
    if (r.Find(k) != nullptr) {
      return KeyError(r.KeyPath(k), "a setting of offload_optimizer, not of this section");
    }
  }
  SPW_RETURN_IF_ERROR(
      r.CheckKeys({"device", "nvme_path", "buffer_count", "buffer_size", "max_in_cpu", "pin_memory",
                   "pipeline_read", "pipeline_write", "fast_init", "ratio"}));
  std::string device = "none";
  SPW_RETURN_IF_ERROR(r.String("device", &device, {"none", "cpu", "nvme", "auto"}));
  SPW_RETURN_IF_ERROR(WholeNumber(r, "max_in_cpu", &zero->param_max_in_cpu, 0, int64_t{1} << 50));
  if (device == "none") return absl::OkStatus();
  if (device == "nvme") {
    std::string path = zero->nvme_path;
    SPW_RETURN_IF_ERROR(r.String("nvme_path", &path));
    if (path != zero->nvme_path) {
      return KeyError(r.KeyPath("nvme_path"),
                      absl::StrCat("must equal zero_optimization.offload_optimizer.nvme_path (\"",
                                   zero->nvme_path,
                                   "\"): the parameters are the optimizer's master copy in its "
                                   "file; leave it out"));
    }
    zero->param_nvme = true;
  }
  bool pin = zero->pin_memory;
  SPW_RETURN_IF_ERROR(r.Bool("pin_memory", &pin));
  if (pin != zero->pin_memory) {
    return KeyError(r.KeyPath("pin_memory"),
                    "must equal zero_optimization.offload_optimizer.pin_memory (one host tier "
                    "holds parameters and optimizer state)");
  }
  (device == "auto" ? zero->offload_param_auto : zero->offload_param) = true;
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseOptimizer(const Json& value, OptimizerConfig* out) {
  SPW_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Open(value, "optimizer"));
  SPW_RETURN_IF_ERROR(r.CheckKeys({"type", "params"}));
  SPW_RETURN_IF_ERROR(r.String("type", &out->type, {"AdamW"}, /*required=*/true));
  const Json* params = r.Find("params");
  if (params == nullptr) return absl::OkStatus();
  SPW_ASSIGN_OR_RETURN(ObjectReader p, ObjectReader::Open(*params, r.KeyPath("params")));
  SPW_RETURN_IF_ERROR(
      p.CheckKeys({"lr", "betas", "eps", "weight_decay", "state_dtype", "master_dtype"}));
  SPW_RETURN_IF_ERROR(p.Double("lr", &out->lr, DoubleRange::Above(0)));
  std::string state_dtype = "fp32", master_dtype = "fp32";
  SPW_RETURN_IF_ERROR(p.String("state_dtype", &state_dtype, {"fp32", "bf16", "int8"}));
  SPW_RETURN_IF_ERROR(p.String("master_dtype", &master_dtype, {"fp32", "bf16"}));
  out->state_dtype = state_dtype == "bf16"   ? OptimizerConfig::StateDtype::kBf16
                     : state_dtype == "int8" ? OptimizerConfig::StateDtype::kInt8
                                             : OptimizerConfig::StateDtype::kFp32;
  out->bf16_master = master_dtype == "bf16";
  if (out->bf16_master && out->state_dtype != OptimizerConfig::StateDtype::kFp32) {
    return KeyError(p.KeyPath("master_dtype"),
                    "\"bf16\" master parameters keep fp32 Adam moments; set state_dtype to "
                    "\"fp32\" or master_dtype to \"fp32\"");
  }
  if (const Json* betas = p.Find("betas"); betas != nullptr) {
    const std::string path = p.KeyPath("betas");
    if (!betas->is_array() || betas->size() != 2) {
      return KeyError(path, absl::StrCat("expected an array of two numbers [beta1, beta2], found ",
                                         Describe(*betas)));
    }
    const DoubleRange beta_range = DoubleRange::HalfOpen(0, 1);
    SPW_ASSIGN_OR_RETURN(out->beta1,
                         ReadDouble((*betas)[0], absl::StrCat(path, "[0]"), beta_range));
    SPW_ASSIGN_OR_RETURN(out->beta2,
                         ReadDouble((*betas)[1], absl::StrCat(path, "[1]"), beta_range));
  }
  SPW_RETURN_IF_ERROR(p.Double("eps", &out->eps, DoubleRange::Above(0)));
  SPW_RETURN_IF_ERROR(p.Double("weight_decay", &out->weight_decay, DoubleRange::AtLeast(0)));
  return absl::OkStatus();
}

absl::Status ParseScheduler(const Json& value, SchedulerConfig* out) {
  SPW_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Open(value, "scheduler"));
  SPW_RETURN_IF_ERROR(r.CheckKeys({"type", "params"}));
  SPW_RETURN_IF_ERROR(r.Require("type"));
  SPW_ASSIGN_OR_RETURN(std::string type, ReadString(*r.Find("type"), r.KeyPath("type")));
  if (type == "LRRangeTest" || type == "OneCycle" || type == "WarmupDecayLR") {
    return KeyError(
        r.KeyPath("type"),
        absl::StrCat("DeepSpeed's \"", type,
                     "\" is not built yet; supported: \"WarmupLR\", \"WarmupCosineLR\""));
  }
  SPW_RETURN_IF_ERROR(
      ReadString(*r.Find("type"), r.KeyPath("type"), {"WarmupLR", "WarmupCosineLR"}).status());
  static const Json kEmpty = Json::object();
  const Json* params = r.Find("params");
  SPW_ASSIGN_OR_RETURN(ObjectReader p,
                       ObjectReader::Open(params ? *params : kEmpty, r.KeyPath("params")));
  if (type == "WarmupLR") {
    out->type = SchedulerConfig::Type::kWarmupLR;
    return ParseWarmupLR(p, out);
  }
  out->type = SchedulerConfig::Type::kWarmupCosineLR;
  return ParseWarmupCosineLR(p, out);
}

absl::Status ParseActivationCheckpointing(const Json& value, bool* enabled,
                                          bool* cpu_checkpointing) {
  SPW_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Open(value, "activation_checkpointing"));
  SPW_RETURN_IF_ERROR(r.CheckKeys({"enabled", "partition_activations", "cpu_checkpointing",
                                   "contiguous_memory_optimization", "number_checkpoints",
                                   "synchronize_checkpoint_boundary", "profile"}));
  SPW_RETURN_IF_ERROR(r.Bool("enabled", enabled));
  SPW_RETURN_IF_ERROR(FalseOnly(r, "partition_activations",
                                "partitioning activations across GPUs is not supported yet"));
  SPW_RETURN_IF_ERROR(r.Bool("cpu_checkpointing", cpu_checkpointing));
  if (*cpu_checkpointing && !*enabled) {
    return KeyError(r.KeyPath("cpu_checkpointing"),
                    "keeping activation checkpoints in CPU memory needs "
                    "activation_checkpointing.enabled = true");
  }
  SPW_RETURN_IF_ERROR(FalseOnly(r, "contiguous_memory_optimization",
                                "contiguous activation-checkpoint memory is not supported yet"));
  SPW_RETURN_IF_ERROR(FalseOnly(r, "synchronize_checkpoint_boundary",
                                "synchronizing at checkpoint boundaries is not supported yet"));
  SPW_RETURN_IF_ERROR(
      FalseOnly(r, "profile", "activation-checkpoint profiling is not supported yet"));
  if (const Json* v = r.Find("number_checkpoints"); v != nullptr && !v->is_null()) {
    return KeyError(r.KeyPath("number_checkpoints"),
                    absl::StrCat("choosing the number of checkpoints is not supported yet (every "
                                 "layer is a checkpoint); only null is accepted, found ",
                                 Describe(*v)));
  }
  return absl::OkStatus();
}

absl::Status ParsePrecision(const Json* bf16, const Json* fp16, PrecisionConfig* out) {
  bool bf16_on = false, fp16_on = false;
  if (bf16 != nullptr) {
    SPW_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Open(*bf16, "bf16"));
    SPW_RETURN_IF_ERROR(r.CheckKeys({"enabled"}));
    SPW_RETURN_IF_ERROR(r.Bool("enabled", &bf16_on));
  }
  if (fp16 != nullptr) {
    SPW_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Open(*fp16, "fp16"));
    SPW_RETURN_IF_ERROR(r.CheckKeys({"enabled", "loss_scale", "initial_scale_power",
                                     "loss_scale_window", "hysteresis", "min_loss_scale"}));
    // Checked even while disabled, so that a config is valid or not regardless of `enabled`.
    SPW_RETURN_IF_ERROR(r.Bool("enabled", &fp16_on));
    SPW_RETURN_IF_ERROR(r.Double("loss_scale", &out->loss_scale, DoubleRange::AtLeast(0)));
    int64_t power = out->initial_scale_power;
    SPW_RETURN_IF_ERROR(r.Int("initial_scale_power", &power, 0, 64));
    out->initial_scale_power = static_cast<int>(power);
    SPW_RETURN_IF_ERROR(r.Int("loss_scale_window", &out->loss_scale_window, 1, kInt64Max));
    SPW_RETURN_IF_ERROR(r.Int("hysteresis", &out->hysteresis, 1, kInt64Max));
    SPW_RETURN_IF_ERROR(r.Double("min_loss_scale", &out->min_loss_scale, DoubleRange::Above(0)));
  }
  if (bf16_on && fp16_on) {
    return KeyError("fp16.enabled",
                    "bf16.enabled and fp16.enabled are both true; enable at most one of them");
  }
  out->mode = bf16_on   ? PrecisionConfig::Mode::kBf16
              : fp16_on ? PrecisionConfig::Mode::kFp16
                        : PrecisionConfig::Mode::kFp32;
  return absl::OkStatus();
}

absl::Status ParseAio(const Json& value, AioConfig* aio) {
  SPW_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Open(value, "aio"));
  SPW_RETURN_IF_ERROR(r.CheckKeys({"block_size", "queue_depth", "thread_count", "single_submit",
                                   "overlap_events", "use_gds", "engine"}));
  SPW_RETURN_IF_ERROR(WholeNumber(r, "block_size", &aio->block_size, 1 << 20, 8 << 20));
  if (aio->block_size % 4096 != 0) {
    return KeyError(
        r.KeyPath("block_size"),
        absl::StrCat("must be a multiple of 4096 (O_DIRECT's block), found ", aio->block_size));
  }
  SPW_RETURN_IF_ERROR(WholeNumber(r, "queue_depth", &aio->queue_depth, 1, 1024));
  // The io_uring engine has one completion thread and submits in batches: DeepSpeed's thread
  // and submission knobs have nothing to set, so any valid value is accepted.
  int64_t threads = 1;
  SPW_RETURN_IF_ERROR(WholeNumber(r, "thread_count", &threads, 1, 1024));
  std::string engine = "auto";
  SPW_RETURN_IF_ERROR(r.String("engine", &engine, {"auto", "pread"}));
  aio->force_pread = engine == "pread";
  bool flag = false;
  SPW_RETURN_IF_ERROR(r.Bool("single_submit", &flag));
  SPW_RETURN_IF_ERROR(r.Bool("overlap_events", &flag));
  return FalseOnly(r, "use_gds", "GPUDirect Storage is not supported");
}

absl::Status ParseZeroOptimization(const Json& value, int* stage_out, ZeroConfig* zero) {
  SPW_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Open(value, "zero_optimization"));
  std::vector<absl::string_view> allowed = {"stage",
                                            "offload_optimizer",
                                            "offload_param",
                                            "overlap_comm",
                                            "reduce_bucket_size",
                                            "stage3_prefetch_bucket_size",
                                            "stage3_max_live_parameters"};
  allowed.insert(allowed.end(), std::begin(kZeroOptionsNotBuilt), std::end(kZeroOptionsNotBuilt));
  SPW_RETURN_IF_ERROR(r.CheckKeys(allowed));
  int64_t stage = 0;
  SPW_RETURN_IF_ERROR(r.Int("stage", &stage, 0, 3));
  *stage_out = static_cast<int>(stage);
  SPW_RETURN_IF_ERROR(r.Bool("overlap_comm", &zero->overlap_comm));
  // DeepSpeed configs often write these counts as 5e8: any number >= 1 with an integral value.
  for (auto [key, out] :
       {std::pair{"reduce_bucket_size", &zero->reduce_bucket_size},
        std::pair{"stage3_prefetch_bucket_size", &zero->stage3_prefetch_bucket_size},
        std::pair{"stage3_max_live_parameters", &zero->stage3_max_live_parameters}}) {
    double count = static_cast<double>(*out);
    SPW_RETURN_IF_ERROR(r.Double(key, &count, DoubleRange::AtLeast(1)));
    if (count != std::floor(count) || count > 9e18) {
      return KeyError(r.KeyPath(key), "must be a whole number of elements");
    }
    *out = static_cast<int64_t>(count);
  }
  SPW_RETURN_IF_ERROR(ParseOffloadOptimizer(r, zero));
  SPW_RETURN_IF_ERROR(ParseOffloadParam(r, zero));
  for (absl::string_view key : kZeroOptionsNotBuilt) {
    if (r.Has(key)) {
      return KeyError(r.KeyPath(key), "this ZeRO option is not built in spillway; remove the key");
    }
  }
  return absl::OkStatus();
}

}  // namespace spillway::config_internal
