// Shared set-up for the training tests: a small synthetic-data run and helpers around it.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/config/config.h"
#include "engine/train/trainer.h"

namespace spillway::testing_util {

inline std::string FreshDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/trainer_test_" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A small run: 2 layers, micro-batch 2 with 2 accumulation steps, synthetic data, checkpoints
// and metrics under `dir`, on `backend`.
inline std::string SmallConfig(int64_t steps, const std::string& dir, int64_t ckpt_interval = 0,
                               const std::string& backend = "cpu") {
  return absl::StrReplaceAll(
      R"({
    "train_batch_size": 4, "train_micro_batch_size_per_gpu": 2,
    "gradient_clipping": 1.0, "steps_per_print": 2,
    "optimizer": {"type": "AdamW", "params": {"lr": 0.003, "betas": [0.9, 0.95],
                                               "weight_decay": 0.1}},
    "scheduler": {"type": "WarmupCosineLR",
                  "params": {"total_num_steps": 12, "warmup_num_steps": 3}},
    "model": {"n_layer": 2, "n_head": 2, "d_model": 32, "seq_len": 16, "vocab_size": 256},
    "data": {"synthetic": {"seed": 3, "train_tokens": 20000, "val_tokens": 2000}},
    "trainer": {"steps": STEPS, "seed": 5, "eval_interval": 3, "eval_batches": 2,
                "backend": "BACKEND"},
    "checkpoint": {"dir": "DIR/ckpt", "interval": INTERVAL, "keep_last": 2},
    "log": {"metrics_path": "DIR/metrics.jsonl"}
  })",
      {{"STEPS", absl::StrCat(steps)},
       {"DIR", dir},
       {"INTERVAL", absl::StrCat(ckpt_interval)},
       {"BACKEND", backend}});
}

// SmallConfig with a tiny grouped-query Llama (untied head, RoPE, SwiGLU) in place of GPT-2.
inline std::string SmallLlamaConfig(int64_t steps, const std::string& dir,
                                    int64_t ckpt_interval = 0, const std::string& backend = "cpu") {
  return absl::StrReplaceAll(
      SmallConfig(steps, dir, ckpt_interval, backend),
      {{R"("model": {"n_layer": 2, "n_head": 2, "d_model": 32, "seq_len": 16, "vocab_size": 256})",
        R"("model": {"type": "llama", "n_layer": 2, "n_head": 4, "n_kv_head": 2, "d_model": 32,
                     "ffn_hidden": 48, "seq_len": 16, "vocab_size": 256, "rope_theta": 500.0})"}});
}

inline std::unique_ptr<Trainer> MakeTrainer(const std::string& json) {
  absl::StatusOr<Config> config = ParseConfig(json);
  EXPECT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*config, nullptr);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  return std::move(trainer).value();
}

// Parameters and Adam state of two models on the CPU backend are bitwise equal.
inline void ExpectSameState(Model& a, Model& b) {
  for (int u = 0; u < a.num_units(); ++u) {
    const UnitState& x = a.unit(u);
    const UnitState& y = b.unit(u);
    ASSERT_TRUE(x.params.on_host() && y.params.on_host());
    EXPECT_EQ(std::memcmp(x.params.data(), y.params.data(), x.params.bytes()), 0)
        << x.layout.name() << " params differ";
    EXPECT_EQ(std::memcmp(x.exp_avg.data(), y.exp_avg.data(), x.exp_avg.bytes()), 0)
        << x.layout.name() << " Adam m differs";
    EXPECT_EQ(std::memcmp(x.exp_avg_sq.data(), y.exp_avg_sq.data(), x.exp_avg_sq.bytes()), 0)
        << x.layout.name() << " Adam v differs";
  }
}

// ||a - b|| / ||b|| in double (||a - b|| when b is zero; 1 when the sizes differ).
inline double RelativeL2(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size()) return 1.0;
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return norm == 0.0 ? std::sqrt(diff) : std::sqrt(diff / norm);
}

// Resumes `resumed` from `checkpoint` and trains it to its end: it takes `steps` steps with the
// losses of `full`'s last `steps`, bitwise, and with `same_params` ends at full's parameters.
inline void ExpectResumesLike(Trainer& full, Trainer& resumed, const std::string& checkpoint,
                              size_t steps, bool same_params) {
  absl::Status status = resumed.Resume(checkpoint);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_TRUE(resumed.Train().ok());
  const std::vector<double>& want = full.step_losses();
  const std::vector<double>& got = resumed.step_losses();
  ASSERT_EQ(got.size(), steps);
  ASSERT_GE(want.size(), steps);
  const size_t first = want.size() - steps;
  for (size_t i = 0; i < steps; ++i) {
    EXPECT_EQ(want[first + i], got[i]) << "step " << first + i + 1;
  }
  if (!same_params) return;
  for (int u = 0; u < full.model().num_units(); ++u) {
    EXPECT_EQ(full.StoredParams(u).value(), resumed.StoredParams(u).value())
        << full.model().unit(u).layout.name();
  }
}

}  // namespace spillway::testing_util
