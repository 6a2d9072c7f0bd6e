// The Unit layouts of Llama: "embed", "layers.0" ... "layers.{L-1}", "head" (see llama.h for the
// tensor names), and the model's derived sizes.
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "core/unit_layout.h"
#include "engine/config/config.h"

namespace spillway {

// The sizes a Llama config implies, with the defaults of ModelConfig resolved.
struct LlamaDims {
  int C = 0;    // d_model (hidden_size)
  int NH = 0;   // query heads
  int NKV = 0;  // key/value heads
  int hs = 0;   // head size, C / NH
  int F = 0;    // SwiGLU width (intermediate_size)
  int Vp = 0;   // vocab_size padded to a multiple of 64 (PaddedVocab, as GPT-2)
  int QKV() const { return (NH + 2 * NKV) * hs; }  // width of the fused q,k,v projection
};

LlamaDims LlamaDimsOf(const ModelConfig& config);

// OK, or InvalidArgument naming the model key at fault: positive sizes, d_model % n_head == 0,
// n_head % n_kv_head == 0, an even head size (RoPE rotates pairs), and sizes that keep q_proj,
// k_proj, v_proj (and gate_proj, up_proj) back to back in the Unit's buffer, so that each group
// is multiplied as one GEMM: d_model * head size and d_model * ffn_hidden multiples of 16
// (UnitLayout::kAlignElems).
absl::Status ValidateLlamaConfig(const ModelConfig& config);

// Layouts in Unit order. Within "layers.{i}", q/k/v_proj and gate/up_proj are adjacent in this
// order, so that the stacked (QKV, C) and (2F, C) matrices start at q_proj and gate_proj.
std::vector<UnitLayout> LlamaLayouts(const ModelConfig& config);

}  // namespace spillway
