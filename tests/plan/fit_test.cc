// Fit checks, "auto" placement and the hardware override, on hand-made plans and hardware.
#include "engine/plan/fit.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/plan/report.h"
#include "offload/buffer.h"
#include "partitioner/offload_split.h"

namespace spillway {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

// 100M parameters in 10 Units, one GPU rank: fp32 needs 400 MB each of parameters and
// gradients, 800 MB of Adam state, plus activations.
PlanInput Model100M() {
  PlanInput in;
  in.unit_numel.assign(10, 10'000'000);
  in.param_count = 100'000'000;
  in.layers = 8;
  in.d_model = 1024;
  in.seq_len = 1024;
  in.micro_batch = 1;
  in.activation_bytes = 300 * kMiB;
  in.activation_bytes_checkpointed = 100 * kMiB;
  in.gpu = true;
  in.nvme_path = "/nvme";
  return in;
}

Hardware Machine(size_t gpu, size_t cpu, size_t nvme) {
  Hardware hw;
  hw.gpu_free = gpu;
  hw.gpu_total = gpu;
  hw.host_available = cpu;
  hw.nvme_free = nvme;
  return hw;
}

TEST(FitTest, FitsOrNamesTheShortTier) {
  const PlanInput in = Model100M();
  absl::StatusOr<PlanResult> r = PlanToFit(in, Machine(4096 * kMiB, 8192 * kMiB, 0));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->fit.fits()) << FormatPlan(*r, Machine(4096 * kMiB, 8192 * kMiB, 0));
  const Hardware small = Machine(1100 * kMiB, 8192 * kMiB, 0);
  r = PlanToFit(in, small);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->fit.fits());
  const size_t need = r->plan.Bytes(Tier::kDevice);
  const absl::Status error = NotFitError(*r, small);
  EXPECT_EQ(error.code(), absl::StatusCode::kResourceExhausted);
  const std::string message(error.message());
  EXPECT_NE(message.find("gpu needs"), std::string::npos) << message;
  EXPECT_NE(message.find("short by"), std::string::npos);
  EXPECT_NE(message.find(absl::StrCat("(", need - 1100 * kMiB, " bytes)")), std::string::npos)
      << message;
  // Offloading the optimizer would fit: the message says so.
  EXPECT_NE(message.find("offload_optimizer \"cpu\", offload_param \"none\" would fit"),
            std::string::npos)
      << message;
}

TEST(FitTest, AutoPicksTheCheapestPlacementThatFits) {
  PlanInput in = Model100M();
  in.offload_optimizer = Placement::kAuto;
  in.offload_param = Placement::kAuto;
  // Everything fits in the GPU: none.
  absl::StatusOr<PlanResult> r = PlanToFit(in, Machine(8192 * kMiB, 8192 * kMiB, 0));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->resolved_auto);
  EXPECT_EQ(r->plan.input.offload_optimizer, Placement::kNone);
  EXPECT_EQ(r->plan.input.offload_param, Placement::kNone);
  // The GPU holds parameters, gradients and activations but not Adam: the optimizer to cpu.
  r = PlanToFit(in, Machine(1500 * kMiB, 8192 * kMiB, 0));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->fit.fits());
  EXPECT_EQ(r->plan.input.offload_optimizer, Placement::kCpu);
  EXPECT_EQ(r->plan.input.offload_param, Placement::kNone);
  // Too little host memory for the optimizer's 16 B per parameter: nvme.
  r = PlanToFit(in, Machine(1500 * kMiB, 1000 * kMiB, 100'000 * kMiB));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->fit.fits()) << FormatPlan(*r, Machine(1500 * kMiB, 1000 * kMiB, 100'000 * kMiB));
  EXPECT_EQ(r->plan.input.offload_optimizer, Placement::kNvme);
  EXPECT_EQ(r->plan.input.offload_param, Placement::kNone);
  // A GPU too small for the parameters and gradients: the parameters move too.
  r = PlanToFit(in, Machine(1020 * kMiB, 8192 * kMiB, 0));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->fit.fits()) << FormatPlan(*r, Machine(1020 * kMiB, 8192 * kMiB, 0));
  EXPECT_EQ(r->plan.input.offload_optimizer, Placement::kCpu);
  EXPECT_EQ(r->plan.input.offload_param, Placement::kCpu);
  // Host memory for the gradient shards but not the parameters beside them: both on NVMe.
  const Hardware small_host = Machine(1020 * kMiB, 750 * kMiB, 100'000 * kMiB);
  r = PlanToFit(in, small_host);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->fit.fits()) << FormatPlan(*r, small_host);
  EXPECT_EQ(r->plan.input.offload_optimizer, Placement::kNvme);
  EXPECT_EQ(r->plan.input.offload_param, Placement::kNvme);
  // Nothing fits: the most offloaded candidate and every candidate's shortfall.
  const Hardware tiny = Machine(10 * kMiB, 10 * kMiB, 10 * kMiB);
  r = PlanToFit(in, tiny);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->fit.fits());
  // (Parameters in CPU memory or on NVMe beside an optimizer nearer the GPU are not built:
  // those candidates are tried and refused.)
  EXPECT_EQ(r->plan.input.offload_optimizer, Placement::kNvme);
  EXPECT_EQ(r->plan.input.offload_param, Placement::kNvme);
  EXPECT_EQ(r->tried.size(), 9u);
  EXPECT_NE(FormatPlan(*r, tiny).find("verdict: does not fit"), std::string::npos);
}

// A config with its state and parameters on NVMe that no tier holds alone: the error proposes
// the split over all three (the most on the GPU, then the least on NVMe), and that split fits.
TEST(FitTest, NotFitProposesASplitOverTheTiers) {
  PlanInput in = Model100M();
  in.unit_numel.assign(40, 2'500'000);  // small Units against the model, as in a large one
  in.prefetch_elements = 2'500'000;
  in.stage = 3;
  in.activation_checkpointing = true;
  in.moments = MomentDtype::kInt8;
  in.offload_optimizer = Placement::kNvme;
  in.offload_param = Placement::kNvme;
  absl::StatusOr<MemoryPlan> all_on_nvme = PlanMemory(in);
  ASSERT_TRUE(all_on_nvme.ok()) << all_on_nvme.status();
  // Half the disk the plan needs, room for a third of the model's state in CPU memory, and a
  // GPU with room for a fifth of it (16 bytes per parameter, and the reduced-shard buffers
  // that resident Units need).
  const size_t nvme = all_on_nvme->Bytes(Tier::kNvme);
  const Hardware hw = Machine(all_on_nvme->Bytes(Tier::kDevice) + 20'000'000 * 16 + 40 * kMiB,
                              all_on_nvme->Bytes(Tier::kPinnedHost) + nvme / 3, nvme / 2);
  EXPECT_FALSE(CheckFit(*all_on_nvme, hw).fits());
  std::optional<PlanInput> split = SplitThatFits(in, hw);
  ASSERT_TRUE(split.has_value());
  EXPECT_LT(split->offload_ratio, 1.0);
  EXPECT_LT(split->nvme_ratio, split->offload_ratio);
  absl::StatusOr<MemoryPlan> plan = PlanMemory(*split);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(CheckFit(*plan, hw).fits()) << FormatPlan({*plan, CheckFit(*plan, hw)}, hw);
  absl::StatusOr<PlanResult> r = PlanToFit(in, hw);
  ASSERT_TRUE(r.ok());
  const std::string message(NotFitError(*r, hw).message());
  EXPECT_NE(message.find(absl::StrFormat("offload_optimizer.ratio %g, nvme_ratio %g would fit",
                                         split->offload_ratio, split->nvme_ratio)),
            std::string::npos)
      << message;
  // Nothing fits a GPU too small for the working buffers: no split is proposed.
  EXPECT_FALSE(SplitThatFits(in, Machine(kMiB, 1u << 30, 1u << 30)).has_value());
}

// offload_optimizer.ratio "auto": the smallest ratio on the grid that fits (the most optimizer
// state on the GPU), for an explicit "cpu" and for an "auto" device that resolves to it.
TEST(FitTest, RatioAutoPicksTheSmallestSplitThatFits) {
  PlanInput in = Model100M();
  in.offload_optimizer = Placement::kCpu;
  auto gpu_bytes = [&](double ratio) {
    PlanInput at = in;
    at.offload_optimizer = Placement::kCpu;
    at.offload_ratio = ratio;
    at.offload_ratio_auto = false;
    absl::StatusOr<MemoryPlan> plan = PlanMemory(at);
    EXPECT_TRUE(plan.ok()) << plan.status();
    return plan.ok() ? plan->Bytes(Tier::kDevice) : size_t{0};
  };
  // A GPU that holds the optimizer of the first half of the Units but not of one more.
  const Hardware hw = Machine((gpu_bytes(0.5) + gpu_bytes(0.4)) / 2, 8192 * kMiB, 0);
  in.offload_ratio_auto = true;
  for (const Placement device : {Placement::kCpu, Placement::kAuto}) {
    in.offload_optimizer = device;
    absl::StatusOr<PlanResult> r = PlanToFit(in, hw);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->fit.fits()) << FormatPlan(*r, hw);
    EXPECT_TRUE(r->resolved_ratio);
    EXPECT_EQ(r->plan.input.offload_optimizer, Placement::kCpu);
    EXPECT_FALSE(r->plan.input.offload_ratio_auto);
    // The half of the Units that 0.5 offloads, at the smallest ratio on the grid that does so.
    const double ratio = r->plan.input.offload_ratio;
    EXPECT_EQ(FirstOffloadedUnit(in.unit_numel, ratio), FirstOffloadedUnit(in.unit_numel, 0.5));
    EXPECT_GT(gpu_bytes(ratio - 1.0 / kSplitSteps), *hw.gpu_free);
    EXPECT_NE(FormatPlan(*r, hw).find(
                  absl::StrFormat("chosen placement: offload_optimizer \"cpu\" (ratio %g)", ratio)),
              std::string::npos)
        << FormatPlan(*r, hw);
  }
  // Room for everything: an "auto" device keeps the optimizer in the GPU; "cpu" offloads the
  // grid's least.
  const Hardware big = Machine(8192 * kMiB, 8192 * kMiB, 0);
  in.offload_optimizer = Placement::kAuto;
  absl::StatusOr<PlanResult> r = PlanToFit(in, big);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->plan.input.offload_optimizer, Placement::kNone);
  in.offload_optimizer = Placement::kCpu;
  r = PlanToFit(in, big);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_DOUBLE_EQ(r->plan.input.offload_ratio, 1.0 / kSplitSteps);
  // Not even the whole optimizer offloaded fits: ratio 1, reported short.
  r = PlanToFit(in, Machine(gpu_bytes(1.0) - kMiB, 8192 * kMiB, 0));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->fit.fits());
  EXPECT_EQ(r->plan.input.offload_ratio, 1.0);
}

TEST(FitTest, HostMemoryIsSharedByTheRanksOfANode) {
  PlanInput in = Model100M();
  in.offload_optimizer = Placement::kCpu;
  in.world_size = 8;
  in.stage = 1;
  absl::StatusOr<MemoryPlan> plan = PlanMemory(in);
  ASSERT_TRUE(plan.ok());
  const size_t per_rank = plan->Bytes(Tier::kPinnedHost);
  in.ranks_per_node = 8;
  absl::StatusOr<PlanResult> r = PlanToFit(in, Machine(8192 * kMiB, per_rank * 4, 0));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->fit.fits());
  const TierCheck& pinned = r->fit.checks[1];
  EXPECT_EQ(pinned.name, "pinned cpu");
  EXPECT_EQ(pinned.need, per_rank * 8);
  EXPECT_EQ(pinned.short_by(), per_rank * 4);
}

TEST(FitTest, NoGpuAndMemlock) {
  PlanInput in = Model100M();
  in.offload_optimizer = Placement::kNvme;
  in.nvme_buffer_count = 4;
  in.nvme_buffer_bytes = 8 * kMiB;
  Hardware hw = Machine(0, 8192 * kMiB, 100'000 * kMiB);
  hw.gpu_free.reset();
  hw.memlock = 16 * kMiB;
  absl::StatusOr<PlanResult> r = PlanToFit(in, hw);
  ASSERT_TRUE(r.ok());
  const std::string message(NotFitError(*r, hw).message());
  EXPECT_NE(message.find("gpu needs"), std::string::npos) << message;
  EXPECT_NE(message.find("no GPU found"), std::string::npos) << message;
  // 3 arrays (master, m, v) x buffer_count tiles of 8 MiB, registered.
  EXPECT_NE(message.find("memlock needs 96.0 MiB"), std::string::npos) << message;
}

// A pinned allocation that fails at run time names the bytes, the purpose and what to do.
TEST(PinnedFailureTest, MessageNamesBytesPurposeAndRemedy) {
  absl::StatusOr<Buffer> b = Buffer::Allocate(12345, Tier::kPinnedHost, "unit h.3 Adam m");
  if (b.ok()) GTEST_SKIP() << "pinned memory is available in this build";
  const std::string message(b.status().message());
  EXPECT_NE(message.find("12345 bytes of pinned CPU memory for unit h.3 Adam m"), std::string::npos)
      << message;
  EXPECT_NE(message.find("offload_optimizer.pin_memory"), std::string::npos) << message;
}

TEST(HardwareTest, ByteSizesAndOverride) {
  EXPECT_EQ(*ParseByteSize("1048576"), 1048576u);
  EXPECT_EQ(*ParseByteSize("512MiB"), 512 * kMiB);
  EXPECT_EQ(*ParseByteSize("2G"), 2048 * kMiB);
  EXPECT_EQ(*ParseByteSize("1.5KiB"), 1536u);
  EXPECT_FALSE(ParseByteSize("lots").ok());
  EXPECT_FALSE(ParseByteSize("-1G").ok());
  Hardware hw;
  ASSERT_TRUE(ApplyHardwareOverride("gpu=80GiB, cpu=1MiB,memlock=unlimited,nvme=1T", &hw).ok());
  EXPECT_EQ(*hw.gpu_free, 80 * 1024 * kMiB);
  EXPECT_EQ(hw.host_available, kMiB);
  EXPECT_FALSE(hw.memlock.has_value());
  EXPECT_EQ(*hw.nvme_free, 1024 * 1024 * kMiB);
  EXPECT_EQ(hw.overridden.size(), 4u);
  const absl::Status bad = ApplyHardwareOverride("disk=1G", &hw);
  EXPECT_NE(bad.message().find("SPILLWAY_PLAN_HARDWARE"), std::string::npos) << bad;
  EXPECT_NE(bad.message().find("unknown key"), std::string::npos) << bad;
}

TEST(HardwareTest, DetectsThisMachineAndAppliesTheEnvironment) {
  ASSERT_EQ(setenv(kHardwareOverrideEnv, "pinned=3MiB", 1), 0);
  absl::StatusOr<Hardware> hw = DetectHardware(false, ::testing::TempDir());
  unsetenv(kHardwareOverrideEnv);
  ASSERT_TRUE(hw.ok()) << hw.status();
  EXPECT_GT(hw->host_available, 0u);
  EXPECT_TRUE(hw->nvme_free.has_value());
  EXPECT_FALSE(hw->gpu_free.has_value());
  EXPECT_EQ(hw->pinned_available(), 3 * kMiB);
  hw = DetectHardware(false, "/nonexistent/nvme");
  ASSERT_TRUE(hw.ok());
  EXPECT_FALSE(hw->nvme_free.has_value());
  EXPECT_NE(hw->nvme_note.find("/nonexistent/nvme"), std::string::npos) << hw->nvme_note;
}

}  // namespace
}  // namespace spillway
