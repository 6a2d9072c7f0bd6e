// Private to spillway_config: one parser per config section. Each takes the section's JSON
// value (already known to be present), checks its keys, types and ranges, and fills its part
// of Config. Errors name full key paths (see json_reader.h).
#pragma once

#include "absl/status/status.h"
#include "engine/config/config.h"
#include "engine/config/json_reader.h"

namespace spillway::config_internal {

// DeepSpeed-named sections (deepspeed_sections.cc).
absl::Status ParseOptimizer(const Json& value, OptimizerConfig* out);
absl::Status ParseScheduler(const Json& value, SchedulerConfig* out);
absl::Status ParseActivationCheckpointing(const Json& value, bool* enabled,
                                          bool* cpu_checkpointing);
// bf16 and fp16 (either may be null); both enabled is an error naming both keys.
absl::Status ParsePrecision(const Json* bf16, const Json* fp16, PrecisionConfig* out);
absl::Status ParseZeroOptimization(const Json& value, int* stage, ZeroConfig* zero);
absl::Status ParseAio(const Json& value, AioConfig* aio);

// spillway's own sections (spillway_sections.cc).
absl::Status ParseModel(const Json& value, ModelConfig* out);
absl::Status ParseData(const Json& value, DataConfig* out);
absl::Status ParseTrainer(const Json& value, TrainerConfig* out);
absl::Status ParseCheckpoint(const Json& value, CheckpointConfig* out);
absl::Status ParseLog(const Json& value, LogConfig* out);
// pipeline_section.cc: the keys of "pipeline" (ParsePipeline) and the checks that need the
// rest of the config (CheckPipeline).
absl::Status ParsePipeline(const Json& value, int world_size, PipelineConfig* out,
                           int64_t* micro_batches);
absl::Status CheckPipeline(const Config& c);

}  // namespace spillway::config_internal
