// The planner's bytes against what the model and the ZeRO residency actually allocate (their
// Buffers summed by kind and tier), for GPT-2 and Llama at stages 0-3, 1, 2 and 4 ranks (every
// rank's share), with and without optimizer offload and activation checkpointing: equal to the
// byte, on the CPU backend (CI) and the CUDA backend (label gpu; pinned offload there).
#include "engine/plan/memory_plan.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/model/gpt2_layout.h"
#include "engine/model/model.h"
#include "engine/plan/plan_config.h"
#include "kernels/backend.h"
#include "offload/device_memory.h"
#include "offload/tile_stream.h"
#include "partitioner/unit_residency.h"

namespace spillway {
namespace {

struct Case {
  std::string type;
  int world, stage;
  bool offload, checkpointing;
  bool offload_params = false;
  double ratio = 1.0;  // offload_optimizer.ratio
  bool nvme = false;   // optimizer state, and offloaded parameters, on NVMe
  int vocab = 101;     // 2000: Unit 0 (the embedding) is larger than any other Unit
  bool bf16 = false;   // bf16 precision: GPT-2 keeps some activations in bf16
};

Config MakeConfig(const Case& c) {
  Config config;
  config.model.type = c.type;
  config.model.n_layer = 3;
  config.model.n_head = 4;
  config.model.d_model = 32;
  config.model.seq_len = 16;
  config.model.vocab_size = c.vocab;
  if (c.type == "llama") config.model.n_kv_head = 2;
  config.train_micro_batch_size_per_gpu = 2;
  config.zero_stage = c.stage;
  config.zero.offload_optimizer = c.offload;
  config.zero.offload_param = c.offload_params;
  config.zero.optimizer_nvme = c.nvme;
  config.zero.param_nvme = c.nvme && c.offload_params;
  if (c.nvme) config.zero.nvme_path = "/tmp";
  config.zero.offload_ratio = c.ratio;
  config.activation_checkpointing = c.checkpointing;
  if (c.bf16) config.precision.mode = PrecisionConfig::Mode::kBf16;
  // Small enough that the stage-3 prefetch depth depends on it.
  config.zero.stage3_prefetch_bucket_size = 30'000;
  return config;
}

// Gives config GPT-2's vocabulary (50257) and the other shape fields.
void SetShape(Config& config, int layers, int heads, int d_model, int seq_len, int batch) {
  config.model.n_layer = layers;
  config.model.n_head = heads;
  config.model.d_model = d_model;
  config.model.seq_len = seq_len;
  config.model.vocab_size = 50257;
  config.train_micro_batch_size_per_gpu = batch;
}

// The bytes of the plan's items named `what` for config on one rank, with the backend and
// precision set as given (config keeps them).
size_t PlannedItemBytes(Config& config, const char* backend, PrecisionConfig::Mode mode,
                        const std::string& what) {
  config.trainer.backend = backend;
  config.precision.mode = mode;
  const absl::StatusOr<PlanInput> input = PlanInputFromConfig(config, 1, 1);
  EXPECT_TRUE(input.ok()) << input.status();
  if (!input.ok()) return 0;
  const absl::StatusOr<MemoryPlan> plan = PlanMemory(*input);
  EXPECT_TRUE(plan.ok()) << plan.status();
  if (!plan.ok()) return 0;
  size_t bytes = 0;
  for (const MemoryItem& item : plan->items) {
    if (item.what == what) bytes += item.bytes;
  }
  return bytes;
}

// Bytes the model and the residency allocated on one rank, by (category, tier).
struct Allocated {
  std::map<std::pair<Category, Tier>, size_t> bytes;
  size_t buffers = 0;
  size_t param_staging = 0;  // parameters on NVMe: NvmeShardReader's staging for the residency
  void Add(Category c, const Buffer& b) {
    bytes[{c, b.tier()}] += b.bytes();
    buffers += b.bytes() > 0;
  }
};

Allocated AllocateRank(const Config& config, int world, int rank, kernels::Ops& ops) {
  ShardingPlan sharding;
  sharding.world_size = world;
  sharding.rank = rank;
  sharding.stage = world > 1 || config.zero.offload_param ? config.zero_stage : 0;
  sharding.offload_optimizer = config.zero.offload_optimizer;
  sharding.offload_params = config.zero.offload_param;
  sharding.params_in_master = config.zero.param_nvme;
  sharding.external_optimizer_state = config.zero.optimizer_nvme;
  sharding.offload_ratio = config.zero.offload_ratio;
  sharding.offload_tier = ops.memory_tier() == Tier::kDevice ? Tier::kPinnedHost : Tier::kHost;
  // As the trainer: the precision first, which sizes GPT-2's bf16 activations.
  ops.SetMatmulPrecision(config.precision.mode == PrecisionConfig::Mode::kBf16
                             ? kernels::MatmulPrecision::kBf16
                             : kernels::MatmulPrecision::kFp32);
  auto model = CreateModel(config.model, static_cast<int>(config.train_micro_batch_size_per_gpu),
                           config.activation_checkpointing, &ops, sharding);
  ops.SetMatmulPrecision(kernels::MatmulPrecision::kFp32);
  EXPECT_TRUE(model.ok()) << model.status();
  Allocated a;
  for (const UnitState& u : (*model)->units()) {
    a.Add(Category::kParameters, u.params);
    a.Add(Category::kGradients, u.grads);
    for (const Buffer* b : {&u.exp_avg, &u.exp_avg_sq, &u.offload_master, &u.offload_grads}) {
      a.Add(Category::kOptimizer, *b);
    }
    // The NVMe file's fp32 master, m and v arrays (NvmeOptimizerState, before 4 KiB padding).
    if (u.optimizer_state_external()) {
      a.bytes[{Category::kOptimizer, Tier::kNvme}] += 3 * u.optimizer_numel() * sizeof(float);
    }
  }
  a.bytes[{Category::kActivations, ops.memory_tier()}] += (*model)->activation_bytes();
  a.bytes[{Category::kParameters, ops.memory_tier()}] += (*model)->weight_copy_bytes();
  a.buffers += 5;  // the activation buffers (engine/model/gpt2.cc, llama.cc)
  std::unique_ptr<Communicator> comm = Communicator::Single();
  ResidencyOptions options;
  options.prefetch_elements = static_cast<size_t>(config.zero.stage3_prefetch_bucket_size);
  options.max_live_elements = static_cast<size_t>(config.zero.stage3_max_live_parameters);
  auto residency = UnitResidency::Create((*model)->units(), ops, *comm, options);
  EXPECT_TRUE(residency.ok()) << residency.status();
  a.bytes[{Category::kWorking, ops.memory_tier()}] += (*residency)->working_bytes();
  a.buffers += 12;  // at most this many working buffers for these shapes
  if (config.zero.param_nvme) {
    for (size_t numel : (*residency)->param_slot_shard_numels()) {
      a.param_staging += NvmeBytesForFloats(numel);
    }
  }
  return a;
}

class MemoryPlanBackendTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "cuda" && kernels::GpuCount() == 0) {
      GTEST_SKIP() << "no GPU here (the CUDA case runs on the GPU machine)";
    }
    auto ops = kernels::CreateOps(GetParam());
    ASSERT_TRUE(ops.ok()) << ops.status();
    ops_ = std::move(ops).value();
  }
  std::unique_ptr<kernels::Ops> ops_;
};

TEST_P(MemoryPlanBackendTest, EqualsWhatTheModelAllocates) {
  std::vector<Case> cases;
  for (const char* type : {"gpt2", "llama"}) {
    for (int world : {1, 2, 4}) {
      for (int stage = 0; stage <= 3; ++stage) {
        if (world == 1 && stage > 0) continue;  // one rank trains as stage 0
        cases.push_back({type, world, stage, false, false});
        cases.push_back({type, world, stage, true, stage % 2 == 0});
        cases.push_back({type, world, stage, false, true});
      }
      for (const bool checkpointing : {false, true}) {
        cases.push_back({type, world, 3, true, checkpointing, /*offload_params=*/true});
      }
      // The optimizer state on NVMe, with the parameters in CPU memory and on NVMe.
      cases.push_back({type, world, world > 1 ? 2 : 0, true, false, false, 1.0, true});
      for (const bool checkpointing : {false, true}) {
        cases.push_back({type, world, 3, true, checkpointing, true, 1.0, /*nvme=*/true});
      }
      for (int stage = 0; stage <= 3; stage += 3) {  // partial offload
        if (world > 1 || stage == 0) cases.push_back({type, world, stage, true, false, false, 0.5});
      }
      // Partial offload of parameters too: the first Units wholly in the backend, the last ones'
      // parameters in CPU memory or (state on NVMe) on NVMe.
      cases.push_back({type, world, 3, true, false, true, 0.5});
      cases.push_back({type, world, 3, true, true, true, 0.5, /*nvme=*/true});
      // bf16: GPT-2's matmul-only activations and qkv in half the bytes.
      // And GPT-2's bf16 weight copies where the parameters are whole (stages 0-2).
      for (const bool checkpointing : {false, true}) {
        Case bf16{type, world, world > 1 ? 3 : 0, false, checkpointing};
        bf16.bf16 = true;
        cases.push_back(bf16);
        Case whole{type, world, world > 1 ? 2 : 0, /*offload=*/checkpointing, checkpointing};
        whole.bf16 = true;
        cases.push_back(whole);
      }
      // The residency's ring buffers hold Units 1.. only, however large Unit 0 is.
      for (int stage = 2; stage <= 3 && world > 1; ++stage) {
        cases.push_back({type, world, stage, false, false, false, 1.0, false, /*vocab=*/2000});
      }
    }
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.type, " world ", c.world, " stage ", c.stage, " offload ",
                              c.offload, " checkpointing ", c.checkpointing, " offload_params ",
                              c.offload_params, " ratio ", c.ratio, " nvme ", c.nvme, " vocab ",
                              c.vocab, " bf16 ", c.bf16));
    Config config = MakeConfig(c);
    config.trainer.backend = GetParam();
    absl::StatusOr<PlanInput> input = PlanInputFromConfig(config, c.world, 1);
    ASSERT_TRUE(input.ok()) << input.status();
    absl::StatusOr<MemoryPlan> plan = PlanMemory(*input);
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_EQ(plan->compute_tier, ops_->memory_tier());
    for (int rank = 0; rank < c.world; ++rank) {
      Allocated a = AllocateRank(config, c.world, rank, *ops_);
      for (Category cat : {Category::kParameters, Category::kGradients, Category::kOptimizer,
                           Category::kActivations, Category::kWorking}) {
        for (Tier tier : {Tier::kDevice, Tier::kPinnedHost, Tier::kHost, Tier::kNvme}) {
          EXPECT_EQ(plan->Bytes(cat, tier), (a.bytes[{cat, tier}]))
              << CategoryName(cat) << " in " << TierName(tier) << ", rank " << rank;
        }
      }
      size_t planned_staging = 0;
      for (const MemoryItem& item : plan->items) {
        if (item.what == "NVMe parameter staging") planned_staging += item.bytes;
      }
      EXPECT_EQ(planned_staging, a.param_staging) << "rank " << rank;
    }
  }
}

// On a GPU: the device memory the model and residency take (cudaMemGetInfo before and after)
// is the planned bytes within the allocator's granularity, 2 MiB per buffer.
TEST_P(MemoryPlanBackendTest, GpuMemoryTakenMatchesThePlan) {
  if (GetParam() != "cuda") GTEST_SKIP() << "GPU memory only";
  Config config = MakeConfig({"gpt2", 2, 3, false, false});
  SetShape(config, /*layers=*/4, /*heads=*/8, /*d_model=*/512, /*seq_len=*/256, /*batch=*/4);
  config.trainer.backend = "cuda";
  absl::StatusOr<PlanInput> input = PlanInputFromConfig(config, 2, 1);
  ASSERT_TRUE(input.ok()) << input.status();
  absl::StatusOr<MemoryPlan> plan = PlanMemory(*input);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const size_t planned = plan->Bytes(Tier::kDevice) - plan->Bytes(Category::kPools, Tier::kDevice);
  absl::StatusOr<DeviceMemoryInfo> before = QueryDeviceMemory();
  ASSERT_TRUE(before.ok()) << before.status();
  ShardingPlan sharding{2, 0, 3};
  auto model = CreateModel(config.model, 4, false, ops_.get(), sharding);
  ASSERT_TRUE(model.ok()) << model.status();
  std::unique_ptr<Communicator> comm = Communicator::Single();
  ResidencyOptions options;
  options.prefetch_elements = static_cast<size_t>(config.zero.stage3_prefetch_bucket_size);
  auto residency = UnitResidency::Create((*model)->units(), *ops_, *comm, options);
  ASSERT_TRUE(residency.ok()) << residency.status();
  absl::StatusOr<DeviceMemoryInfo> after = QueryDeviceMemory();
  ASSERT_TRUE(after.ok()) << after.status();
  const double taken = static_cast<double>(before->free_bytes) - after->free_bytes;
  const double buffers = 4.0 * (*model)->num_units() + 5 + 12;
  EXPECT_NEAR(taken, static_cast<double>(planned), buffers * 2 * 1024 * 1024)
      << "planned " << planned << " bytes, cudaMemGetInfo says " << taken << " were taken";
}

INSTANTIATE_TEST_SUITE_P(Backends, MemoryPlanBackendTest, ::testing::Values("cpu", "cuda"),
                         [](const auto& info) { return info.param; });

// A GPU run at a 16-bit matmul precision plans the operand copies of its largest GEMM, the
// head's backward: at fp16 GPT-2 124M at B 16 rounds wte (50304 x 768), the logits gradient
// (16384 x 50304) and the final LayerNorm's output (16384 x 768): 1,750,794,240 bytes. At bf16
// GPT-2's GEMMs read its bf16 activations and gradients as they are: only the residual gradient
// (16384 x 768) is rounded, beside a slot for wte: 102,432,768 bytes. Llama keeps fp32
// activations: the head's copies at bf16 too.
TEST(MemoryPlanTest, SixteenBitGpuRunsPlanTheHeadsOperandCopies) {
  using kernels::MatmulPrecision;
  Config config = MakeConfig({"gpt2", 1, 0, false, false});
  SetShape(config, /*layers=*/12, /*heads=*/12, /*d_model=*/768, /*seq_len=*/1024, /*batch=*/16);
  constexpr size_t kHead = 1'750'794'240, kResidual = 102'432'768;
  EXPECT_EQ(PlannedGemmCopyBytes(config.model, 16, MatmulPrecision::kFp16), kHead);
  EXPECT_EQ(PlannedGemmCopyBytes(config.model, 16, MatmulPrecision::kBf16), kResidual);
  auto copies = [&](const char* backend, PrecisionConfig::Mode mode) {
    return PlannedItemBytes(config, backend, mode, "16-bit GEMM operand copies");
  };
  EXPECT_EQ(copies("cuda", PrecisionConfig::Mode::kBf16), kResidual);
  EXPECT_EQ(copies("cuda", PrecisionConfig::Mode::kFp16), kHead);
  EXPECT_EQ(copies("cuda", PrecisionConfig::Mode::kFp32), 0u);
  EXPECT_EQ(copies("cpu", PrecisionConfig::Mode::kBf16), 0u);  // host memory, not planned
  // Llama: the head (vocab 50257 -> 50304) is still the largest of its GEMMs.
  config.model.type = "llama";
  config.model.n_kv_head = 4;
  EXPECT_EQ(PlannedGemmCopyBytes(config.model, 16, MatmulPrecision::kBf16), kHead);
}

// The attention's scratch at GPT-2 124M, B 16, T 1024: the tensor-core kernels' row sums (16384 x
// 12 floats) and, at fp16 (fp32 activations), their 16-bit copies of qkv (16384 x 2304) and dout
// (16384 x 768); at bf16 GPT-2 hands them bf16 qkv and dout: the row sums alone, as the fp32
// kernels. Llama keeps fp32 activations: the copies at bf16 too. A GPU plan lists it; a CPU plan
// does not.
TEST(MemoryPlanTest, GpuRunsPlanTheAttentionScratch) {
  Config config = MakeConfig({"gpt2", 1, 0, false, false});
  SetShape(config, /*layers=*/12, /*heads=*/12, /*d_model=*/768, /*seq_len=*/1024, /*batch=*/16);
  const size_t sums = 16384 * 12 * 4, copies = sums + 16384 * 2304 * 2 + 16384 * 768 * 2;
  using kernels::MatmulPrecision;
  EXPECT_EQ(PlannedAttentionScratchBytes(config.model, 16, MatmulPrecision::kBf16), sums);
  EXPECT_EQ(PlannedAttentionScratchBytes(config.model, 16, MatmulPrecision::kFp16), copies);
  EXPECT_EQ(PlannedAttentionScratchBytes(config.model, 16, MatmulPrecision::kFp32), sums);
  auto planned = [&](const char* backend, PrecisionConfig::Mode mode) {
    return PlannedItemBytes(config, backend, mode, "attention scratch");
  };
  EXPECT_EQ(planned("cuda", PrecisionConfig::Mode::kBf16), sums);
  EXPECT_EQ(planned("cuda", PrecisionConfig::Mode::kFp16), copies);
  EXPECT_EQ(planned("cuda", PrecisionConfig::Mode::kFp32), sums);
  EXPECT_EQ(planned("cpu", PrecisionConfig::Mode::kBf16), 0u);
  config.model.type = "llama";
  config.model.n_kv_head = 4;  // qkv rows of (12 + 2 * 4) heads of 64
  EXPECT_EQ(PlannedAttentionScratchBytes(config.model, 16, MatmulPrecision::kBf16),
            sums + 16384 * 20 * 64 * 2 + 16384 * 768 * 2);
}

// At bf16, GPT-2 keeps ln1, qkv, the attention's output, ln2, the MLP's pre-activation and the
// GELU output of every block, and the final LayerNorm's output, in bf16: (1 + 3 + 1 + 1 + 4 + 4)
// N C / 2 floats fewer per block and N C / 2 in the head (GPT-2 124M's shape, N C a multiple of
// 16, so no rounding). Llama's are unchanged.
TEST(MemoryPlanTest, Bf16ActivationsHalveWhatOnlyMatmulsAndAttentionRead) {
  Config config;
  config.model.type = "gpt2";
  SetShape(config, 12, 12, 768, 1024, 16);
  const size_t NC = size_t{16} * 1024 * 768;
  for (const bool checkpointing : {false, true}) {
    const size_t blocks = checkpointing ? 1 : 12;
    const size_t fp32 = PlannedActivationBytes(config.model, 16, checkpointing);
    const size_t bf16 =
        PlannedActivationBytes(config.model, 16, checkpointing, kernels::MatmulPrecision::kBf16);
    // The backward's scratch keeps its gradients in bf16 too: d ln, d atty, dqkv and d fch
    // ((1 + 1 + 3 + 4) N C / 2 fewer), and holds the residual gradient's bf16 copy and column sums
    // (N C / 2 + C more). The logits are bf16 too (N Vp / 2 fewer).
    const size_t NVp = size_t{16} * 1024 * PaddedVocab(config.model.vocab_size);
    EXPECT_EQ(fp32 - bf16,
              sizeof(float) * ((blocks * 14 + 1 + 1 + 1 + 3 + 4 - 1) * NC / 2 + NVp / 2 - 768))
        << checkpointing;
    EXPECT_EQ(
        PlannedActivationBytes(config.model, 16, checkpointing, kernels::MatmulPrecision::kFp16),
        fp32);
  }
  config.model.type = "llama";
  config.model.n_kv_head = 4;
  EXPECT_EQ(PlannedActivationBytes(config.model, 16, false, kernels::MatmulPrecision::kBf16),
            PlannedActivationBytes(config.model, 16, false));
}

TEST(MemoryPlanTest, ParameterCountMatchesTheModel) {
  auto ops = kernels::CreateOps("cpu");
  ASSERT_TRUE(ops.ok()) << ops.status();
  for (const char* type : {"gpt2", "llama"}) {
    const Config config = MakeConfig({type, 1, 0, false, false});
    auto model = CreateModel(config.model, 2, false, ops->get());
    ASSERT_TRUE(model.ok()) << model.status();
    absl::StatusOr<PlanInput> input = PlanInputFromConfig(config, 1, 1);
    ASSERT_TRUE(input.ok()) << input.status();
    EXPECT_EQ(input->param_count, (*model)->param_count()) << type;
  }
}

// A pipelined config (4 ranks, 2 stages) is planned as the unpipelined one on its data-parallel
// width (2 ranks), and that bounds what a stage's model allocates for its Units.
TEST(MemoryPlanTest, PipelinePlannedAsUnpipelinedOnItsDataParallelWidth) {
  auto ops = kernels::CreateOps("cpu");
  ASSERT_TRUE(ops.ok()) << ops.status();
  for (const char* type : {"gpt2", "llama"}) {
    SCOPED_TRACE(type);
    Config config = MakeConfig({type, 2, 1, false, false});
    const absl::StatusOr<PlanInput> flat = PlanInputFromConfig(config, 2, 2);
    config.pipeline.stages = 2;
    const absl::StatusOr<PlanInput> piped = PlanInputFromConfig(config, 4, 4);
    ASSERT_TRUE(flat.ok() && piped.ok());
    const absl::StatusOr<MemoryPlan> flat_plan = PlanMemory(*flat);
    const absl::StatusOr<MemoryPlan> piped_plan = PlanMemory(*piped);
    ASSERT_TRUE(flat_plan.ok() && piped_plan.ok());
    for (Category cat : {Category::kParameters, Category::kGradients, Category::kOptimizer,
                         Category::kActivations, Category::kWorking}) {
      EXPECT_EQ(piped_plan->Bytes(cat, Tier::kHost), flat_plan->Bytes(cat, Tier::kHost))
          << CategoryName(cat);
    }
    // The first stage: the embed Unit and the first block, sharded over 2 ranks at stage 1.
    ShardingPlan sharding;
    sharding.world_size = 2;
    sharding.stage = 1;
    const std::vector<int> held = StageUnits(config.model, 0, 2);
    auto model = CreateModel(config.model, 2, false, ops->get(), sharding, false, held);
    ASSERT_TRUE(model.ok()) << model.status();
    size_t params = 0;
    for (const UnitState& unit : (*model)->units()) params += unit.params.bytes();
    EXPECT_GT(params, 0u);
    EXPECT_LE(params, piped_plan->Bytes(Category::kParameters, Tier::kHost));
  }
}

// A hand-made input: 3 Units of 1000, 4000 and 4000 elements, 4 ranks.
PlanInput Handmade() {
  PlanInput in;
  in.unit_numel = {1000, 4000, 4000};
  in.param_count = 9000;
  in.layers = 1;
  in.d_model = 10;
  in.seq_len = 5;
  in.micro_batch = 2;
  in.activation_bytes = 50'000;
  in.activation_bytes_checkpointed = 20'000;
  in.world_size = 4;
  in.stage = 1;
  in.gpu = true;
  return in;
}

TEST(MemoryPlanTest, BytesPerParameterForEachOption) {
  PlanInput in = Handmade();
  in.world_size = 1;
  in.stage = 0;
  // fp32, in the GPU: 4 + 4 + 8.
  absl::StatusOr<MemoryPlan> plan = PlanMemory(in);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->Bytes(Category::kParameters, Tier::kDevice), 9000u * 4);
  EXPECT_EQ(plan->Bytes(Category::kGradients, Tier::kDevice), 9000u * 4);
  EXPECT_EQ(plan->Bytes(Category::kOptimizer, Tier::kDevice), 9000u * 8);
  // bf16 with bf16 moments: 2 B parameters, fp32 master 4 + m, v 2 + 2.
  in.precision = Precision::kBf16;
  in.moments = MomentDtype::kBf16;
  plan = PlanMemory(in);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->Bytes(Category::kParameters, Tier::kDevice), 9000u * 2);
  EXPECT_EQ(plan->Bytes(Category::kOptimizer, Tier::kDevice), 9000u * 8);
  // int8 moments: 1 + 1 B and an fp32 scale per 256 elements for each; offloaded to pinned
  // memory with a 4 B gradient copy; the bf16 + Kahan master is 4 B.
  in.moments = MomentDtype::kInt8;
  in.master = MasterDtype::kBf16Kahan;
  in.offload_optimizer = Placement::kCpu;
  plan = PlanMemory(in);
  ASSERT_TRUE(plan.ok());
  const size_t blocks = 4 + 16 + 16;  // 256-element blocks of each Unit, rounded up
  EXPECT_EQ(plan->Bytes(Category::kOptimizer, Tier::kDevice), 0u);
  EXPECT_EQ(plan->Bytes(Category::kOptimizer, Tier::kPinnedHost),
            9000u * (2 + 4 + 4) + 2 * blocks * 4);
  // NVMe: master, m and v on disk; the gradient copy and the staging buffers pinned.
  in.offload_optimizer = Placement::kNvme;
  in.nvme_path = "/nvme";
  in.nvme_buffer_count = 4;
  in.nvme_buffer_bytes = 1 << 20;
  plan = PlanMemory(in);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->Bytes(Tier::kNvme), 9000u * (2 + 4) + 2 * blocks * 4);
  EXPECT_EQ(plan->Bytes(Category::kOptimizer, Tier::kPinnedHost), 9000u * 4);
  // Compact state moves through three host slots, each holding the largest Unit's arrays
  // (bf16 master and Kahan term, 8-bit m and v, their scales), each 4 KiB aligned; nothing
  // registered with io_uring.
  EXPECT_EQ(plan->registered_bytes, 0u);
  EXPECT_EQ(plan->Bytes(Category::kPools, Tier::kPinnedHost),
            3u * (8192 + 8192 + 2 * 4096 + 2 * 4096));
  // fp32 state streams in tiles: buffer_count per array, registered, a tile at most the largest
  // array (4000 floats, 16 KiB rounded up to 4 KiB).
  in.moments = MomentDtype::kFp32;
  in.master = MasterDtype::kFp32;
  plan = PlanMemory(in);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->registered_bytes, 3u * 4 * 16384);
  EXPECT_EQ(plan->Bytes(Category::kPools, Tier::kPinnedHost), 3u * 4 * 16384);
}

TEST(MemoryPlanTest, ParameterAndActivationOffload) {
  PlanInput in = Handmade();
  in.stage = 3;
  in.offload_param = Placement::kCpu;
  // Parameter offload needs the optimizer on the CPU too: it updates the shards in place.
  absl::StatusOr<MemoryPlan> plan = PlanMemory(in);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("offload_optimizer \"cpu\""), std::string::npos);
  in.offload_optimizer = Placement::kCpu;
  in.activation_checkpointing = true;
  in.offload_activations = true;
  plan = PlanMemory(in);
  ASSERT_TRUE(plan.ok()) << plan.status();
  // Shards of 250, 1000, 1000 elements per rank, fp32, in pinned memory; the gradient shards
  // too, and they are the CPU AdamW's master and gradient copy (none besides): 4 x 4 B each
  // with m and v. The GPU keeps working buffers and activations only.
  EXPECT_EQ(plan->Bytes(Category::kParameters, Tier::kPinnedHost), 2250u * 4);
  EXPECT_EQ(plan->Bytes(Category::kParameters, Tier::kDevice), 0u);
  EXPECT_EQ(plan->Bytes(Category::kGradients, Tier::kPinnedHost), 2250u * 4);
  EXPECT_EQ(plan->Bytes(Category::kOptimizer, Tier::kPinnedHost), 2250u * 8);
  EXPECT_EQ(plan->Bytes(Category::kGradients, Tier::kDevice) +
                plan->Bytes(Category::kOptimizer, Tier::kDevice),
            0u);
  // One rank: stage 3 all the same (whole Units as the one shard).
  PlanInput one = in;
  one.world_size = 1;
  one.stage = 0;
  absl::StatusOr<MemoryPlan> single = PlanMemory(one);
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_EQ(single->Bytes(Category::kParameters, Tier::kPinnedHost), 9000u * 4);
  EXPECT_EQ(single->Bytes(Category::kParameters, Tier::kDevice), 0u);
  EXPECT_GT(single->Bytes(Category::kWorking, Tier::kDevice), 0u);
  // Parameters on NVMe need the optimizer state there (they are its master), with an fp32
  // master: refused otherwise, naming the key.
  one.offload_param = Placement::kNvme;
  EXPECT_NE(PlanMemory(one).status().message().find("offload_optimizer \"nvme\""),
            std::string::npos);
  one.offload_optimizer = Placement::kNvme;
  one.nvme_path = "/tmp";
  one.master = MasterDtype::kBf16Kahan;
  EXPECT_NE(PlanMemory(one).status().message().find("master_dtype"), std::string::npos);
  one.master = MasterDtype::kFp32;
  absl::StatusOr<MemoryPlan> on_nvme = PlanMemory(one);
  ASSERT_TRUE(on_nvme.ok()) << on_nvme.status();
  // No parameter bytes in memory: the fp32 master, m and v (12 B) on NVMe; the gradient shards
  // (4 B) in pinned memory, and one staging buffer per gathered-parameter buffer (Unit 0's,
  // then a ring of the largest), each rounded up to 4 KiB.
  EXPECT_EQ(on_nvme->Bytes(Category::kParameters), 0u);
  EXPECT_EQ(on_nvme->Bytes(Category::kOptimizer, Tier::kNvme), 9000u * 12);
  EXPECT_EQ(on_nvme->Bytes(Category::kGradients, Tier::kPinnedHost), 9000u * 4);
  EXPECT_EQ(on_nvme->Bytes(Category::kOptimizer, Tier::kPinnedHost), 0u);
  const size_t staging = on_nvme->Bytes(Category::kPools, Tier::kPinnedHost) -
                         on_nvme->registered_bytes - on_nvme->input.pinned_pool_bytes;
  EXPECT_EQ(staging % 4096, 0u);
  EXPECT_GE(staging, (1000u + 2 * 4000u) * 4);
  // The L block inputs, B x T x C fp32 each, move to pinned memory; of the residual stream's
  // L+1 arrays, three rotating buffers and the head's input stay (residual_stream.h).
  EXPECT_EQ(plan->Bytes(Category::kActivations, Tier::kPinnedHost), 1u * 10 * 10 * 4);
  EXPECT_EQ(plan->Bytes(Category::kActivations, Tier::kDevice), 20'000u - 800 + 4 * 100 * 4);
  // offload_param below stage 3 with several ranks is refused, naming the key.
  in.stage = 2;
  plan = PlanMemory(in);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("offload_param"), std::string::npos);
  in.stage = 3;
  in.activation_checkpointing = false;
  plan = PlanMemory(in);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("cpu_checkpointing"), std::string::npos);
}

TEST(MemoryPlanTest, NvmeRatioSplitsTheStateBetweenCpuMemoryAndNvme) {
  PlanInput in = Handmade();
  in.world_size = 1;
  in.stage = 0;
  in.offload_optimizer = Placement::kNvme;
  in.nvme_path = "/tmp";
  in.nvme_ratio = 0.5;
  // fp32 state lives in one tier: refused, naming the key.
  EXPECT_NE(PlanMemory(in).status().message().find("nvme_ratio"), std::string::npos);
  in.moments = MomentDtype::kInt8;
  PlanInput whole = in;
  whole.nvme_ratio = 1.0;
  absl::StatusOr<MemoryPlan> split = PlanMemory(in), all = PlanMemory(whole);
  ASSERT_TRUE(split.ok()) << split.status();
  ASSERT_TRUE(all.ok()) << all.status();
  // Units 2 and 1 (8000 of 9000 elements) on NVMe: fp32 master and 8-bit m and v, one fp32
  // scale per 256 elements each; Unit 0's in pinned memory; the same bytes in all.
  EXPECT_EQ(split->Bytes(Category::kOptimizer, Tier::kNvme), 8000u * 4 + 2 * (8000u + 32 * 4));
  EXPECT_EQ(split->Bytes(Category::kOptimizer, Tier::kPinnedHost) -
                all->Bytes(Category::kOptimizer, Tier::kPinnedHost),
            1000u * 4 + 2 * (1000u + 4 * 4));
  EXPECT_EQ(split->Bytes(Category::kOptimizer), all->Bytes(Category::kOptimizer));
}

TEST(MemoryPlanTest, NvmeNeedsAPathAndAutoNeedsTheSearch) {
  PlanInput in = Handmade();
  in.offload_optimizer = Placement::kNvme;
  absl::StatusOr<MemoryPlan> plan = PlanMemory(in);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("nvme_path"), std::string::npos);
  in.offload_optimizer = Placement::kAuto;
  EXPECT_FALSE(PlanMemory(in).ok());
}

}  // namespace
}  // namespace spillway
