#include "engine/model/llama_block.h"

#include <string>

namespace spillway {
namespace {

// Calls f(pointer, floats) for every buffer of a set, in carving order.
template <typename F>
void ForEachBuffer(LlamaBlockActivations& a, const LlamaBlockShape& s, F f) {
  const size_t N = s.N(), C = s.C, lse = static_cast<size_t>(s.B) * s.NH * s.T;
  f(a.ln1, N * C);
  f(a.ln1_rstd, N);
  f(a.qkv, N * s.QKV());
  f(a.atty, N * C);
  f(a.lse, lse);
  f(a.res2, N * C);
  f(a.ln2, N * C);
  f(a.ln2_rstd, N);
  f(a.gu, N * 2 * s.F);
  f(a.act, N * s.F);
}

template <typename F>
void ForEachBuffer(LlamaBlockGradScratch& g, const LlamaBlockShape& s, F f) {
  const size_t N = s.N(), C = s.C;
  f(g.dln, N * C);
  f(g.datty, N * C);
  f(g.dqkv, N * s.QKV());
  f(g.dgu, N * 2 * s.F);
  f(g.dact, N * s.F);
}

// Points every buffer of `set` into `base` (null: only counts), each on a 64-byte boundary.
// Returns the floats used.
template <typename Set>
size_t CarveSet(Set& set, const LlamaBlockShape& s, float* base) {
  size_t total = 0;
  ForEachBuffer(set, s, [&](float*& p, size_t n) {
    p = base == nullptr ? nullptr : base + total;
    total += (n + 15) / 16 * 16;
  });
  return total;
}

}  // namespace

LlamaBlockTensors LlamaBlockTensors::In(const UnitLayout& unit, float* flat) {
  const std::string prefix = unit.name() + ".";
  auto at = [&](const char* name) { return flat + unit.Find(prefix + name)->offset; };
  return LlamaBlockTensors{at("input_layernorm.weight"),  at("self_attn.q_proj.weight"),
                           at("self_attn.o_proj.weight"), at("post_attention_layernorm.weight"),
                           at("mlp.gate_proj.weight"),    at("mlp.down_proj.weight")};
}

size_t LlamaBlockActivations::Floats(const LlamaBlockShape& s) {
  LlamaBlockActivations a{};
  return CarveSet(a, s, nullptr);
}

LlamaBlockActivations LlamaBlockActivations::Carve(float* base, const LlamaBlockShape& s) {
  LlamaBlockActivations a{};
  CarveSet(a, s, base);
  return a;
}

size_t LlamaBlockGradScratch::Floats(const LlamaBlockShape& s) {
  LlamaBlockGradScratch g{};
  return CarveSet(g, s, nullptr);
}

LlamaBlockGradScratch LlamaBlockGradScratch::Carve(float* base, const LlamaBlockShape& s) {
  LlamaBlockGradScratch g{};
  CarveSet(g, s, base);
  return g;
}

void LlamaBlockForward(kernels::Ops& ops, const LlamaBlockShape& s, const LlamaBlockTensors& w,
                       const float* in, float* out, const LlamaBlockActivations& a) {
  const int N = static_cast<int>(s.N()), C = s.C, F = s.F;
  ops.RmsNormForward(a.ln1, a.ln1_rstd, in, w.ln1_w, s.eps, N, C);
  ops.MatmulForward(a.qkv, a.ln1, w.qkv_w, nullptr, nullptr, N, C, s.QKV());
  ops.RopeForward(a.qkv, s.B, s.T, s.NH, s.NKV, s.hs, s.theta);
  ops.GqaAttentionForward(a.atty, a.lse, a.qkv, s.B, s.T, s.NH, s.NKV, s.hs);
  ops.MatmulForward(a.res2, a.atty, w.o_w, nullptr, in, N, C, C);
  ops.RmsNormForward(a.ln2, a.ln2_rstd, a.res2, w.ln2_w, s.eps, N, C);
  ops.MatmulForward(a.gu, a.ln2, w.gu_w, nullptr, nullptr, N, C, 2 * F);
  ops.SwiGluForward(a.act, a.gu, N, F);
  ops.MatmulForward(out, a.act, w.down_w, nullptr, a.res2, N, F, C);
}

void LlamaBlockBackward(kernels::Ops& ops, const LlamaBlockShape& s, const LlamaBlockTensors& w,
                        const LlamaBlockTensors& dw, const float* in,
                        const LlamaBlockActivations& a, const LlamaBlockGradScratch& g,
                        float* dres) {
  const int N = static_cast<int>(s.N()), C = s.C, F = s.F;
  // MLP: dres is d out = d down_proj output, and flows on to res2 unchanged.
  ops.MatmulBackward(g.dact, dw.down_w, nullptr, dres, a.act, w.down_w, N, F, C);
  ops.SwiGluBackward(g.dgu, g.dact, a.gu, N, F);
  ops.MatmulBackward(g.dln, dw.gu_w, nullptr, g.dgu, a.ln2, w.gu_w, N, C, 2 * F);
  ops.RmsNormBackward(dres, dw.ln2_w, g.dln, a.res2, w.ln2_w, a.ln2_rstd, N, C);
  // Attention: dres is now d res2 = d o_proj output, and flows on to `in` unchanged.
  ops.MatmulBackward(g.datty, dw.o_w, nullptr, dres, a.atty, w.o_w, N, C, C);
  ops.GqaAttentionBackward(g.dqkv, g.datty, a.qkv, a.atty, a.lse, s.B, s.T, s.NH, s.NKV, s.hs);
  ops.RopeBackward(g.dqkv, s.B, s.T, s.NH, s.NKV, s.hs, s.theta);
  ops.MatmulBackward(g.dln, dw.qkv_w, nullptr, g.dqkv, a.ln1, w.qkv_w, N, C, s.QKV());
  ops.RmsNormBackward(dres, dw.ln1_w, g.dln, in, w.ln1_w, a.ln1_rstd, N, C);
}

}  // namespace spillway
