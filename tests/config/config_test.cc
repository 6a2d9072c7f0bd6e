// ParseConfig/LoadConfig on valid configs: the full example, defaults, batch-size rules,
// canonical JSON, the docs' examples, and file handling.
#include "engine/config/config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace spillway {
namespace {

constexpr char kFullConfig[] = R"({
  "train_batch_size": 32,
  "train_micro_batch_size_per_gpu": 4,
  "gradient_accumulation_steps": 8,
  "gradient_clipping": 1.0,
  "steps_per_print": 5,
  "optimizer": {"type": "AdamW",
                "params": {"lr": 6e-4, "betas": [0.9, 0.95], "eps": 1e-6, "weight_decay": 0.1}},
  "scheduler": {"type": "WarmupCosineLR",
                "params": {"total_num_steps": 1000, "warmup_min_ratio": 0.1,
                           "warmup_num_steps": 100, "cos_min_ratio": 0.05,
                           "warmup_type": "linear"}},
  "activation_checkpointing": {"enabled": true},
  "bf16": {"enabled": false},
  "fp16": {"enabled": false},
  "zero_optimization": {"stage": 0},
  "wall_clock_breakdown": false,
  "model": {"type": "gpt2", "n_layer": 4, "n_head": 4, "d_model": 128, "seq_len": 64,
            "vocab_size": 50257, "init_std": 0.01},
  "data": {"train_path": "data/train.bin", "val_path": "data/val.bin"},
  "trainer": {"steps": 1000, "seed": 42, "backend": "cpu", "eval_interval": 100,
              "eval_batches": 4},
  "checkpoint": {"dir": "ckpt", "interval": 200, "keep_last": 3},
  "log": {"metrics_path": "metrics.jsonl"}
})";

// The smallest valid config; everything else takes its default.
constexpr char kMinimalModelDataTrainer[] = R"(
  "model": {"n_layer": 2, "n_head": 2, "d_model": 8, "seq_len": 16, "vocab_size": 32},
  "data": {"synthetic": {"train_tokens": 1000}},
  "trainer": {"steps": 10})";

std::string WithBatch(const std::string& batch_keys) {
  return "{" + batch_keys + (batch_keys.empty() ? "" : ",") + kMinimalModelDataTrainer + "}";
}

TEST(ConfigTest, FullConfigParses) {
  absl::StatusOr<Config> c = ParseConfig(kFullConfig);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->train_batch_size, 32);
  EXPECT_EQ(c->train_micro_batch_size_per_gpu, 4);
  EXPECT_EQ(c->gradient_accumulation_steps, 8);
  EXPECT_DOUBLE_EQ(c->gradient_clipping, 1.0);
  EXPECT_EQ(c->steps_per_print, 5);
  EXPECT_TRUE(c->activation_checkpointing);

  EXPECT_EQ(c->optimizer.type, "AdamW");
  EXPECT_DOUBLE_EQ(c->optimizer.lr, 6e-4);
  EXPECT_DOUBLE_EQ(c->optimizer.beta1, 0.9);
  EXPECT_DOUBLE_EQ(c->optimizer.beta2, 0.95);
  EXPECT_DOUBLE_EQ(c->optimizer.eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->optimizer.weight_decay, 0.1);

  EXPECT_EQ(c->scheduler.type, SchedulerConfig::Type::kWarmupCosineLR);
  EXPECT_EQ(c->scheduler.total_num_steps, 1000);
  EXPECT_EQ(c->scheduler.warmup_num_steps, 100);
  EXPECT_DOUBLE_EQ(c->scheduler.warmup_min_ratio, 0.1);
  EXPECT_DOUBLE_EQ(c->scheduler.cos_min_ratio, 0.05);
  EXPECT_FALSE(c->scheduler.warmup_log);

  EXPECT_EQ(c->model.type, "gpt2");
  EXPECT_EQ(c->model.n_layer, 4);
  EXPECT_EQ(c->model.n_head, 4);
  EXPECT_EQ(c->model.d_model, 128);
  EXPECT_EQ(c->model.seq_len, 64);
  EXPECT_EQ(c->model.vocab_size, 50257);
  EXPECT_DOUBLE_EQ(c->model.init_std, 0.01);

  EXPECT_FALSE(c->data.synthetic);
  EXPECT_EQ(c->data.train_path, "data/train.bin");
  EXPECT_EQ(c->data.val_path, "data/val.bin");

  EXPECT_EQ(c->trainer.steps, 1000);
  EXPECT_EQ(c->trainer.seed, 42u);
  EXPECT_EQ(c->trainer.backend, "cpu");
  EXPECT_EQ(c->trainer.eval_interval, 100);
  EXPECT_EQ(c->trainer.eval_batches, 4);

  EXPECT_EQ(c->checkpoint.dir, "ckpt");
  EXPECT_EQ(c->checkpoint.interval, 200);
  EXPECT_EQ(c->checkpoint.keep_last, 3);
  EXPECT_EQ(c->log.metrics_path, "metrics.jsonl");
}

TEST(ConfigTest, MinimalConfigGetsDefaults) {
  absl::StatusOr<Config> c = ParseConfig(WithBatch(R"("train_batch_size": 8)"));
  ASSERT_TRUE(c.ok()) << c.status();
  const Config d;  // the documented defaults are the struct's
  EXPECT_EQ(c->train_micro_batch_size_per_gpu, 8);
  EXPECT_EQ(c->gradient_accumulation_steps, 1);
  EXPECT_EQ(c->gradient_clipping, 0.0);
  EXPECT_EQ(c->steps_per_print, 10);
  EXPECT_FALSE(c->activation_checkpointing);
  EXPECT_EQ(c->optimizer.type, "AdamW");
  EXPECT_EQ(c->optimizer.lr, 3e-4);
  EXPECT_EQ(c->optimizer.beta1, 0.9);
  EXPECT_EQ(c->optimizer.beta2, 0.999);
  EXPECT_EQ(c->optimizer.eps, 1e-8);
  EXPECT_EQ(c->optimizer.weight_decay, 0.01);
  EXPECT_EQ(c->scheduler.type, SchedulerConfig::Type::kConstant);
  EXPECT_EQ(c->model.type, "gpt2");
  EXPECT_EQ(c->model.init_std, 0.02);
  EXPECT_TRUE(c->data.synthetic);
  EXPECT_EQ(c->data.synthetic_config.seed, 1u);
  EXPECT_EQ(c->data.synthetic_config.train_tokens, 1000);
  EXPECT_EQ(c->data.synthetic_config.val_tokens, 0);
  EXPECT_TRUE(c->data.train_path.empty());
  EXPECT_EQ(c->trainer.steps, 10);
  EXPECT_EQ(c->trainer.seed, 1234u);
  EXPECT_EQ(c->trainer.backend, "cpu");
  EXPECT_EQ(c->trainer.eval_interval, 0);
  EXPECT_EQ(c->trainer.eval_batches, 8);
  EXPECT_TRUE(c->trainer.matmul_autotune);
  EXPECT_TRUE(c->trainer.cuda_graphs);
  EXPECT_TRUE(c->checkpoint.dir.empty());
  EXPECT_EQ(c->checkpoint.interval, d.checkpoint.interval);
  EXPECT_EQ(c->checkpoint.keep_last, d.checkpoint.keep_last);
  EXPECT_TRUE(c->log.metrics_path.empty());
}

TEST(ConfigTest, LlamaModelKeys) {
  absl::StatusOr<Config> c = ParseConfig(R"({
    "train_batch_size": 8,
    "model": {"type": "llama", "n_layer": 2, "n_head": 8, "n_kv_head": 2, "d_model": 64,
              "ffn_hidden": 176, "seq_len": 32, "vocab_size": 96, "rope_theta": 500000.0,
              "rms_norm_eps": 1e-6, "init_from": "hf/llama"},
    "data": {"synthetic": {"train_tokens": 1000}},
    "trainer": {"steps": 10}
  })");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model.type, "llama");
  EXPECT_EQ(c->model.n_head, 8);
  EXPECT_EQ(c->model.n_kv_head, 2);
  EXPECT_EQ(c->model.ffn_hidden, 176);
  EXPECT_EQ(c->model.rope_theta, 500000.0);
  EXPECT_EQ(c->model.rms_norm_eps, 1e-6);
  EXPECT_EQ(c->model.init_from, "hf/llama");

  // Absent Llama keys take the defaults: n_head key/value heads, 4 d_model wide, theta 10000.
  c = ParseConfig(R"({
    "train_batch_size": 8,
    "model": {"type": "llama", "n_layer": 2, "n_head": 2, "d_model": 8, "seq_len": 16,
              "vocab_size": 32},
    "data": {"synthetic": {"train_tokens": 1000}},
    "trainer": {"steps": 10}
  })");
  ASSERT_TRUE(c.ok()) << c.status();
  const ModelConfig d;
  EXPECT_EQ(c->model.n_kv_head, 0);
  EXPECT_EQ(c->model.ffn_hidden, 0);
  EXPECT_EQ(c->model.rope_theta, d.rope_theta);
  EXPECT_EQ(c->model.rms_norm_eps, d.rms_norm_eps);
  EXPECT_TRUE(c->model.init_from.empty());
}

TEST(ConfigTest, ZeroStagesAndDeepSpeedTuningKeys) {
  absl::StatusOr<Config> c = ParseConfig(WithBatch(R"("train_batch_size": 8,
      "zero_optimization": {"stage": 3, "overlap_comm": false, "reduce_bucket_size": 5e8,
                            "stage3_prefetch_bucket_size": 1000,
                            "stage3_max_live_parameters": 1e9})"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->zero_stage, 3);
  EXPECT_FALSE(c->zero.overlap_comm);
  EXPECT_EQ(c->zero.reduce_bucket_size, 500'000'000);
  EXPECT_EQ(c->zero.stage3_prefetch_bucket_size, 1000);
  EXPECT_EQ(c->zero.stage3_max_live_parameters, 1'000'000'000);
  absl::StatusOr<Config> two = ParseConfig(WithBatch(R"("train_batch_size": 8,
      "zero_optimization": {"stage": 2})"));
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->zero_stage, 2);
  EXPECT_TRUE(two->zero.overlap_comm);
  EXPECT_FALSE(two->zero.offload_optimizer);
  absl::StatusOr<Config> offload = ParseConfig(WithBatch(R"("train_batch_size": 8,
      "zero_optimization": {"offload_optimizer": {"device": "cpu", "pin_memory": false}})"));
  ASSERT_TRUE(offload.ok()) << offload.status();
  EXPECT_TRUE(offload->zero.offload_optimizer);
  EXPECT_FALSE(offload->zero.pin_memory);
  EXPECT_FALSE(offload->zero.offload_delayed_update);
  EXPECT_EQ(offload->zero.delayed_update_warmup, 40);
  absl::StatusOr<Config> delayed = ParseConfig(WithBatch(R"("train_batch_size": 8,
      "zero_optimization": {"offload_optimizer": {"device": "cpu", "delayed_update": true,
                                                  "delayed_update_warmup": 5}})"));
  ASSERT_TRUE(delayed.ok()) << delayed.status();
  EXPECT_TRUE(delayed->zero.offload_delayed_update);
  EXPECT_EQ(delayed->zero.delayed_update_warmup, 5);
  EXPECT_FALSE(offload->zero.optimizer_nvme);
  EXPECT_EQ(offload->aio.queue_depth, 32);
  EXPECT_FALSE(offload->zero.offload_ratio_auto);
  absl::StatusOr<Config> split = ParseConfig(WithBatch(R"("train_batch_size": 8,
      "zero_optimization": {"offload_optimizer": {"device": "auto", "ratio": "auto"}})"));
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_TRUE(split->zero.offload_optimizer_auto);
  EXPECT_TRUE(split->zero.offload_ratio_auto);
  EXPECT_EQ(split->zero.offload_ratio, 1.0);  // until the trainer's memory check chooses
  absl::StatusOr<Config> nvme = ParseConfig(WithBatch(R"("train_batch_size": 8,
      "zero_optimization": {"offload_optimizer": {"device": "nvme", "nvme_path": "/local_nvme",
                                                  "buffer_count": 5, "buffer_size": 1e8}},
      "aio": {"block_size": 2097152, "queue_depth": 64, "thread_count": 1,
              "single_submit": false, "overlap_events": true})"));
  ASSERT_TRUE(nvme.ok()) << nvme.status();
  EXPECT_TRUE(nvme->zero.offload_optimizer);
  EXPECT_TRUE(nvme->zero.optimizer_nvme);
  EXPECT_EQ(nvme->zero.nvme_path, "/local_nvme");
  EXPECT_EQ(nvme->zero.nvme_buffer_count, 5);
  EXPECT_EQ(nvme->zero.nvme_buffer_size, 100'000'000);
  EXPECT_EQ(nvme->aio.block_size, 2 << 20);
  EXPECT_EQ(nvme->aio.queue_depth, 64);
  // DeepSpeed's ZeRO-3 offload config (ZeRO-Infinity with the CPU as the last tier).
  absl::StatusOr<Config> params = ParseConfig(WithBatch(R"("train_batch_size": 8,
      "zero_optimization": {"stage": 3,
                            "offload_optimizer": {"device": "cpu", "pin_memory": true},
                            "offload_param": {"device": "cpu", "pin_memory": true}})"));
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_TRUE(params->zero.offload_param);
  EXPECT_TRUE(params->zero.offload_optimizer);
  EXPECT_FALSE(nvme->zero.offload_param);
}

TEST(ConfigTest, MixedPrecisionKeys) {
  absl::StatusOr<Config> fp32 = ParseConfig(WithBatch(R"("train_batch_size": 8)"));
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  EXPECT_EQ(fp32->precision.mode, PrecisionConfig::Mode::kFp32);
  absl::StatusOr<Config> bf16 =
      ParseConfig(WithBatch(R"("train_batch_size": 8, "bf16": {"enabled": true})"));
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  EXPECT_EQ(bf16->precision.mode, PrecisionConfig::Mode::kBf16);
  absl::StatusOr<Config> fp16 = ParseConfig(WithBatch(R"("train_batch_size": 8,
      "bf16": {"enabled": false},
      "fp16": {"enabled": true, "initial_scale_power": 12, "loss_scale_window": 50,
               "hysteresis": 3, "min_loss_scale": 0.5})"));
  ASSERT_TRUE(fp16.ok()) << fp16.status();
  EXPECT_EQ(fp16->precision.mode, PrecisionConfig::Mode::kFp16);
  EXPECT_EQ(fp16->precision.loss_scale, 0.0);
  EXPECT_EQ(fp16->precision.initial_scale_power, 12);
  EXPECT_EQ(fp16->precision.loss_scale_window, 50);
  EXPECT_EQ(fp16->precision.hysteresis, 3);
  EXPECT_EQ(fp16->precision.min_loss_scale, 0.5);
  absl::StatusOr<Config> defaults =
      ParseConfig(WithBatch(R"("train_batch_size": 8, "fp16": {"enabled": true})"));
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  const PrecisionConfig d;  // DeepSpeed's defaults
  EXPECT_EQ(defaults->precision.initial_scale_power, 16);
  EXPECT_EQ(defaults->precision.loss_scale_window, 1000);
  EXPECT_EQ(defaults->precision.hysteresis, 2);
  EXPECT_EQ(defaults->precision.min_loss_scale, d.min_loss_scale);
}

TEST(ConfigTest, SchedulerDefaults) {
  absl::StatusOr<Config> c =
      ParseConfig(WithBatch(R"("train_batch_size": 8, "scheduler": {"type": "WarmupLR"})"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->scheduler.type, SchedulerConfig::Type::kWarmupLR);
  EXPECT_EQ(c->scheduler.warmup_min_lr, 0.0);  // DeepSpeed's defaults
  EXPECT_EQ(c->scheduler.warmup_max_lr, 0.001);
  EXPECT_EQ(c->scheduler.warmup_num_steps, 1000);
  EXPECT_TRUE(c->scheduler.warmup_log);

  c = ParseConfig(WithBatch(R"("train_batch_size": 8,
      "scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 5000}})"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->scheduler.type, SchedulerConfig::Type::kWarmupCosineLR);
  EXPECT_EQ(c->scheduler.total_num_steps, 5000);
  EXPECT_EQ(c->scheduler.warmup_num_steps, 1000);
  EXPECT_EQ(c->scheduler.warmup_min_ratio, 0.0);
  EXPECT_EQ(c->scheduler.cos_min_ratio, 0.0001);
  EXPECT_FALSE(c->scheduler.warmup_log);
}

struct BatchCase {
  std::string keys;
  int world_size;
  int64_t train, micro, accum;
};

TEST(ConfigTest, BatchSizeRules) {
  const std::vector<BatchCase> cases = {
      {R"("train_batch_size": 8)", 1, 8, 8, 1},
      {R"("train_batch_size": 8)", 2, 8, 4, 1},
      {R"("train_micro_batch_size_per_gpu": 3)", 1, 3, 3, 1},
      {R"("train_micro_batch_size_per_gpu": 3)", 2, 6, 3, 1},
      {R"("train_batch_size": 24, "train_micro_batch_size_per_gpu": 3)", 1, 24, 3, 8},
      {R"("train_batch_size": 24, "train_micro_batch_size_per_gpu": 3)", 2, 24, 3, 4},
      {R"("train_batch_size": 24, "gradient_accumulation_steps": 4)", 1, 24, 6, 4},
      {R"("train_batch_size": 24, "gradient_accumulation_steps": 4)", 2, 24, 3, 4},
      {R"("train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 5)", 1, 10, 2, 5},
      {R"("train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 5)", 2, 20, 2, 5},
      {R"("train_batch_size": 20, "train_micro_batch_size_per_gpu": 2,
          "gradient_accumulation_steps": 5)",
       2, 20, 2, 5},
      {R"("train_batch_size": 10, "train_micro_batch_size_per_gpu": 2,
          "gradient_accumulation_steps": 5)",
       1, 10, 2, 5},
  };
  for (const BatchCase& bc : cases) {
    SCOPED_TRACE(bc.keys + " world_size=" + std::to_string(bc.world_size));
    absl::StatusOr<Config> c = ParseConfig(WithBatch(bc.keys), bc.world_size);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->train_batch_size, bc.train);
    EXPECT_EQ(c->train_micro_batch_size_per_gpu, bc.micro);
    EXPECT_EQ(c->gradient_accumulation_steps, bc.accum);
  }
}

TEST(ConfigTest, NotYetBuiltFeaturesAcceptTheirOffValues) {
  absl::StatusOr<Config> c = ParseConfig(WithBatch(R"("train_batch_size": 8,
      "bf16": {"enabled": false},
      "fp16": {"enabled": false, "loss_scale": 0, "initial_scale_power": 16,
               "loss_scale_window": 1000, "hysteresis": 2, "min_loss_scale": 1},
      "zero_optimization": {"stage": 0, "offload_optimizer": {"device": "none"},
                            "offload_param": null},
      "activation_checkpointing": {"enabled": false, "partition_activations": false,
          "cpu_checkpointing": false, "contiguous_memory_optimization": false,
          "number_checkpoints": null, "synchronize_checkpoint_boundary": false,
          "profile": null},
      "wall_clock_breakdown": false)"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->activation_checkpointing);
}

TEST(ConfigTest, EvalNeedsValidationDataAndAcceptsIt) {
  absl::StatusOr<Config> c = ParseConfig(R"({"train_batch_size": 8,
      "model": {"n_layer": 1, "n_head": 1, "d_model": 4, "seq_len": 8, "vocab_size": 2},
      "data": {"synthetic": {"seed": 18446744073709551615, "train_tokens": 100,
                             "val_tokens": 50}},
      "trainer": {"steps": 1, "eval_interval": 1, "seed": 0}})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data.synthetic_config.seed, 18446744073709551615ull);
  EXPECT_EQ(c->data.synthetic_config.val_tokens, 50);
  EXPECT_EQ(c->trainer.eval_interval, 1);
  EXPECT_EQ(c->trainer.seed, 0u);
}

TEST(ConfigTest, CanonicalJsonIsSortedAndIgnoresLayout) {
  absl::StatusOr<Config> a = ParseConfig(WithBatch(R"("train_batch_size": 8)"));
  absl::StatusOr<Config> b = ParseConfig(R"({"trainer":{"steps":10},
      "data": {"synthetic": {"train_tokens": 1000}},
      "model": {"vocab_size": 32, "seq_len": 16, "d_model": 8, "n_head": 2, "n_layer": 2},
      "train_batch_size": 8})");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->canonical_json, b->canonical_json);
  EXPECT_EQ(a->canonical_json,
            R"({"data":{"synthetic":{"train_tokens":1000}},"model":{"d_model":8,"n_head":2,)"
            R"("n_layer":2,"seq_len":16,"vocab_size":32},"train_batch_size":8,)"
            R"("trainer":{"steps":10}})");
}

// Every ```json block in docs/config.md is a valid config.
TEST(ConfigTest, DocsExamplesParse) {
  // ctest sets SPILLWAY_SOURCE_DIR; run by hand, fall back to this file's location.
  const char* root = std::getenv("SPILLWAY_SOURCE_DIR");
  const std::string path =
      root != nullptr
          ? std::string(root) + "/docs/config.md"
          : (std::filesystem::path(__FILE__).parent_path() / "../../docs/config.md").string();
  std::ifstream in(path);
  ASSERT_TRUE(in) << "cannot open " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  int examples = 0;
  for (size_t pos = doc.find("```json\n"); pos != std::string::npos;
       pos = doc.find("```json\n", pos)) {
    pos += 8;
    const size_t end = doc.find("```", pos);
    ASSERT_NE(end, std::string::npos);
    const std::string example = doc.substr(pos, end - pos);
    absl::StatusOr<Config> c = ParseConfig(example);
    EXPECT_TRUE(c.ok()) << c.status() << "\nin example:\n" << example;
    ++examples;
    pos = end + 3;
  }
  EXPECT_GE(examples, 2);
}

TEST(ConfigTest, LoadConfigReadsFile) {
  const std::string path = testing::TempDir() + "/config_test_full.json";
  std::ofstream(path) << kFullConfig;
  absl::StatusOr<Config> c = LoadConfig(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model.d_model, 128);
}

TEST(ConfigTest, LoadConfigMissingFileIsNotFoundNamingThePath) {
  const std::string path = testing::TempDir() + "/no_such_config.json";
  absl::StatusOr<Config> c = LoadConfig(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(c.status().message().find("cannot read config file " + path), std::string::npos)
      << c.status();
}

TEST(ConfigTest, LoadConfigDirectoryIsAnError) {
  absl::StatusOr<Config> c = LoadConfig(testing::TempDir());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(testing::TempDir()), std::string::npos) << c.status();
}

TEST(ConfigTest, LoadConfigPrefixesErrorsWithThePath) {
  const std::string path = testing::TempDir() + "/config_test_bad.json";
  std::ofstream(path) << WithBatch(R"("train_batch_size": 8, "steps_per_print": 0)");
  absl::StatusOr<Config> c = LoadConfig(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.status().message().find("config file " + path + ": steps_per_print: "), 0u)
      << c.status();

  std::ofstream(path) << "{\n  \"train_batch_size\": 8,\n  oops\n}";
  c = LoadConfig(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find(path), std::string::npos) << c.status();
  EXPECT_NE(c.status().message().find("line 3"), std::string::npos) << c.status();
}

}  // namespace
}  // namespace spillway

namespace spillway {
namespace {

// The pipeline's micro-batches are the accumulation steps, and the batch spans the
// data-parallel width world / stages.
TEST(ConfigTest, PipelineResolvesBatchOverDataParallelRanks) {
  absl::StatusOr<Config> c = ParseConfig(WithBatch(R"("train_micro_batch_size_per_gpu": 2,
                   "pipeline": {"stages": 2, "micro_batches": 4, "schedule": "gpipe",
                                "partition": "balanced"})"),
                                         4);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->pipeline.stages, 2);
  EXPECT_EQ(c->pipeline.schedule, "gpipe");
  EXPECT_EQ(c->pipeline.partition, "balanced");
  EXPECT_EQ(c->gradient_accumulation_steps, 4);
  EXPECT_EQ(c->train_batch_size, 2 * 4 * 2);

  absl::StatusOr<Config> automatic = ParseConfig(
      WithBatch(R"("train_batch_size": 8, "pipeline": {"stages": "auto", "micro_batches": 4})"), 4);
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_EQ(automatic->pipeline.stages, 4);
  EXPECT_EQ(automatic->pipeline.schedule, "1f1b");
  EXPECT_EQ(automatic->pipeline.partition, "uniform");
  EXPECT_EQ(automatic->gradient_accumulation_steps, 4);
  EXPECT_EQ(automatic->train_micro_batch_size_per_gpu, 2);
}

}  // namespace
}  // namespace spillway
