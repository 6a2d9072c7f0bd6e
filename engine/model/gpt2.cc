#include "engine/model/gpt2.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/rng.h"
#include "core/status.h"
#include "engine/model/bf16_activations.h"
#include "engine/model/gpt2_block.h"
#include "engine/model/gpt2_layout.h"
#include "engine/model/residual_stream.h"

namespace spillway {

// Floats of each activation buffer, for one micro-batch shape and checkpointing choice.
struct ActivationPlan {
  size_t residual, blocks, head, backward, token_bytes;
  size_t per_block, block_sets;
  size_t NC, Na;  // (N,C) and (N) rounded up to 16 floats, the head's carving unit
  size_t lnf;     // the final LayerNorm's output (bf16 with bf16 activations), rounded likewise

  // bf16: Bf16Activations::Enabled for this shape.
  static ActivationPlan For(const ModelConfig& config, int batch, bool checkpointing, bool bf16) {
    const BlockShape s{batch, config.seq_len, config.d_model, config.n_head};
    const size_t N = s.N(), C = s.C, L = config.n_layer, Vp = PaddedVocab(config.vocab_size);
    ActivationPlan p;
    p.NC = (N * C + 15) / 16 * 16;
    p.Na = (N + 15) / 16 * 16;
    p.lnf = (Bf16Activations::Floats(N * C, bf16) + 15) / 16 * 16;
    p.residual = (L + 1) * N * C;
    p.per_block = BlockActivations::Floats(s, bf16);
    p.block_sets = checkpointing ? 1 : L;
    p.blocks = p.block_sets * p.per_block;
    p.head = p.lnf + 3 * p.Na + Bf16Activations::Floats(N * Vp, bf16);
    p.backward = p.NC + BlockGradScratch::Floats(s, bf16);
    p.token_bytes = 2 * N * sizeof(int32_t);
    return p;
  }
  size_t bytes() const {
    return (residual + blocks + head + backward) * sizeof(float) + token_bytes;
  }
};

// Activation memory, planned once for (B, T). Residual stream: the embedding output and each
// block's output, (L+1) x (N,C); these are the Unit inputs that checkpointing keeps. Block
// activations: one set per block, or a single set reused by every block when checkpointing
// (each block's forward is then recomputed from its input inside the backward).
struct Gpt2::Impl {
  bool checkpointing = false;
  bool bf16 = false;  // Bf16Activations::Enabled at creation
  BlockShape shape{};
  ResidualStream residual;
  Buffer block_buf, head_buf, grad_buf, token_buf;
  // bf16 copies of the Units' parameters (KeepsWeightCopies, engine/model/model.h): each Unit's
  // UnitState::weight_copy points into it, or is null where the Unit has none.
  Buffer weight_copies;

  std::vector<BlockActivations> acts;
  float *lnf, *lnf_mean, *lnf_rstd, *logits, *losses;
  float* dres;  // (N,C): gradient along the residual stream
  BlockGradScratch scratch{};
  int32_t *inputs, *targets;  // (N) each
  size_t valid_targets = 0;
  // The forward wrote the loss's gradient over the logits (ForwardBackward, some target valid).
  bool logits_hold_gradient = false;

  const BlockActivations& ActsOf(int block) const { return acts[checkpointing ? 0 : block]; }
};

Gpt2::Gpt2(const ModelConfig& config, int batch, kernels::Ops* ops)
    : Model(config, batch, PaddedVocab(config.vocab_size), ops) {}

Gpt2::~Gpt2() = default;

absl::StatusOr<std::unique_ptr<Gpt2>> Gpt2::Create(const ModelConfig& config, int batch,
                                                   bool activation_checkpointing, kernels::Ops* ops,
                                                   const ShardingPlan& sharding,
                                                   bool offload_checkpoints,
                                                   std::span<const int> held_units) {
  if (config.n_layer < 1 || config.n_head < 1 || config.d_model % config.n_head != 0 ||
      config.seq_len < 1 || config.vocab_size < 2 || batch < 1) {
    return absl::InvalidArgumentError("model shape is invalid (ParseConfig should have said)");
  }
  auto model = std::unique_ptr<Gpt2>(new Gpt2(config, batch, ops));
  const Tier tier = ops->memory_tier();
  SPW_RETURN_IF_ERROR(model->AddUnits(Gpt2Layouts(config), sharding, held_units));

  auto impl = std::make_unique<Impl>();
  impl->checkpointing = activation_checkpointing;
  if (offload_checkpoints && !activation_checkpointing) {
    return absl::InvalidArgumentError(
        "offloading activation checkpoints needs activation checkpointing");
  }
  const BlockShape s{batch, config.seq_len, config.d_model, config.n_head};
  impl->shape = s;
  const size_t N = s.N(), C = s.C;
  const size_t F = sizeof(float);
  impl->bf16 =
      Bf16Activations::Enabled(ops->matmul_precision(), static_cast<int>(N), static_cast<int>(C));
  const ActivationPlan plan =
      ActivationPlan::For(config, batch, activation_checkpointing, impl->bf16);

  SPW_ASSIGN_OR_RETURN(impl->residual,
                       ResidualStream::Create(config.n_layer, N * C, *ops, offload_checkpoints));
  SPW_ASSIGN_OR_RETURN(impl->block_buf,
                       Buffer::Allocate(plan.blocks * F, tier, "block activations"));
  for (size_t i = 0; i < plan.block_sets; ++i) {
    impl->acts.push_back(
        BlockActivations::Carve(impl->block_buf.as<float>() + i * plan.per_block, s, impl->bf16));
  }
  SPW_ASSIGN_OR_RETURN(impl->head_buf, Buffer::Allocate(plan.head * F, tier, "head activations"));
  float* h = impl->head_buf.as<float>();
  impl->lnf = h;
  impl->lnf_mean = h + plan.lnf;
  impl->lnf_rstd = h + plan.lnf + plan.Na;
  impl->losses = h + plan.lnf + 2 * plan.Na;
  impl->logits = h + plan.lnf + 3 * plan.Na;
  SPW_ASSIGN_OR_RETURN(impl->grad_buf,
                       Buffer::Allocate(plan.backward * F, tier, "backward scratch"));
  impl->dres = impl->grad_buf.as<float>();
  impl->scratch = BlockGradScratch::Carve(impl->grad_buf.as<float>() + plan.NC, s, impl->bf16);
  SPW_ASSIGN_OR_RETURN(impl->token_buf, Buffer::Allocate(plan.token_bytes, tier, "tokens"));
  impl->inputs = impl->token_buf.as<int32_t>();
  impl->targets = impl->inputs + N;

  if (KeepsWeightCopies(config, batch, ops->matmul_precision())) {
    std::vector<size_t> elements(model->num_units(), 0);
    size_t total = 0;
    for (int u = 0; u < model->num_units(); ++u) {
      const UnitState& unit = model->unit(u);
      if (model->holds(u) && !unit.params_sharded()) elements[u] = WeightCopyElements(unit.layout);
      total += elements[u];
    }
    SPW_ASSIGN_OR_RETURN(impl->weight_copies,
                         Buffer::Allocate(total * sizeof(uint16_t), tier, "bf16 weight copies"));
    uint16_t* next = impl->weight_copies.as<uint16_t>();
    for (int u = 0; u < model->num_units(); ++u) {
      if (elements[u] > 0) model->units_[u].weight_copy = next;
      next += elements[u];
    }
  }

  model->impl_ = std::move(impl);
  return model;
}

void Gpt2::RoundWeightCopies(int u) {
  UnitState& unit = units_[u];
  if (unit.weight_copy == nullptr || unit.weight_copy_current) return;  // AdamW wrote it
  ops_->RoundToBf16(unit.weight_copy, unit.live_params, unit.numel());
}

kernels::MatmulParam Gpt2::Weight(int u, const TensorSpec& t) {
  const uint16_t* copy = units_[u].weight_copy;
  return {units_[u].param(t), copy != nullptr ? copy + t.offset : nullptr};
}

absl::Status Gpt2::InitParams(uint64_t seed) {
  const double residual_std = config_.init_std / std::sqrt(2.0 * config_.n_layer);
  return InitUnitsParallel([&](int u, std::span<float> host) {
    Rng rng(seed, static_cast<uint64_t>(u));
    for (const TensorSpec& t : units_[u].layout.tensors()) {
      float* p = host.data() + t.offset;
      const bool is_norm_weight =
          t.name.find("ln_") != std::string::npos && t.name.ends_with(".weight");
      if (is_norm_weight) {
        for (size_t i = 0; i < t.numel; ++i) p[i] = 1.0f;
      } else if (t.shape.size() == 2) {
        const bool residual_proj = t.name.ends_with("c_proj.weight");
        const double std = residual_proj ? residual_std : config_.init_std;
        // wte's padding rows stay zero.
        const size_t rows = t.name == "wte" ? config_.vocab_size : t.shape[0];
        for (size_t i = 0; i < rows * t.shape[1]; ++i)
          p[i] = static_cast<float>(std * rng.Normal());
      }
    }
  });
}

void Gpt2::ForwardUnits(int first, int end, const int32_t* inputs, const int32_t* targets,
                        const float* input, double* loss_sum) {
  Impl& m = *impl_;
  const BlockShape& s = m.shape;
  const int N = static_cast<int>(s.N()), C = s.C, L = config_.n_layer;
  const bool with_head = end == L + 2;
  const bool with_embed = first == 0 || with_head;  // the tied head reads wte
  if (first == 0) ops_->CopyToBackend(m.inputs, inputs, s.N() * sizeof(int32_t));
  if (with_head) ops_->CopyToBackend(m.targets, targets, s.N() * sizeof(int32_t));

  BeginPass(UnitResidency::Pass::kForward);
  UnitState& embed = units_[0];
  const TensorSpec& wte = *embed.layout.Find("wte");
  const TensorSpec& wpe = *embed.layout.Find("wpe");
  if (with_embed) AcquireParams(0);
  if (with_head) RoundWeightCopies(0);  // wte, for the head
  m.residual.BeginForward();
  if (first == 0) {
    ops_->EmbeddingForward(m.residual.at(0), m.inputs, embed.param(wte), embed.param(wpe), s.B, s.T,
                           C);
  } else {
    CopyInBackend(m.residual.at(first - 1), input, s.N() * C);
  }
  for (int u = std::max(first, 1); u < std::min(end, L + 1); ++u) {
    const int l = u - 1;
    UnitState& unit = units_[u];
    AcquireParams(u);
    RoundWeightCopies(u);
    m.residual.ForwardBlock(l);
    BlockForward(*ops_, s, BlockTensors::In(unit.layout, unit.live_params),
                 BlockWeightCopies::In(unit.layout, unit.weight_copy), m.residual.at(l),
                 m.residual.at(l + 1), m.ActsOf(l));
    ReleaseParams(u);
  }
  if (!with_head) {
    if (with_embed) ReleaseParams(0);
    return;
  }
  UnitState& head = units_[L + 1];
  AcquireParams(L + 1);
  const Bf16Activations act16(*ops_, m.bf16);  // lnf
  act16.LayerNormForward(m.lnf, m.lnf_mean, m.lnf_rstd, m.residual.at(L),
                         head.param(head.layout.tensors()[0]), head.param(head.layout.tensors()[1]),
                         N, C);
  act16.ProjectionForward(m.logits, m.lnf, Weight(0, wte), nullptr, N, C, Vp_);
  ReleaseParams(L + 1);
  ReleaseParams(0);
  // Before a backward (ForwardBackward), the loss's pass writes its gradient too.
  m.valid_targets = CountValidTargets(targets, s.N());
  m.logits_hold_gradient = backward_loss_scale_.has_value() && m.valid_targets > 0;
  const float dlogits_scale =
      m.logits_hold_gradient ? *backward_loss_scale_ / static_cast<float>(m.valid_targets) : 0.0f;
  act16.CrossEntropy(m.losses, m.logits, m.targets, N, config_.vocab_size, Vp_, dlogits_scale);
  ops_->AddMean(loss_sum, m.losses, s.N(), m.valid_targets);
}

void Gpt2::RunBackwardUnits(int first, int end, float loss_scale, bool last_micro_batch,
                            const float* output_grad) {
  Impl& m = *impl_;
  const BlockShape& s = m.shape;
  const int N = static_cast<int>(s.N()), C = s.C, L = config_.n_layer;
  const size_t NC = s.N() * C;
  const bool with_head = end == L + 2;
  const bool with_embed = first == 0 || with_head;

  UnitState& embed = units_[0];
  UnitState& head = units_[L + 1];
  const TensorSpec& wte = *embed.layout.Find("wte");
  const TensorSpec& wpe = *embed.layout.Find("wpe");

  BeginPass(UnitResidency::Pass::kBackward, last_micro_batch);
  // The tied head needs the embedding Unit from its backward to the embedding's.
  if (with_embed) AcquireParams(0);
  if (with_head) AcquireParams(L + 1);
  if (with_head && params_change_before_backward_) RoundWeightCopies(0);
  if (with_embed) AcquireGrads(0);
  bool dres_copied = false;  // m.scratch.dres_copies() hold m.dres's (BlockBackward)
  if (with_head) {
    const TensorSpec& lnf_w = head.layout.tensors()[0];
    const TensorSpec& lnf_b = head.layout.tensors()[1];
    AcquireGrads(L + 1);
    const Bf16Activations act16(*ops_, m.bf16);
    // ForwardBackward's forward wrote the gradient already, with this loss_scale.
    if (!std::exchange(m.logits_hold_gradient, false)) {
      if (m.valid_targets == 0) {
        ops_->Fill(m.logits, 0.0f, Bf16Activations::Floats(s.N() * Vp_, m.bf16));  // bf16 0: 0 bits
      } else {
        act16.CrossEntropy(m.losses, m.logits, m.targets, N, config_.vocab_size, Vp_,
                           loss_scale / static_cast<float>(m.valid_targets));
      }
    }
    // Tied LM head: the logits' weight gradient lands in the embedding Unit's dwte.
    float* dlnf = m.scratch.dln;
    act16.ProjectionBackward(dlnf, embed.grad(wte), nullptr, m.logits, m.lnf, Weight(0, wte), N, C,
                             Vp_);
    ops_->Fill(m.dres, 0.0f, NC);
    const GradCopies dres_copies = m.scratch.dres_copies();
    act16.LayerNormBackward(m.dres, head.grad(lnf_w), head.grad(lnf_b), dlnf, m.residual.at(L),
                            head.param(lnf_w), m.lnf_mean, m.lnf_rstd, N, C,
                            m.bf16 ? &dres_copies : nullptr);
    dres_copied = m.bf16;
    ReleaseGrads(L + 1);
    ReleaseParams(L + 1);
  } else {
    CopyInBackend(m.dres, output_grad, NC);
  }

  for (int u = std::min(end, L + 1) - 1; u >= std::max(first, 1); --u) {
    const int l = u - 1;
    UnitState& unit = units_[u];
    AcquireParams(u);
    AcquireGrads(u);
    if (params_change_before_backward_) RoundWeightCopies(u);
    const BlockTensors w = BlockTensors::In(unit.layout, unit.live_params);
    const BlockWeightCopies w16 = BlockWeightCopies::In(unit.layout, unit.weight_copy);
    const BlockTensors dw = BlockTensors::In(unit.layout, unit.live_grads);
    m.residual.BackwardBlock(l);
    if (m.checkpointing) {
      // Recompute this block's activations from its kept input. The recomputed output is
      // written over residual[l + 1], which holds exactly the same values.
      BlockForward(*ops_, s, w, w16, m.residual.at(l), m.residual.at(l + 1), m.ActsOf(l));
    }
    BlockBackward(*ops_, s, w, w16, dw, m.residual.at(l), m.ActsOf(l), m.scratch, m.dres,
                  dres_copied);
    dres_copied = m.bf16;
    ReleaseGrads(u);
    ReleaseParams(u);
  }
  if (first == 0) {
    ops_->EmbeddingBackward(embed.grad(wte), embed.grad(wpe), m.dres, m.inputs, s.B, s.T, C);
  }
  if (with_embed) {
    ReleaseGrads(0);
    ReleaseParams(0);
  }
}

const float* Gpt2::UnitsOutput(int end) const { return impl_->residual.at(end - 1); }

const float* Gpt2::InputGrad() const { return impl_->dres; }

size_t Gpt2::param_count() const {
  size_t n = 0;
  for (const UnitState& unit : units_) n += unit.layout.param_count();
  // wte's padding rows are not parameters.
  return n - static_cast<size_t>(Vp_ - config_.vocab_size) * config_.d_model;
}

size_t Gpt2::activation_bytes() const {
  const ActivationPlan plan = ActivationPlan::For(config_, B_, impl_->checkpointing, impl_->bf16);
  return plan.bytes() - plan.residual * sizeof(float) + impl_->residual.backend_bytes();
}

size_t Gpt2::weight_copy_bytes() const { return impl_->weight_copies.bytes(); }

size_t Gpt2::PlannedActivationBytes(const ModelConfig& config, int batch,
                                    bool activation_checkpointing,
                                    kernels::MatmulPrecision precision) {
  const bool bf16 = Bf16Activations::Enabled(precision, batch * config.seq_len, config.d_model);
  return ActivationPlan::For(config, batch, activation_checkpointing, bf16).bytes();
}

std::string Gpt2::Describe() const {
  return absl::StrCat("GPT-2, ", config_.n_layer, " layers, ", config_.n_head, " heads, d_model ",
                      config_.d_model);
}

const float* Gpt2::logits() const { return impl_->logits; }

}  // namespace spillway
