// The Unit layouts of GPT-2: "embed", "h.0" ... "h.{L-1}", "head" (see gpt2.h for names).
#pragma once

#include <vector>

#include "core/unit_layout.h"
#include "engine/config/config.h"

namespace spillway {

// Rows of wte: vocab_size rounded up to a multiple of 64, so the LM-head GEMM has aligned
// rows on every backend. The padding rows are zero and never trained.
int PaddedVocab(int vocab_size);

std::vector<UnitLayout> Gpt2Layouts(const ModelConfig& config);

}  // namespace spillway
