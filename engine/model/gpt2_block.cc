#include "engine/model/gpt2_block.h"

#include <string>

#include "engine/model/bf16_activations.h"

namespace spillway {
namespace {

// Calls f(pointer, floats) for every buffer of a set, in carving order.
template <typename F>
void ForEachBuffer(BlockActivations& a, const BlockShape& s, F f) {
  const size_t N = s.N(), C = s.C, lse = static_cast<size_t>(s.B) * s.NH * s.T;
  auto b16 = [&](size_t n) { return Bf16Activations::Floats(n, a.bf16); };
  f(a.ln1, b16(N * C));
  f(a.ln1_mean, N);
  f(a.ln1_rstd, N);
  f(a.qkv, b16(N * 3 * C));
  f(a.atty, b16(N * C));
  f(a.lse, lse);
  f(a.res2, N * C);
  f(a.ln2, b16(N * C));
  f(a.ln2_mean, N);
  f(a.ln2_rstd, N);
  f(a.fch, b16(N * 4 * C));
  f(a.fchg, b16(N * 4 * C));
}

template <typename F>
void ForEachBuffer(BlockGradScratch& g, const BlockShape& s, F f) {
  const size_t N = s.N(), C = s.C;
  auto b16 = [&](size_t n) { return Bf16Activations::Floats(n, g.bf16); };
  f(g.dln, b16(N * C));
  f(g.datty, b16(N * C));
  f(g.dqkv, b16(N * 3 * C));
  f(g.dfch, b16(N * 4 * C));
  f(g.dres16, g.bf16 ? b16(N * C) : 0);
  f(g.dres_sums, g.bf16 ? s.C : 0);
}

// Points every buffer of `set` into `base` (null: only counts), each on a 64-byte boundary.
// Returns the floats used.
template <typename Set>
size_t CarveSet(Set& set, const BlockShape& s, float* base) {
  size_t total = 0;
  ForEachBuffer(set, s, [&](float*& p, size_t n) {
    p = base == nullptr ? nullptr : base + total;
    total += (n + 15) / 16 * 16;
  });
  return total;
}

// The block's tensor `name` ("ln_1.weight", ...) in `unit`.
const TensorSpec& BlockTensor(const UnitLayout& unit, const char* name) {
  const std::string& p = unit.tensors().front().name;  // "h.{i}.ln_1.weight"
  const std::string prefix = p.substr(0, p.size() - std::string("ln_1.weight").size());
  return *unit.Find(prefix + name);
}

}  // namespace

BlockTensors BlockTensors::In(const UnitLayout& unit, float* flat) {
  auto at = [&](const char* name) { return flat + BlockTensor(unit, name).offset; };
  return BlockTensors{at("ln_1.weight"),      at("ln_1.bias"),          at("attn.c_attn.weight"),
                      at("attn.c_attn.bias"), at("attn.c_proj.weight"), at("attn.c_proj.bias"),
                      at("ln_2.weight"),      at("ln_2.bias"),          at("mlp.c_fc.weight"),
                      at("mlp.c_fc.bias"),    at("mlp.c_proj.weight"),  at("mlp.c_proj.bias")};
}

BlockWeightCopies BlockWeightCopies::In(const UnitLayout& unit, const uint16_t* flat) {
  if (flat == nullptr) return {};
  auto at = [&](const char* name) { return flat + BlockTensor(unit, name).offset; };
  return {at("attn.c_attn.weight"), at("attn.c_proj.weight"), at("mlp.c_fc.weight"),
          at("mlp.c_proj.weight"),  at("attn.c_attn.bias"),   at("mlp.c_fc.bias")};
}

size_t BlockActivations::Floats(const BlockShape& s, bool bf16) {
  BlockActivations a{};
  a.bf16 = bf16;
  return CarveSet(a, s, nullptr);
}

BlockActivations BlockActivations::Carve(float* base, const BlockShape& s, bool bf16) {
  BlockActivations a{};
  a.bf16 = bf16;
  CarveSet(a, s, base);
  return a;
}

size_t BlockGradScratch::Floats(const BlockShape& s, bool bf16) {
  BlockGradScratch g{};
  g.bf16 = bf16;
  return CarveSet(g, s, nullptr);
}

BlockGradScratch BlockGradScratch::Carve(float* base, const BlockShape& s, bool bf16) {
  BlockGradScratch g{};
  g.bf16 = bf16;
  CarveSet(g, s, base);
  return g;
}

void BlockForward(kernels::Ops& ops, const BlockShape& s, const BlockTensors& w,
                  const BlockWeightCopies& w16, const float* in, float* out,
                  const BlockActivations& a) {
  const int N = static_cast<int>(s.N()), C = s.C;
  const Bf16Activations act16(ops, a.bf16);  // ln1, qkv, atty, ln2, fch, fchg
  act16.LayerNormForward(a.ln1, a.ln1_mean, a.ln1_rstd, in, w.ln1_w, w.ln1_b, N, C);
  act16.ProjectionForward(a.qkv, a.ln1, {w.qkv_w, w16.qkv_w}, {w.qkv_b, w16.qkv_b}, N, C, 3 * C);
  act16.AttentionForward(a.atty, a.lse, a.qkv, s.B, s.T, C, s.NH);
  act16.MatmulForward(a.res2, a.atty, {w.attproj_w, w16.attproj_w}, w.attproj_b, in, N, C, C);
  act16.LayerNormForward(a.ln2, a.ln2_mean, a.ln2_rstd, a.res2, w.ln2_w, w.ln2_b, N, C);
  act16.ProjectionGeluForward(a.fchg, a.fch, a.ln2, {w.fc_w, w16.fc_w}, {w.fc_b, w16.fc_b}, N, C,
                              4 * C);
  act16.MatmulForward(out, a.fchg, {w.fcproj_w, w16.fcproj_w}, w.fcproj_b, a.res2, N, 4 * C, C);
}

void BlockBackward(kernels::Ops& ops, const BlockShape& s, const BlockTensors& w,
                   const BlockWeightCopies& w16, const BlockTensors& dw, const float* in,
                   const BlockActivations& a, const BlockGradScratch& g, float* dres,
                   bool dres_copied) {
  const int N = static_cast<int>(s.N()), C = s.C;
  const Bf16Activations act16(ops, a.bf16);
  const GradCopies copies = g.dres_copies();
  const GradCopies* dres_copies = g.bf16 ? &copies : nullptr;
  // MLP: dres is d out = d fcproj, and flows on to res2 unchanged; dfch is d pre-activation.
  act16.MatmulGeluBackward(g.dfch, dw.fcproj_w, dw.fcproj_b, dres, a.fchg, a.fch,
                           {w.fcproj_w, w16.fcproj_w}, N, 4 * C, C,
                           dres_copied ? dres_copies : nullptr);
  act16.ProjectionBackward(g.dln, dw.fc_w, dw.fc_b, g.dfch, a.ln2, {w.fc_w, w16.fc_w}, N, C, 4 * C);
  act16.LayerNormBackward(dres, dw.ln2_w, dw.ln2_b, g.dln, a.res2, w.ln2_w, a.ln2_mean, a.ln2_rstd,
                          N, C, dres_copies);
  // Attention: dres is now d res2 = d attproj, and flows on to `in` unchanged.
  act16.MatmulBackward(g.datty, dw.attproj_w, dw.attproj_b, dres, a.atty,
                       {w.attproj_w, w16.attproj_w}, N, C, C, dres_copies);
  float* qkv_b =
      act16.AttentionBackward(g.dqkv, dw.qkv_b, g.datty, a.qkv, a.atty, a.lse, s.B, s.T, C, s.NH);
  act16.ProjectionBackward(g.dln, dw.qkv_w, qkv_b, g.dqkv, a.ln1, {w.qkv_w, w16.qkv_w}, N, C,
                           3 * C);
  act16.LayerNormBackward(dres, dw.ln1_w, dw.ln1_b, g.dln, in, w.ln1_w, a.ln1_mean, a.ln1_rstd, N,
                          C, dres_copies);
}

}  // namespace spillway
