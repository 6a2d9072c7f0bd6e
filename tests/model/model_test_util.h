// Shared set-up for the model tests: a tiny GPT-2 and a random batch.
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "engine/config/config.h"

namespace spillway::testing_util {

inline ModelConfig TinyModel() {
  ModelConfig m;
  m.n_layer = 2;
  m.n_head = 2;
  m.d_model = 16;
  m.seq_len = 8;
  m.vocab_size = 37;  // padded to 64: the padding rows are exercised
  m.init_std = 0.2;   // large enough that gradients stand well above finite-difference noise
  return m;
}

inline std::vector<int32_t> RandomTokens(size_t n, int vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> tokens(n);
  for (int32_t& t : tokens) t = static_cast<int32_t>(rng.Below(vocab));
  return tokens;
}

}  // namespace spillway::testing_util
