// The correspondence between spillway's tensors and a Hugging Face model's, per architecture,
// as data: one table of rules per model_type. Adding an architecture is adding a table.
//
// A rule maps one of spillway's tensor names, with "{i}" standing for a layer index, to the
// Hugging Face name (without the base model's prefix, e.g. "transformer." for GPT-2, which
// HfArchitecture::base_prefix holds) and says how the data differs:
//   - kTranspose: HF stores the matrix transposed (GPT-2's Conv1D is (in, out); ours (out, in));
//   - vocab_rows: our tensor has PaddedVocab(V) rows, HF's V; the extra rows are zero;
//   - position_rows: a position table; our model may use its first rows only (seq_len below
//     n_positions).
// HF tensors that are not parameters (GPT-2's attention-mask buffers) are listed to be skipped.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace spillway {

enum class HfLayout { kSame, kTranspose };

struct HfTensorRule {
  const char* ours;  // e.g. "h.{i}.attn.c_attn.weight"
  const char* hf;    // e.g. "h.{i}.attn.c_attn.weight" (base_prefix added unless top_level)
  HfLayout layout = HfLayout::kSame;
  bool vocab_rows = false;
  bool position_rows = false;
  bool top_level = false;  // outside the base model (e.g. "lm_head.weight")
  // When the head is tied and the file has no such tensor: read this HF name instead.
  const char* tied_to = nullptr;
};

struct HfArchitecture {
  const char* model_type;    // config.json "model_type"
  const char* architecture;  // config.json "architectures"[0] written on export
  const char* base_prefix;   // "transformer." or "model."
  std::vector<HfTensorRule> rules;
  std::vector<const char*> skipped;  // HF names ("{i}" allowed) that carry no parameters
};

// The table for `model_type` ("gpt2", "llama"), or InvalidArgument listing the known ones;
// `source` (a file path) starts the message.
absl::StatusOr<const HfArchitecture*> FindHfArchitecture(absl::string_view model_type,
                                                         absl::string_view source);

// One of our tensors, resolved against a table.
struct HfTensorName {
  std::string hf;  // full HF name, base prefix included
  const HfTensorRule* rule = nullptr;
  std::string tied_to;  // full HF name to fall back to, or empty
};

// The rule for our tensor `ours` ("h.3.ln_1.weight"), or InvalidArgument naming it.
absl::StatusOr<HfTensorName> ToHfName(const HfArchitecture& arch, absl::string_view ours);

// True if the HF tensor `hf` (full name) carries no parameters under `arch`.
bool IsSkippedHfTensor(const HfArchitecture& arch, absl::string_view hf);

// The shape HF stores for our tensor of shape `ours`: transposed or with V rows by the rule.
std::vector<int64_t> HfShape(const HfTensorRule& rule, const std::vector<int64_t>& ours,
                             int vocab_size);

}  // namespace spillway
