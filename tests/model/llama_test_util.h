// Shared set-up for the Llama model tests: a tiny Llama with grouped-query attention.
#pragma once

#include "engine/config/config.h"

namespace spillway::testing_util {

inline ModelConfig TinyLlama() {
  ModelConfig m;
  m.type = "llama";
  m.n_layer = 2;
  m.n_head = 4;
  m.n_kv_head = 2;  // two query heads per key/value head
  m.d_model = 16;   // head size 4
  m.ffn_hidden = 24;
  m.seq_len = 8;
  m.vocab_size = 37;     // padded to 64: the padding rows are exercised
  m.init_std = 0.2;      // large enough that gradients stand well above finite-difference noise
  m.rope_theta = 100.0;  // with T = 8, angles of every size: every frequency matters
  m.rms_norm_eps = 1e-5;
  return m;
}

}  // namespace spillway::testing_util
