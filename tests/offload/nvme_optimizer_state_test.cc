// NvmeOptimizerState on both engines: Units' arrays round-trip through one file without
// touching each other; streaming AdamW over them equals AdamW on in-memory arrays bit for bit,
// also with short reads injected; an injected EIO on a read or ENOSPC on a write fails the pass
// with a message naming the file, never a silent success.
#include "offload/nvme_optimizer_state.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_adam.h"
#include "tests/offload/offload_test_util.h"

namespace spillway::testing {
namespace {

using ::testing::HasSubstr;

const std::vector<size_t> kUnitNumels = {1, 1023, 1025, 5000, 3};

std::vector<float> RandomFloats(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> out(n);
  for (float& x : out) x = dist(rng);
  return out;
}

class NvmeOptimizerStateTest : public ::testing::TestWithParam<EngineKind> {
 protected:
  void SetUp() override {
    if (GetParam() == EngineKind::kUring && !UringAvailable().ok()) {
      GTEST_SKIP() << "io_uring is refused on this machine (" << UringAvailable()
                   << "); the device machine has it";
    }
  }

  // Tiles of 4 KiB (1024 floats), so the larger Units stream in several tiles.
  std::unique_ptr<NvmeOptimizerState> Make(CompletionFilter filter = {}) {
    IoOptions io;
    io.nvme_path = dir_.path();
    io.queue_depth = 4;
    io.force_fallback = GetParam() == EngineKind::kPread;
    io.completion_filter = std::move(filter);
    io.warn = warnings_.sink();
    auto state = NvmeOptimizerState::Create(io, kUnitNumels, 4096, 3, "state_test");
    EXPECT_TRUE(state.ok()) << state.status();
    return state.ok() ? std::move(state).value() : nullptr;
  }

  ScratchDir dir_;
  WarningLog warnings_;
};

TEST_P(NvmeOptimizerStateTest, ArraysRoundTripWithoutOverlap) {
  auto state = Make();
  ASSERT_NE(state, nullptr);
  EXPECT_EQ(state->engine().name(), GetParam() == EngineKind::kUring ? "io_uring" : "pread");
  EXPECT_EQ(state->tile_floats(), 1024u);
  std::vector<std::vector<float>> written;
  for (int u = 0; u < state->num_units(); ++u) {
    for (int a = 0; a < NvmeOptimizerState::kArrays; ++a) {
      written.push_back(RandomFloats(kUnitNumels[u], 10 * u + a, -1, 1));
      ASSERT_TRUE(state->WriteArray(u, NvmeOptimizerState::Array(a), written.back().data()).ok());
    }
  }
  size_t i = 0;
  for (int u = 0; u < state->num_units(); ++u) {
    for (int a = 0; a < NvmeOptimizerState::kArrays; ++a, ++i) {
      std::vector<float> back(kUnitNumels[u]);
      ASSERT_TRUE(state->ReadArray(u, NvmeOptimizerState::Array(a), back.data()).ok());
      EXPECT_EQ(back, written[i]) << "unit " << u << " array " << a;
    }
  }
}

// Two AdamW steps per Unit streamed over NVMe equal two steps on in-memory arrays; with
// `filter` on the engine (short reads) as well.
void ExpectStreamedAdamWMatches(NvmeOptimizerState& state) {
  kernels::AdamWParams p;
  p.lr = 1e-2f;
  p.weight_decay = 0.1f;
  for (int u = 0; u < state.num_units(); ++u) {
    const size_t n = state.numel(u);
    std::vector<float> param = RandomFloats(n, u, -1, 1), m(n, 0.0f), v(n, 0.0f);
    ASSERT_TRUE(state.WriteArray(u, NvmeOptimizerState::kMaster, param.data()).ok());
    std::vector<float> zeros(n, 0.0f);
    ASSERT_TRUE(state.WriteArray(u, NvmeOptimizerState::kExpAvg, zeros.data()).ok());
    ASSERT_TRUE(state.WriteArray(u, NvmeOptimizerState::kExpAvgSq, zeros.data()).ok());
    for (int step = 1; step <= 2; ++step) {
      p.step = step;
      const std::vector<float> grad = RandomFloats(n, 100 * u + step, -1, 1);
      kernels::cpu::CpuAdamW(param.data(), grad.data(), m.data(), v.data(), nullptr, n, p);
      absl::Status streamed =
          state.StreamUnit(u, [&](size_t first, float* master, float* tm, float* tv, size_t count) {
            kernels::cpu::CpuAdamW(master, grad.data() + first, tm, tv, nullptr, count, p);
            return absl::OkStatus();
          });
      ASSERT_TRUE(streamed.ok()) << streamed;
    }
    std::vector<float> back(n);
    ASSERT_TRUE(state.ReadArray(u, NvmeOptimizerState::kMaster, back.data()).ok());
    EXPECT_EQ(back, param) << "unit " << u;
    ASSERT_TRUE(state.ReadArray(u, NvmeOptimizerState::kExpAvgSq, back.data()).ok());
    EXPECT_EQ(back, v) << "unit " << u;
  }
}

TEST_P(NvmeOptimizerStateTest, StreamedAdamWEqualsInMemory) {
  auto state = Make();
  ASSERT_NE(state, nullptr);
  ExpectStreamedAdamWMatches(*state);
  EXPECT_GT(state->stats().tiles, state->num_units());
}

TEST_P(NvmeOptimizerStateTest, ShortReadsAreResubmittedExactly) {
  auto state = Make([](const IoAttempt& a, int result) {
    return a.op == IoOp::kRead && a.retry == 0 && result > 4096 ? 4096 : result;
  });
  ASSERT_NE(state, nullptr);
  ExpectStreamedAdamWMatches(*state);
}

TEST_P(NvmeOptimizerStateTest, EioOnAReadFailsThePassClearly) {
  std::atomic<bool> fail = false;
  auto state = Make([&](const IoAttempt& a, int result) {
    return fail && a.op == IoOp::kRead && a.offset > 0 ? -EIO : result;
  });
  ASSERT_NE(state, nullptr);
  const int u = 3;  // 5000 floats: 5 tiles
  fail = true;
  int computed = 0;
  absl::Status status = state->StreamUnit(u, [&](size_t, float*, float*, float*, size_t) {
    ++computed;
    return absl::OkStatus();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
  EXPECT_THAT(status.message(), HasSubstr("Input/output error"));
  EXPECT_THAT(status.message(), HasSubstr(state->file().path()));
  EXPECT_LT(computed, 5) << "no tile is computed from a failed read";
}

TEST_P(NvmeOptimizerStateTest, DiskFullDuringAWriteFailsThePassClearly) {
  std::atomic<bool> full = false;
  auto state = Make([&](const IoAttempt& a, int result) {
    return full && a.op == IoOp::kWrite ? -ENOSPC : result;
  });
  ASSERT_NE(state, nullptr);
  full = true;
  absl::Status status =
      state->StreamUnit(3, [](size_t, float*, float*, float*, size_t) { return absl::OkStatus(); });
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(status.message(), HasSubstr("No space left on device"));
  EXPECT_THAT(status.message(), HasSubstr(state->file().path()));
  std::vector<float> src(kUnitNumels[1], 1.0f);
  EXPECT_EQ(state->WriteArray(1, NvmeOptimizerState::kMaster, src.data()).code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_P(NvmeOptimizerStateTest, AComputeErrorStopsThePass) {
  auto state = Make();
  ASSERT_NE(state, nullptr);
  absl::Status status = state->StreamUnit(3, [](size_t first, float*, float*, float*, size_t) {
    return first > 0 ? absl::InternalError("bad tile") : absl::OkStatus();
  });
  EXPECT_THAT(status.message(), HasSubstr("bad tile"));
}

INSTANTIATE_TEST_SUITE_P(Engines, NvmeOptimizerStateTest,
                         ::testing::Values(EngineKind::kUring, EngineKind::kPread),
                         [](const auto& info) { return EngineName(info.param); });

}  // namespace
}  // namespace spillway::testing
