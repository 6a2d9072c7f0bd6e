// The training configuration: one JSON file, DeepSpeed's key names where the concept is the
// same, plus spillway's own sections (model, data, trainer, checkpoint, log).
// docs/config.md documents every key; ParseConfig enforces it.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace spillway {

struct ModelConfig {
  std::string type = "gpt2";  // "gpt2" or "llama" (engine/model/llama.h)
  int n_layer = 0;
  int n_head = 0;
  int d_model = 0;     // divisible by n_head
  int seq_len = 0;     // T: tokens per sample (also the position-embedding table size)
  int vocab_size = 0;  // V
  double init_std = 0.02;
  // Llama only (Hugging Face LlamaConfig's names in the comments).
  int n_kv_head = 0;   // num_key_value_heads: divides n_head; 0 means n_head (no grouping)
  int ffn_hidden = 0;  // intermediate_size: the SwiGLU width; 0 means 4 * d_model
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-5;
  // Start from these parameters instead of the seeded initialisation: a Hugging Face folder
  // (config.json + safetensors) or a spillway checkpoint (root or step directory). Not part of
  // the model's shape. Empty: initialise from trainer.seed.
  std::string init_from;
};

struct OptimizerConfig {  // "optimizer": {"type": "AdamW", "params": {...}}
  std::string type = "AdamW";
  double lr = 3e-4;
  double beta1 = 0.9;  // params.betas[0]
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
  // params.state_dtype / params.master_dtype (spillway's keys; the offloaded optimizer only):
  // Adam m and v stored as fp32, bf16 or block-wise 8-bit; master parameters as fp32, or bf16
  // with a bf16 Kahan compensation term (kernels/cpu/compact_adam.h).
  enum class StateDtype { kFp32, kBf16, kInt8 };
  StateDtype state_dtype = StateDtype::kFp32;
  bool bf16_master = false;
  bool compact() const { return state_dtype != StateDtype::kFp32 || bf16_master; }
};

struct SchedulerConfig {  // "scheduler": {"type": ..., "params": {...}}; absent: constant lr
  enum class Type { kConstant, kWarmupLR, kWarmupCosineLR };
  Type type = Type::kConstant;
  int64_t warmup_num_steps = 0;
  // WarmupLR: lr rises from warmup_min_lr to warmup_max_lr, then stays there.
  double warmup_min_lr = 0.0;
  double warmup_max_lr = 0.0;
  bool warmup_log = false;  // warmup_type: "log" (true) or "linear" (false)
  // WarmupCosineLR: factor on optimizer lr rises from warmup_min_ratio to 1 over the warmup,
  // then follows a cosine down to cos_min_ratio at total_num_steps (and stays there).
  int64_t total_num_steps = 0;
  double warmup_min_ratio = 0.0;
  double cos_min_ratio = 0.0001;
};

struct SyntheticDataConfig {
  uint64_t seed = 1;
  int64_t train_tokens = 0;
  int64_t val_tokens = 0;
};

struct DataConfig {
  // Either token files ...
  std::string train_path;
  std::string val_path;  // optional
  // ... or the built-in synthetic language.
  bool synthetic = false;
  SyntheticDataConfig synthetic_config;
};

struct TrainerConfig {
  int64_t steps = 0;  // optimizer steps to train
  uint64_t seed = 1234;
  std::string backend = "cpu";
  int64_t eval_interval = 0;  // steps between evals; 0: no periodic eval
  int64_t eval_batches = 8;   // micro-batches per eval
  // Several ranks: seconds without any collective finishing before a rank gives up and ends
  // the job (another rank is stuck); 0: wait forever.
  double comm_timeout_s = 600.0;
  // The GEMMs on bf16 operands time several algorithms and keep the fastest (Ops::
  // SetMatmulAutotune): faster, but not bitwise repeatable across processes.
  bool matmul_autotune = true;
  // Where a step is one micro-batch on one GPU with everything in its memory, its forward and
  // backward are recorded once (Ops::BeginCapture) and replayed as one launch.
  bool cuda_graphs = true;
};

struct CheckpointConfig {
  std::string dir;        // empty: no checkpoints
  int64_t interval = 0;   // steps between saves; 0: only at the end
  int64_t keep_last = 0;  // keep this many newest checkpoints; 0: keep all
};

struct LogConfig {
  std::string metrics_path;  // JSONL, one line per printed step and per eval; empty: none
};

// zero_optimization's tuning keys, with DeepSpeed's names and defaults (counts are elements).
struct ZeroConfig {
  // offload_optimizer.device = "cpu": AdamW state in CPU memory, AdamW on the CPU.
  bool offload_optimizer = false;
  bool pin_memory = true;  // offload_optimizer.pin_memory (GPU backends)
  // offload_optimizer.delayed_update: ZeRO-Offload's one-step-delayed parameter update.
  bool offload_delayed_update = false;
  // offload_optimizer.ratio: the share of the elements whose optimizer runs on the CPU, the last
  // Units' (partitioner/offload_split.h); 1: every Unit.
  double offload_ratio = 1.0;
  // offload_optimizer.ratio = "auto": the trainer's memory check sets offload_ratio to the
  // smallest share on a grid of 0.05 with which the plan fits (the most optimizer state that the
  // GPU holds; engine/plan/fit.h), before anything is allocated.
  bool offload_ratio_auto = false;
  int64_t delayed_update_warmup = 40;  // offload_optimizer.delayed_update_warmup (steps)
  // offload_optimizer.staging_buffer_count / staging_buffer_size (elements): the pinned staging
  // pool for pageable offloaded state (pin_memory false on a GPU backend).
  int64_t staging_buffer_count = 4;
  int64_t staging_buffer_size = 10'000'000;
  // offload_optimizer.device = "nvme" (offload_optimizer is set too): the fp32 master
  // parameters and Adam m and v live in a preallocated file per rank under nvme_path, streamed
  // through the CPU AdamW in tiles of buffer_size bytes per array, buffer_count tiles in flight.
  bool optimizer_nvme = false;
  // offload_optimizer.nvme_ratio in (0, 1], with "nvme" and compact state: the last Units
  // holding at least this share of the elements keep their state on NVMe, the first Units in
  // CPU memory (engine/train/compact_adamw.h), to spread a model's state over both tiers.
  double nvme_ratio = 1.0;
  // offload_optimizer.device = "auto": the trainer's memory check picks the cheapest placement
  // that fits (none, then cpu, then nvme when nvme_path is given; engine/plan/fit.h) and sets
  // offload_optimizer / optimizer_nvme before anything is allocated.
  bool offload_optimizer_auto = false;
  // offload_param.device = "cpu" (ZeRO stage 3, with offload_optimizer "cpu"): each Unit's
  // parameter shard, which is also AdamW's master, and its gradient shard live in CPU memory;
  // the backend holds only the residency's working buffers (docs/offload.md).
  bool offload_param = false;
  // offload_param.device = "nvme" (offload_param is set too; needs offload_optimizer "nvme"
  // with an fp32 master): the parameter shards are the optimizer's fp32 master in its NVMe file,
  // read into pinned staging before each gather; host memory keeps the gradient shards.
  bool param_nvme = false;
  // offload_param.max_in_cpu (DeepSpeed's key; with "nvme" only): elements of parameter shards
  // read from NVMe that host memory keeps for their next use in the step, whole Units at a time
  // (offload/nvme_shard_reader.h). Default 0, off: DeepSpeed's 1e9 would take pinned memory that
  // a plan sized to the machine may not have.
  int64_t param_max_in_cpu = 0;
  // offload_param.device = "auto": the trainer's memory check decides offload_param along with
  // an "auto" offload_optimizer (the cheapest placement that fits) before allocating.
  bool offload_param_auto = false;
  std::string nvme_path;
  int64_t nvme_buffer_count = 4;
  int64_t nvme_buffer_size = 100'000'000;
  bool overlap_comm = true;
  int64_t reduce_bucket_size = 500'000'000;
  int64_t stage3_prefetch_bucket_size = 50'000'000;
  int64_t stage3_max_live_parameters = 1'000'000'000;
};

// "pipeline": the Units split into `stages` contiguous ranges on different ranks
// (docs/pipeline.md). world_size = stages * dp; rank r is stage r / dp, data-parallel index
// r % dp.
struct PipeMareConfig {                // "pipeline.pipemare" (docs/pipeline.md has the rules)
  bool lr_rescheduling = true;         // T1: stage i's lr starts at lr / tau_i ...
  int64_t lr_anneal_steps = 100;       // K: ... and reaches lr after K steps
  bool discrepancy_correction = true;  // T2: backward with extrapolated weights
  double discrepancy_decay = 0.1;      // D: the EMA's decay over one delay, in (0, 1)
  int64_t warmup_steps = 0;            // W: synchronous (1F1B) steps before going asynchronous
  // Tied embedding: the first stage's look-ahead steps its copy with its own lookup gradient at
  // this multiple of its learning rate (0: no look-ahead; docs/pipeline.md, item 7).
  double tied_lookahead = 3.0;
};

struct PipelineConfig {
  int stages = 1;                     // 1: no pipeline; "auto" resolves to world_size
  std::string partition = "uniform";  // "uniform" (by Units) or "balanced" (by estimated cost)
  std::string schedule = "1f1b";      // "gpipe", "1f1b" or "pipemare" (asynchronous)
  PipeMareConfig pipemare;
};

// "aio": the NVMe engine's requests (DeepSpeed's keys; offload/io_engine.h IoOptions).
struct AioConfig {
  int64_t block_size = 1 << 20;  // bytes per request chunk, 1-8 MiB, a multiple of 4 KiB
  int64_t queue_depth = 32;      // chunks in flight
  bool force_pread = false;      // aio.engine = "pread" (spillway's key): skip io_uring
};

// "bf16" / "fp16" (DeepSpeed's sections): the precision of the matmuls' operands. Master
// weights, gradients and AdamW state stay fp32 whichever is chosen (kernels::Ops::
// SetMatmulPrecision). fp16 scales the loss (statically, or dynamically with DeepSpeed's rule)
// and skips steps whose gradients overflow.
struct PrecisionConfig {
  enum class Mode { kFp32, kBf16, kFp16 };
  Mode mode = Mode::kFp32;
  double loss_scale = 0.0;  // fp16.loss_scale: a static scale; 0: dynamic
  int initial_scale_power = 16;
  int64_t loss_scale_window = 1000;
  int64_t hysteresis = 2;
  double min_loss_scale = 1.0;
};

struct Config {
  // Batch sizes, resolved: train_batch_size = micro * accumulation * (world_size / stages);
  // with a pipeline the accumulation steps are its micro-batches per step.
  int64_t train_batch_size = 0;
  int64_t train_micro_batch_size_per_gpu = 0;
  int64_t gradient_accumulation_steps = 0;
  double gradient_clipping = 0.0;  // max global L2 norm; 0: no clipping
  int64_t steps_per_print = 10;
  bool activation_checkpointing = false;  // activation_checkpointing.enabled
  // activation_checkpointing.cpu_checkpointing: the kept block inputs in CPU memory.
  bool cpu_checkpointing = false;
  // zero_optimization.stage: 0 = plain data parallel (gradients all-reduced), 1 = AdamW state
  // sharded across ranks (each rank updates its shard, then parameters are all-gathered),
  // 2 = gradients too (reduce-scattered into the owned shards), 3 = parameters too (gathered
  // per Unit when used, prefetched, released after).
  int zero_stage = 0;
  ZeroConfig zero;
  PipelineConfig pipeline;
  AioConfig aio;
  PrecisionConfig precision;  // bf16, fp16

  ModelConfig model;
  OptimizerConfig optimizer;
  SchedulerConfig scheduler;
  DataConfig data;
  TrainerConfig trainer;
  CheckpointConfig checkpoint;
  LogConfig log;

  std::string canonical_json;  // the parsed JSON, re-serialised (sorted keys): for hashing
};

// Parses and validates a config. Any unknown key, wrong type, out-of-range value, batch-size
// inconsistency, or key for a feature not built yet is an InvalidArgument error whose message
// names the key path (e.g. "zero_optimization.stage") and what is allowed.
absl::StatusOr<Config> ParseConfig(absl::string_view json_text, int world_size = 1);

// Reads `path` and parses it; errors name the path.
absl::StatusOr<Config> LoadConfig(const std::string& path, int world_size = 1);

}  // namespace spillway
