// spillway's CPU Llama against a float64 PyTorch transcription of Hugging Face's
// LlamaForCausalLM (tests/golden/make_llama_golden.py, which writes
// tests/golden/llama_tiny.safetensors): logits, loss and every gradient, with grouped-query
// attention (4 query heads over 2 key/value heads), rotary embeddings and an ignored target.
//
// Errors are relative per tensor, ||got - want|| / ||want|| (L2 over the tensor), computed in
// double; each check prints its error as a fraction of its tolerance and the test ends with the
// worst one, as gpt2_golden_test does. The tolerances are GPT-2's (the reference is float64, so
// they bound spillway's fp32 arithmetic alone; measured: 4e-7 on the logits, 8e-7 on the
// grads). Real mistakes are far above them: RoPE on interleaved pairs (GPT-J's convention)
// instead of rotate_half makes 0.17 on the logits, query heads mapped to kv head h % NKV instead
// of h / (NH / NKV) makes 1.2.
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
#include "engine/model/llama.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/ops.h"

namespace spillway {
namespace {

constexpr double kLogitsTol = 1e-5;
constexpr double kLossTol = 1e-5;
constexpr double kGradTol = 1e-4;

const char kGoldenFile[] = "/tests/golden/llama_tiny.safetensors";

struct Check {
  std::string name;
  double error = 0.0;
  double tolerance = 0.0;
};

// Records relative errors and reports each against its tolerance.
class Checker {
 public:
  // ||got - want|| / ||want|| (absolute if want is all zero).
  void Compare(const std::string& name, std::span<const float> got, std::span<const float> want,
               double tolerance) {
    EXPECT_EQ(got.size(), want.size()) << name;
    double diff2 = 0.0, want2 = 0.0;
    for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
      const double d = static_cast<double>(got[i]) - want[i];
      diff2 += d * d;
      want2 += static_cast<double>(want[i]) * want[i];
    }
    const double error = want2 > 0.0 ? std::sqrt(diff2 / want2) : std::sqrt(diff2);
    checks_.push_back({name, error, tolerance});
    EXPECT_LE(error, tolerance) << name << ": relative error " << error << " > allowed "
                                << tolerance << " (" << error / tolerance << " of tolerance)";
  }

  void PrintSummary(const std::string& title) const {
    const Check* worst = nullptr;
    for (const Check& c : checks_) {
      std::printf("  %-44s rel err %.3e  tol %.0e  (%.3f of tol)%s\n", c.name.c_str(), c.error,
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
  int batch = 0;
};

absl::StatusOr<Golden> LoadGolden() {
  const char* source_dir = std::getenv("SPILLWAY_SOURCE_DIR");
  const std::string path = absl::StrCat(source_dir != nullptr ? source_dir : ".", kGoldenFile);
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  Golden g;
  g.file = std::make_unique<SafetensorsFile>(*std::move(file));
  g.model.type = "llama";
  const auto& meta = g.file->metadata();
  auto missing = [&](const char* key) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": metadata \"", key, "\" missing"));
  };
  auto get_int = [&](const char* key, int* out) -> absl::Status {
    auto it = meta.find(key);
    if (it == meta.end() || !absl::SimpleAtoi(it->second, out)) return missing(key);
    return absl::OkStatus();
  };
  auto get_double = [&](const char* key, double* out) -> absl::Status {
    auto it = meta.find(key);
    if (it == meta.end() || !absl::SimpleAtod(it->second, out)) return missing(key);
    return absl::OkStatus();
  };
  for (absl::Status s :
       {get_int("n_layer", &g.model.n_layer), get_int("n_head", &g.model.n_head),
        get_int("n_kv_head", &g.model.n_kv_head), get_int("d_model", &g.model.d_model),
        get_int("ffn_hidden", &g.model.ffn_hidden), get_int("seq_len", &g.model.seq_len),
        get_int("vocab_size", &g.model.vocab_size), get_int("batch", &g.batch),
        get_double("rope_theta", &g.model.rope_theta),
        get_double("rms_norm_eps", &g.model.rms_norm_eps)}) {
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

std::vector<const TensorSpec*> ModelTensors(const Llama& model) {
  std::vector<const TensorSpec*> out;
  for (int u = 0; u < model.num_units(); ++u) {
    for (const TensorSpec& t : model.unit(u).layout.tensors()) out.push_back(&t);
  }
  return out;
}

bool HasVocabRows(const TensorSpec& t) {
  return t.name == "embed_tokens.weight" || t.name == "lm_head.weight";
}

// Copies the reference parameters into the model (embed_tokens and lm_head: their first V
// rows; the padding rows are set to zero). Checks that the file and the model have the same
// tensors and shapes: the names map 1:1.
void LoadParams(const Golden& g, Llama& model) {
  const int V = g.model.vocab_size, C = g.model.d_model;
  int found = 0;
  for (const TensorSpec* t : ModelTensors(model)) {
    const SafetensorsTensorInfo* info = g.file->Find("param/" + t->name);
    ASSERT_NE(info, nullptr) << "the reference has no parameter " << t->name;
    ++found;
    std::vector<int64_t> want_shape = t->shape;
    if (HasVocabRows(*t)) {
      ASSERT_EQ(want_shape, (std::vector<int64_t>{model.padded_vocab(), C}));
      want_shape[0] = V;
    }
    ASSERT_EQ(info->shape, want_shape) << t->name;
    const std::vector<float> values = ReadFloat(*g.file, "param/" + t->name);
    float* p = model.FindParam(t->name);
    ASSERT_NE(p, nullptr) << t->name;
    std::copy(values.begin(), values.end(), p);
    if (HasVocabRows(*t)) std::fill(p + static_cast<size_t>(V) * C, p + t->numel, 0.0f);
  }
  int in_file = 0;
  for (const std::string& name : g.file->names()) in_file += name.starts_with("param/");
  EXPECT_EQ(found, in_file) << "the reference has parameters the model lacks";
}

class LlamaGoldenTest : public ::testing::TestWithParam<bool> {};

TEST_P(LlamaGoldenTest, MatchesPyTorchFloat64) {
  const bool checkpointing = GetParam();
  absl::StatusOr<Golden> golden = LoadGolden();
  ASSERT_TRUE(golden.ok()) << golden.status();
  const Golden& g = *golden;
  const int B = g.batch, T = g.model.seq_len, V = g.model.vocab_size, C = g.model.d_model;
  ASSERT_LT(g.model.n_kv_head, g.model.n_head) << "the reference should exercise GQA";

  absl::StatusOr<std::unique_ptr<kernels::Ops>> ops = kernels::CreateOps("cpu");
  ASSERT_TRUE(ops.ok()) << ops.status();
  absl::StatusOr<std::unique_ptr<Llama>> created =
      Llama::Create(g.model, B, checkpointing, ops->get());
  ASSERT_TRUE(created.ok()) << created.status();
  Llama& model = **created;
  const int Vp = model.padded_vocab();
  LoadParams(g, model);
  if (HasFatalFailure()) return;

  absl::StatusOr<std::vector<int32_t>> inputs = g.file->ReadInt32("inputs");
  absl::StatusOr<std::vector<int32_t>> targets = g.file->ReadInt32("targets");
  ASSERT_TRUE(inputs.ok()) << inputs.status();
  ASSERT_TRUE(targets.ok()) << targets.status();
  ASSERT_EQ(inputs->size(), static_cast<size_t>(B) * T);
  ASSERT_EQ(targets->size(), static_cast<size_t>(B) * T);
  ASSERT_NE(std::count(targets->begin(), targets->end(), -1), 0) << "an ignored target expected";

  Checker checker;
  model.ZeroGrads();
  const float loss = model.Forward(inputs->data(), targets->data());
  ASSERT_TRUE((*ops)->Synchronize().ok());
  std::vector<float> logits(static_cast<size_t>(B) * T * V);
  for (size_t row = 0; row < static_cast<size_t>(B) * T; ++row) {
    std::copy_n(model.logits() + row * Vp, V, logits.begin() + row * V);
  }
  checker.Compare("logits", logits, ReadFloat(*g.file, "logits"), kLogitsTol);
  checker.Compare("loss", std::span<const float>(&loss, 1), ReadFloat(*g.file, "loss"), kLossTol);

  model.Backward(1.0f);
  ASSERT_TRUE((*ops)->Synchronize().ok());
  for (const TensorSpec* t : ModelTensors(model)) {
    const float* grad = model.FindGrad(t->name);
    ASSERT_NE(grad, nullptr) << t->name;
    size_t n = t->numel;
    if (HasVocabRows(*t)) {
      n = static_cast<size_t>(V) * C;
      size_t nonzero = 0;
      for (size_t i = n; i < t->numel; ++i) nonzero += grad[i] != 0.0f;
      EXPECT_EQ(nonzero, 0u) << "gradient of " << t->name << "'s padding rows [" << V << ", " << Vp
                             << ") must be exactly 0";
    }
    checker.Compare("grad/" + t->name, std::span<const float>(grad, n),
                    ReadFloat(*g.file, "grad/" + t->name), kGradTol);
  }
  checker.PrintSummary(checkpointing ? "llama golden (activation checkpointing)" : "llama golden");
}

INSTANTIATE_TEST_SUITE_P(Checkpointing, LlamaGoldenTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "ActivationCheckpointing" : "Plain";
                         });

}  // namespace
}  // namespace spillway
