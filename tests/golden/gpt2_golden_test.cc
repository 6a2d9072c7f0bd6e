// spillway's CPU GPT-2 against a float64 PyTorch reference (tests/golden/make_gpt2_golden.py,
// which writes tests/golden/gpt2_tiny.safetensors): logits, loss, every gradient, and the
// losses of 6 AdamW steps with gradient clipping.
//
// Errors are relative per tensor, ||got - want|| / ||want|| (L2 over the tensor), computed in
// double. Each check prints its error as a fraction of its tolerance, and the test ends with the
// worst one (as llm.c does), so a regression shows how close it came before it fails.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/safetensors.h"
#include "engine/config/config.h"
#include "engine/model/gpt2.h"
#include "engine/train/optimizer_step.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/ops.h"

namespace spillway {
namespace {

// Tolerances. The reference is computed in float64 and only stored as float32, so these bound
// the error of spillway's fp32 arithmetic alone. PyTorch's own fp32 forward and backward of the
// same model stay within 5e-7 (logits) and 8e-7 (grads) of the float64 truth, and over the 6
// AdamW steps its losses within 2e-7; the tolerances leave room for other summation orders
// (blocked matmuls, flash-style attention) while still catching real mistakes, which make
// errors of 1e-4 to 1e-2 here (e.g. GELU's erf form: 2e-4 on logits, 5e-4 on grads; LayerNorm
// eps 1e-6: 4e-3; AdamW decaying biases too: 1e-3 on the losses).
constexpr double kLogitsTol = 1e-5;  // forward: a few roundings per layer
constexpr double kLossTol = 1e-5;
constexpr double kGradTol = 1e-4;      // backward: a longer chain, with cancellation in sums
constexpr double kStepLossTol = 1e-4;  // losses after AdamW steps (updates amplify rounding)
constexpr double kGradNormTol = 1e-4;  // global grad norm before clipping, per step

const char kGoldenFile[] = "/tests/golden/gpt2_tiny.safetensors";

struct Check {
  std::string name;
  double error = 0.0;
  double tolerance = 0.0;
};

// Records relative errors and reports each against its tolerance.
class Checker {
 public:
  // ||got - want|| / ||want|| (absolute if want is all zero).
  double Compare(const std::string& name, std::span<const double> got, std::span<const float> want,
                 double tolerance) {
    EXPECT_EQ(got.size(), want.size()) << name;
    double diff2 = 0.0, want2 = 0.0;
    for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
      const double d = got[i] - static_cast<double>(want[i]);
      diff2 += d * d;
      want2 += static_cast<double>(want[i]) * want[i];
    }
    const double error = want2 > 0.0 ? std::sqrt(diff2 / want2) : std::sqrt(diff2);
    checks_.push_back({name, error, tolerance});
    EXPECT_LE(error, tolerance) << name << ": relative error " << error << " > allowed "
                                << tolerance << " (" << error / tolerance << " of tolerance)";
    return error;
  }
  double Compare(const std::string& name, std::span<const float> got, std::span<const float> want,
                 double tolerance) {
    std::vector<double> g(got.begin(), got.end());
    return Compare(name, g, want, tolerance);
  }

  void PrintSummary(const std::string& title) const {
    const Check* worst = nullptr;
    for (const Check& c : checks_) {
      std::printf("  %-36s rel err %.3e  tol %.0e  (%.3f of tol)%s\n", c.name.c_str(), c.error,
                  c.tolerance, c.error / c.tolerance, c.error <= c.tolerance ? "" : "  FAIL");
      if (worst == nullptr || c.error / c.tolerance > worst->error / worst->tolerance) worst = &c;
    }
    if (worst != nullptr) {
      std::printf("%s: worst %s, rel err %.3e = %.3f of its tolerance %.0e\n", title.c_str(),
                  worst->name.c_str(), worst->error, worst->error / worst->tolerance,
                  worst->tolerance);
    }
  }

 private:
  std::vector<Check> checks_;
};

// The reference file, with its configuration.
struct Golden {
  std::unique_ptr<SafetensorsFile> file;
  ModelConfig model;
  OptimizerConfig opt;
  int batch = 0;
  int adamw_steps = 0;
  double max_grad_norm = 0.0;
};

absl::StatusOr<Golden> LoadGolden() {
  const char* source_dir = std::getenv("SPILLWAY_SOURCE_DIR");
  const std::string path = absl::StrCat(source_dir != nullptr ? source_dir : ".", kGoldenFile);
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  Golden g;
  g.file = std::make_unique<SafetensorsFile>(*std::move(file));
  const auto& meta = g.file->metadata();
  auto get_int = [&](const char* key, int* out) -> absl::Status {
    auto it = meta.find(key);
    if (it == meta.end() || !absl::SimpleAtoi(it->second, out)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": metadata \"", key, "\" missing"));
    }
    return absl::OkStatus();
  };
  auto get_double = [&](const char* key, double* out) -> absl::Status {
    auto it = meta.find(key);
    if (it == meta.end() || !absl::SimpleAtod(it->second, out)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": metadata \"", key, "\" missing"));
    }
    return absl::OkStatus();
  };
  for (absl::Status s :
       {get_int("n_layer", &g.model.n_layer), get_int("n_head", &g.model.n_head),
        get_int("d_model", &g.model.d_model), get_int("seq_len", &g.model.seq_len),
        get_int("vocab_size", &g.model.vocab_size), get_int("batch", &g.batch),
        get_int("adamw_steps", &g.adamw_steps), get_double("lr", &g.opt.lr),
        get_double("beta1", &g.opt.beta1), get_double("beta2", &g.opt.beta2),
        get_double("eps", &g.opt.eps), get_double("weight_decay", &g.opt.weight_decay),
        get_double("max_grad_norm", &g.max_grad_norm)}) {
    if (!s.ok()) return s;
  }
  return g;
}

// Reads a float tensor that must exist; fails the test otherwise.
std::vector<float> ReadFloat(const SafetensorsFile& file, const std::string& name) {
  absl::StatusOr<std::vector<float>> v = file.ReadFloat(name);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *std::move(v) : std::vector<float>();
}

// Every tensor of the model, by name, in Unit order.
std::vector<const TensorSpec*> ModelTensors(const Gpt2& model) {
  std::vector<const TensorSpec*> out;
  for (int u = 0; u < model.num_units(); ++u) {
    for (const TensorSpec& t : model.unit(u).layout.tensors()) out.push_back(&t);
  }
  return out;
}

// Copies the reference parameters into the model (wte: its first V rows; the padding rows are
// set to zero). Checks that the file and the model have the same tensors and shapes.
void LoadParams(const Golden& g, Gpt2& model) {
  const int V = g.model.vocab_size, C = g.model.d_model, Vp = model.padded_vocab();
  int found = 0;
  for (const TensorSpec* t : ModelTensors(model)) {
    const SafetensorsTensorInfo* info = g.file->Find("param/" + t->name);
    ASSERT_NE(info, nullptr) << "the reference has no parameter " << t->name;
    ++found;
    std::vector<int64_t> want_shape = t->shape;
    if (t->name == "wte") {
      ASSERT_EQ(want_shape, (std::vector<int64_t>{Vp, C}));
      want_shape[0] = V;
    }
    ASSERT_EQ(info->shape, want_shape) << t->name;
    const std::vector<float> values = ReadFloat(*g.file, "param/" + t->name);
    float* p = model.FindParam(t->name);
    ASSERT_NE(p, nullptr) << t->name;
    std::copy(values.begin(), values.end(), p);
    if (t->name == "wte") std::fill(p + static_cast<size_t>(V) * C, p + t->numel, 0.0f);
  }
  int in_file = 0;
  for (const std::string& name : g.file->names()) in_file += name.starts_with("param/");
  EXPECT_EQ(found, in_file) << "the reference has parameters the model lacks";
}

class Gpt2GoldenTest : public ::testing::TestWithParam<bool> {};

TEST_P(Gpt2GoldenTest, MatchesPyTorchFloat64) {
  const bool checkpointing = GetParam();
  absl::StatusOr<Golden> golden = LoadGolden();
  ASSERT_TRUE(golden.ok()) << golden.status();
  const Golden& g = *golden;
  const int B = g.batch, T = g.model.seq_len, V = g.model.vocab_size, C = g.model.d_model;

  absl::StatusOr<std::unique_ptr<kernels::Ops>> ops = kernels::CreateOps("cpu");
  ASSERT_TRUE(ops.ok()) << ops.status();
  absl::StatusOr<std::unique_ptr<Gpt2>> created =
      Gpt2::Create(g.model, B, checkpointing, ops->get());
  ASSERT_TRUE(created.ok()) << created.status();
  Gpt2& model = **created;
  const int Vp = model.padded_vocab();
  ASSERT_GE(Vp, V);
  ASSERT_TRUE(model.InitParams(1).ok());
  LoadParams(g, model);
  if (HasFatalFailure()) return;

  absl::StatusOr<std::vector<int32_t>> inputs = g.file->ReadInt32("inputs");
  absl::StatusOr<std::vector<int32_t>> targets = g.file->ReadInt32("targets");
  ASSERT_TRUE(inputs.ok()) << inputs.status();
  ASSERT_TRUE(targets.ok()) << targets.status();
  ASSERT_EQ(inputs->size(), static_cast<size_t>(B) * T);
  ASSERT_EQ(targets->size(), static_cast<size_t>(B) * T);

  Checker checker;

  // Forward: logits (first V of each row of Vp) and loss.
  model.ZeroGrads();
  const float loss = model.Forward(inputs->data(), targets->data());
  ASSERT_TRUE((*ops)->Synchronize().ok());
  std::vector<float> logits(static_cast<size_t>(B) * T * V);
  for (size_t row = 0; row < static_cast<size_t>(B) * T; ++row) {
    std::copy_n(model.logits() + row * Vp, V, logits.begin() + row * V);
  }
  checker.Compare("logits", logits, ReadFloat(*g.file, "logits"), kLogitsTol);
  checker.Compare("loss", std::span<const float>(&loss, 1), ReadFloat(*g.file, "loss"), kLossTol);

  // Backward: every gradient of the mean loss.
  model.Backward(1.0f);
  ASSERT_TRUE((*ops)->Synchronize().ok());
  for (const TensorSpec* t : ModelTensors(model)) {
    const float* grad = model.FindGrad(t->name);
    ASSERT_NE(grad, nullptr) << t->name;
    size_t n = t->numel;
    if (t->name == "wte") {
      n = static_cast<size_t>(V) * C;
      size_t nonzero = 0;
      for (size_t i = n; i < t->numel; ++i) nonzero += grad[i] != 0.0f;
      EXPECT_EQ(nonzero, 0u) << "gradient of wte's padding rows [" << V << ", " << Vp
                             << ") must be exactly 0";
    }
    checker.Compare("grad/" + t->name, std::span<const float>(grad, n),
                    ReadFloat(*g.file, "grad/" + t->name), kGradTol);
  }

  // AdamW: from the same parameters (Forward/Backward changed none; Adam state is still zero).
  const std::vector<float> want_losses = ReadFloat(*g.file, "adamw_losses");
  const std::vector<float> want_norms = ReadFloat(*g.file, "adamw_grad_norms");
  ASSERT_EQ(want_losses.size(), static_cast<size_t>(g.adamw_steps));
  ASSERT_EQ(want_norms.size(), static_cast<size_t>(g.adamw_steps));
  std::vector<double> losses, norms;
  const std::unique_ptr<Communicator> one_rank = Communicator::Single();
  for (int step = 1; step <= g.adamw_steps; ++step) {
    model.ZeroGrads();
    losses.push_back(model.Forward(inputs->data(), targets->data()));
    model.Backward(1.0f);
    absl::StatusOr<OptimizerStepResult> result =
        OptimizerStep(model, **ops, *one_rank, *one_rank, g.opt, g.opt.lr, g.max_grad_norm, step);
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_TRUE((*ops)->Synchronize().ok());
    norms.push_back(result->grad_norm);
  }
  for (int k = 0; k < g.adamw_steps; ++k) {
    checker.Compare(absl::StrCat("adamw_losses[", k, "]"), std::span<const double>(&losses[k], 1),
                    std::span<const float>(&want_losses[k], 1), kStepLossTol);
    checker.Compare(absl::StrCat("adamw_grad_norms[", k, "]"),
                    std::span<const double>(&norms[k], 1),
                    std::span<const float>(&want_norms[k], 1), kGradNormTol);
  }
  // The loss must actually fall: the run trains, not just agrees.
  EXPECT_LT(losses.back(), losses.front() - 0.5);

  checker.PrintSummary(checkpointing ? "gpt2 golden (activation checkpointing)" : "gpt2 golden");
}

INSTANTIATE_TEST_SUITE_P(Checkpointing, Gpt2GoldenTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "ActivationCheckpointing" : "Plain";
                         });

}  // namespace
}  // namespace spillway
