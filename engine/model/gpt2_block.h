// One GPT-2 transformer block (a Unit): forward and backward through kernels::Ops.
//
//   ln1 = LN(in); qkv = ln1 Wqkv^T + b; atty = attn(qkv); res2 = in + atty Wap^T + b
//   ln2 = LN(res2); fch = ln2 Wfc^T + b; fchg = gelu(fch); out = res2 + fchg Wfp^T + b
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/model/bf16_activations.h"
#include "kernels/ops.h"
#include "partitioner/unit_state.h"

namespace spillway {

struct BlockShape {
  int B, T, C, NH;
  size_t N() const { return static_cast<size_t>(B) * T; }
};

// Pointers to one block's tensors inside a flat buffer (params or grads) of its Unit.
struct BlockTensors {
  float *ln1_w, *ln1_b, *qkv_w, *qkv_b, *attproj_w, *attproj_b;
  float *ln2_w, *ln2_b, *fc_w, *fc_b, *fcproj_w, *fcproj_b;
  // The tensors of `unit` (a layout from Gpt2Layouts) inside `flat` (its params or grads).
  static BlockTensors In(const UnitLayout& unit, float* flat);
};

// The bf16 copies of a block's four GEMM weights and of the biases of its two projections with a
// bf16 output (kernels::MatmulParam::b16), or all null: the matmuls then round them themselves.
struct BlockWeightCopies {
  const uint16_t *qkv_w = nullptr, *attproj_w = nullptr, *fc_w = nullptr, *fcproj_w = nullptr;
  const uint16_t *qkv_b = nullptr, *fc_b = nullptr;
  // The copies inside `flat` (bf16 values laid out as the Unit's params; null: none).
  static BlockWeightCopies In(const UnitLayout& unit, const uint16_t* flat);
};

// What a block's backward needs from its forward, besides the block input. With `bf16`, ln1, qkv,
// atty, ln2, fch and fchg hold bf16 values (engine/model/bf16_activations.h), in half the floats.
struct BlockActivations {
  float* ln1;       // (N,C)
  float* ln1_mean;  // (N)
  float* ln1_rstd;  // (N)
  float* qkv;       // (N,3C)
  float* atty;      // (N,C)
  float* lse;       // (B,NH,T)
  float* res2;      // (N,C)
  float* ln2;       // (N,C)
  float* ln2_mean;  // (N)
  float* ln2_rstd;  // (N)
  float* fch;       // (N,4C)
  float* fchg;      // (N,4C)
  bool bf16;

  static size_t Floats(const BlockShape& s, bool bf16);
  // Carves the activations out of `base`, which holds Floats(s, bf16) floats.
  static BlockActivations Carve(float* base, const BlockShape& s, bool bf16);
};

// Scratch for a block's backward, shared by all blocks.
struct BlockGradScratch {
  // Each bf16 with `bf16` (Bf16Activations).
  float* dln;    // (N,C)
  float* datty;  // (N,C)
  float* dqkv;   // (N,3C)
  float* dfch;   // (N,4C): d GELU output, then d pre-activation (GELU's backward in place)
  // With bf16 (else empty): the residual stream's gradient's copies (GradCopies), written by the
  // LayerNorm backwards for the matmul backward after them, in this block or the one below.
  float* dres16;     // (N,C) bf16
  float* dres_sums;  // (C)
  bool bf16;

  GradCopies dres_copies() const { return {dres16, dres_sums}; }

  static size_t Floats(const BlockShape& s, bool bf16);
  static BlockGradScratch Carve(float* base, const BlockShape& s, bool bf16);
};

// in, out: (N,C). Fills `acts`. w16: bf16 copies of w's GEMM weights (or none).
void BlockForward(kernels::Ops& ops, const BlockShape& s, const BlockTensors& w,
                  const BlockWeightCopies& w16, const float* in, float* out,
                  const BlockActivations& acts);

// dres (N,C): on entry d loss / d out, on return d loss / d in. Parameter gradients are
// accumulated into `dw`. dres_copied: scratch.dres_copies() hold the entering dres's (bf16 only);
// on return they hold those of the returned dres (with bf16).
void BlockBackward(kernels::Ops& ops, const BlockShape& s, const BlockTensors& w,
                   const BlockWeightCopies& w16, const BlockTensors& dw, const float* in,
                   const BlockActivations& acts, const BlockGradScratch& scratch, float* dres,
                   bool dres_copied);

}  // namespace spillway
