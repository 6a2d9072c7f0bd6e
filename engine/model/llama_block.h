// One Llama decoder layer (a Unit): forward and backward through kernels::Ops.
//
//   ln1 = RMSNorm(in); qkv = ln1 [Wq; Wk; Wv]^T; RoPE on q, k; atty = GQA(qkv)
//   res2 = in + atty Wo^T; ln2 = RMSNorm(res2); gu = ln2 [Wgate; Wup]^T
//   act = silu(gate) * up; out = res2 + act Wdown^T
// No biases. qkv uses the GQA layout of kernels/ops.h, so the stacked q/k/v_proj weights are
// one (QKV, C) matrix; gate/up_proj stacked are one (2F, C) matrix (llama_layout.h keeps them
// adjacent).
#pragma once

#include <cstddef>

#include "core/unit_layout.h"
#include "kernels/ops.h"

namespace spillway {

struct LlamaBlockShape {
  int B, T, C, NH, NKV, hs, F;
  float eps;     // RMSNorm
  double theta;  // RoPE
  size_t N() const { return static_cast<size_t>(B) * T; }
  int QKV() const { return (NH + 2 * NKV) * hs; }
};

// Pointers to one layer's tensors inside a flat buffer (params or grads) of its Unit.
struct LlamaBlockTensors {
  float* ln1_w;   // input_layernorm (C)
  float* qkv_w;   // q_proj, k_proj, v_proj stacked: (QKV, C)
  float* o_w;     // o_proj (C, NH*hs)
  float* ln2_w;   // post_attention_layernorm (C)
  float* gu_w;    // gate_proj, up_proj stacked: (2F, C)
  float* down_w;  // down_proj (C, F)
  // The tensors of `unit` (a layer layout from LlamaLayouts) inside `flat`.
  static LlamaBlockTensors In(const UnitLayout& unit, float* flat);
};

// What a layer's backward needs from its forward, besides the layer input.
struct LlamaBlockActivations {
  float* ln1;       // (N,C)
  float* ln1_rstd;  // (N)
  float* qkv;       // (N,QKV), after RoPE
  float* atty;      // (N,C)
  float* lse;       // (B,NH,T)
  float* res2;      // (N,C)
  float* ln2;       // (N,C)
  float* ln2_rstd;  // (N)
  float* gu;        // (N,2F)
  float* act;       // (N,F)

  static size_t Floats(const LlamaBlockShape& s);
  // Carves the activations out of `base`, which holds Floats(s) floats.
  static LlamaBlockActivations Carve(float* base, const LlamaBlockShape& s);
};

// Scratch for a layer's backward, shared by all layers.
struct LlamaBlockGradScratch {
  float* dln;    // (N,C)
  float* datty;  // (N,C)
  float* dqkv;   // (N,QKV)
  float* dgu;    // (N,2F)
  float* dact;   // (N,F)

  static size_t Floats(const LlamaBlockShape& s);
  static LlamaBlockGradScratch Carve(float* base, const LlamaBlockShape& s);
};

// in, out: (N,C). Fills `acts`.
void LlamaBlockForward(kernels::Ops& ops, const LlamaBlockShape& s, const LlamaBlockTensors& w,
                       const float* in, float* out, const LlamaBlockActivations& acts);

// dres (N,C): on entry d loss / d out, on return d loss / d in. Parameter gradients are
// accumulated into `dw`.
void LlamaBlockBackward(kernels::Ops& ops, const LlamaBlockShape& s, const LlamaBlockTensors& w,
                        const LlamaBlockTensors& dw, const float* in,
                        const LlamaBlockActivations& acts, const LlamaBlockGradScratch& scratch,
                        float* dres);

}  // namespace spillway
