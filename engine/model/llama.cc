#include "engine/model/llama.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/rng.h"
#include "core/status.h"
#include "engine/model/llama_block.h"
#include "engine/model/llama_layout.h"
#include "engine/model/residual_stream.h"

namespace spillway {
namespace {

LlamaBlockShape ShapeOf(const ModelConfig& config, int batch) {
  const LlamaDims d = LlamaDimsOf(config);
  return LlamaBlockShape{batch,
                         config.seq_len,
                         d.C,
                         d.NH,
                         d.NKV,
                         d.hs,
                         d.F,
                         static_cast<float>(config.rms_norm_eps),
                         config.rope_theta};
}

// Floats of each activation buffer, for one micro-batch shape and checkpointing choice.
struct ActivationPlan {
  size_t residual, blocks, head, backward, token_bytes;
  size_t per_block, block_sets;
  size_t NC, Na;  // (N,C) and (N) rounded up to 16 floats, the head's carving unit

  static ActivationPlan For(const ModelConfig& config, int batch, bool checkpointing) {
    const LlamaBlockShape s = ShapeOf(config, batch);
    const size_t N = s.N(), C = s.C, L = config.n_layer;
    const size_t Vp = LlamaDimsOf(config).Vp;
    ActivationPlan p;
    p.NC = (N * C + 15) / 16 * 16;
    p.Na = (N + 15) / 16 * 16;
    p.residual = (L + 1) * N * C;
    p.per_block = LlamaBlockActivations::Floats(s);
    p.block_sets = checkpointing ? 1 : L;
    p.blocks = p.block_sets * p.per_block;
    p.head = p.NC + 2 * p.Na + N * Vp;  // final norm, its rstd, losses, logits
    p.backward = p.NC + LlamaBlockGradScratch::Floats(s);
    p.token_bytes = 2 * N * sizeof(int32_t);
    return p;
  }
  size_t bytes() const {
    return (residual + blocks + head + backward) * sizeof(float) + token_bytes;
  }
};

// The stacked matrices of a layer (llama_block.h) need q/k/v_proj and gate/up_proj adjacent.
absl::Status CheckStacked(const UnitLayout& unit) {
  const std::string p = unit.name() + ".";
  for (const auto& group :
       {std::vector<std::string>{"self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                 "self_attn.v_proj.weight"},
        std::vector<std::string>{"mlp.gate_proj.weight", "mlp.up_proj.weight"}}) {
    for (size_t i = 1; i < group.size(); ++i) {
      const TensorSpec* prev = unit.Find(p + group[i - 1]);
      const TensorSpec* next = unit.Find(p + group[i]);
      if (prev->offset + prev->numel != next->offset) {
        return absl::InternalError(absl::StrCat("Llama layout: ", next->name, " does not follow ",
                                                prev->name,
                                                " (ValidateLlamaConfig should have said)"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

// Activation memory, planned once for (B, T), as Gpt2's: the residual stream (L+1) x (N,C)
// (the Unit inputs that checkpointing keeps), one set of layer activations per layer (or one
// shared set with checkpointing), the head's, and one backward scratch.
struct Llama::Impl {
  bool checkpointing = false;
  LlamaBlockShape shape{};
  ResidualStream residual;
  Buffer block_buf, head_buf, grad_buf, token_buf;

  std::vector<LlamaBlockActivations> acts;
  float *norm, *norm_rstd, *logits, *losses;
  float* dres;  // (N,C): gradient along the residual stream
  LlamaBlockGradScratch scratch{};
  int32_t *inputs, *targets;  // (N) each
  size_t valid_targets = 0;

  const LlamaBlockActivations& ActsOf(int layer) const { return acts[checkpointing ? 0 : layer]; }
};

Llama::Llama(const ModelConfig& config, int batch, kernels::Ops* ops)
    : Model(config, batch, LlamaDimsOf(config).Vp, ops) {}

Llama::~Llama() = default;

absl::StatusOr<std::unique_ptr<Llama>> Llama::Create(
    const ModelConfig& config, int batch, bool activation_checkpointing, kernels::Ops* ops,
    const ShardingPlan& sharding, bool offload_checkpoints, std::span<const int> held_units) {
  SPW_RETURN_IF_ERROR(ValidateLlamaConfig(config));
  if (batch < 1) return absl::InvalidArgumentError("Llama: the micro-batch must be >= 1 rows");
  auto model = std::unique_ptr<Llama>(new Llama(config, batch, ops));
  const Tier tier = ops->memory_tier();
  std::vector<UnitLayout> layouts = LlamaLayouts(config);
  for (const UnitLayout& layout : layouts) {
    if (layout.name().starts_with("layers.")) SPW_RETURN_IF_ERROR(CheckStacked(layout));
  }
  SPW_RETURN_IF_ERROR(model->AddUnits(std::move(layouts), sharding, held_units));

  auto impl = std::make_unique<Impl>();
  impl->checkpointing = activation_checkpointing;
  if (offload_checkpoints && !activation_checkpointing) {
    return absl::InvalidArgumentError(
        "offloading activation checkpoints needs activation checkpointing");
  }
  const LlamaBlockShape s = ShapeOf(config, batch);
  impl->shape = s;
  const size_t N = s.N(), C = s.C;
  const size_t F = sizeof(float);
  const ActivationPlan plan = ActivationPlan::For(config, batch, activation_checkpointing);

  SPW_ASSIGN_OR_RETURN(impl->residual,
                       ResidualStream::Create(config.n_layer, N * C, *ops, offload_checkpoints));
  SPW_ASSIGN_OR_RETURN(impl->block_buf,
                       Buffer::Allocate(plan.blocks * F, tier, "layer activations"));
  for (size_t i = 0; i < plan.block_sets; ++i) {
    impl->acts.push_back(
        LlamaBlockActivations::Carve(impl->block_buf.as<float>() + i * plan.per_block, s));
  }
  SPW_ASSIGN_OR_RETURN(impl->head_buf, Buffer::Allocate(plan.head * F, tier, "head activations"));
  float* h = impl->head_buf.as<float>();
  impl->norm = h;
  impl->norm_rstd = h + plan.NC;
  impl->losses = h + plan.NC + plan.Na;
  impl->logits = h + plan.NC + 2 * plan.Na;
  SPW_ASSIGN_OR_RETURN(impl->grad_buf,
                       Buffer::Allocate(plan.backward * F, tier, "backward scratch"));
  impl->dres = impl->grad_buf.as<float>();
  impl->scratch = LlamaBlockGradScratch::Carve(impl->grad_buf.as<float>() + plan.NC, s);
  SPW_ASSIGN_OR_RETURN(impl->token_buf, Buffer::Allocate(plan.token_bytes, tier, "tokens"));
  impl->inputs = impl->token_buf.as<int32_t>();
  impl->targets = impl->inputs + N;

  model->impl_ = std::move(impl);
  return model;
}

absl::Status Llama::InitParams(uint64_t seed) {
  return InitUnitsParallel([&](int u, std::span<float> host) {
    Rng rng(seed, static_cast<uint64_t>(u));
    for (const TensorSpec& t : units_[u].layout.tensors()) {
      float* p = host.data() + t.offset;
      if (t.shape.size() == 1) {  // RMSNorm weights
        for (size_t i = 0; i < t.numel; ++i) p[i] = 1.0f;
        continue;
      }
      // The padding rows of embed_tokens and lm_head stay zero.
      const bool vocab_rows = t.name == "embed_tokens.weight" || t.name == "lm_head.weight";
      const size_t rows = vocab_rows ? config_.vocab_size : t.shape[0];
      for (size_t i = 0; i < rows * t.shape[1]; ++i) {
        p[i] = static_cast<float>(config_.init_std * rng.Normal());
      }
    }
  });
}

void Llama::ForwardUnits(int first, int end, const int32_t* inputs, const int32_t* targets,
                         const float* input, double* loss_sum) {
  Impl& m = *impl_;
  const LlamaBlockShape& s = m.shape;
  const int N = static_cast<int>(s.N()), C = s.C, L = config_.n_layer;
  const bool with_head = end == L + 2;
  if (first == 0) ops_->CopyToBackend(m.inputs, inputs, s.N() * sizeof(int32_t));
  if (with_head) ops_->CopyToBackend(m.targets, targets, s.N() * sizeof(int32_t));

  BeginPass(UnitResidency::Pass::kForward);
  m.residual.BeginForward();
  if (first == 0) {
    UnitState& embed = units_[0];
    AcquireParams(0);
    ops_->EmbeddingForward(m.residual.at(0), m.inputs, embed.param(embed.layout.tensors()[0]),
                           nullptr, s.B, s.T, C);
    ReleaseParams(0);
  } else {
    CopyInBackend(m.residual.at(first - 1), input, s.N() * C);
  }
  for (int u = std::max(first, 1); u < std::min(end, L + 1); ++u) {
    const int l = u - 1;
    UnitState& unit = units_[u];
    AcquireParams(u);
    m.residual.ForwardBlock(l);
    LlamaBlockForward(*ops_, s, LlamaBlockTensors::In(unit.layout, unit.live_params),
                      m.residual.at(l), m.residual.at(l + 1), m.ActsOf(l));
    ReleaseParams(u);
  }
  if (!with_head) return;
  UnitState& head = units_[L + 1];
  const TensorSpec& norm_w = head.layout.tensors()[0];
  const TensorSpec& lm_head = head.layout.tensors()[1];
  AcquireParams(L + 1);
  ops_->RmsNormForward(m.norm, m.norm_rstd, m.residual.at(L), head.param(norm_w), s.eps, N, C);
  ops_->MatmulForward(m.logits, m.norm, head.param(lm_head), nullptr, nullptr, N, C, Vp_);
  ReleaseParams(L + 1);
  ops_->CrossEntropy(m.losses, m.logits, m.targets, N, config_.vocab_size, Vp_, 0.0f);

  m.valid_targets = CountValidTargets(targets, s.N());
  ops_->AddMean(loss_sum, m.losses, s.N(), m.valid_targets);
}

void Llama::RunBackwardUnits(int first, int end, float loss_scale, bool last_micro_batch,
                             const float* output_grad) {
  Impl& m = *impl_;
  const LlamaBlockShape& s = m.shape;
  const int N = static_cast<int>(s.N()), C = s.C, L = config_.n_layer;
  const size_t NC = s.N() * C;

  BeginPass(UnitResidency::Pass::kBackward, last_micro_batch);
  if (end == L + 2) {
    UnitState& head = units_[L + 1];
    const TensorSpec& norm_w = head.layout.tensors()[0];
    const TensorSpec& lm_head = head.layout.tensors()[1];
    AcquireParams(L + 1);
    AcquireGrads(L + 1);
    if (m.valid_targets == 0) {
      ops_->Fill(m.logits, 0.0f, s.N() * Vp_);
    } else {
      ops_->CrossEntropy(m.losses, m.logits, m.targets, N, config_.vocab_size, Vp_,
                         loss_scale / static_cast<float>(m.valid_targets));
    }
    float* dnorm = m.scratch.dln;
    ops_->MatmulBackward(dnorm, head.grad(lm_head), nullptr, m.logits, m.norm, head.param(lm_head),
                         N, C, Vp_);
    ops_->Fill(m.dres, 0.0f, NC);
    ops_->RmsNormBackward(m.dres, head.grad(norm_w), dnorm, m.residual.at(L), head.param(norm_w),
                          m.norm_rstd, N, C);
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
    const LlamaBlockTensors w = LlamaBlockTensors::In(unit.layout, unit.live_params);
    const LlamaBlockTensors dw = LlamaBlockTensors::In(unit.layout, unit.live_grads);
    m.residual.BackwardBlock(l);
    if (m.checkpointing) {
      // Recompute this layer's activations from its kept input. The recomputed output is
      // written over residual[l + 1], which holds exactly the same values.
      LlamaBlockForward(*ops_, s, w, m.residual.at(l), m.residual.at(l + 1), m.ActsOf(l));
    }
    LlamaBlockBackward(*ops_, s, w, dw, m.residual.at(l), m.ActsOf(l), m.scratch, m.dres);
    ReleaseGrads(u);
    ReleaseParams(u);
  }
  if (first == 0) {
    // The embedding's backward reads no parameters.
    UnitState& embed = units_[0];
    AcquireGrads(0);
    ops_->EmbeddingBackward(embed.grad(embed.layout.tensors()[0]), nullptr, m.dres, m.inputs, s.B,
                            s.T, C);
    ReleaseGrads(0);
  }
}

const float* Llama::UnitsOutput(int end) const { return impl_->residual.at(end - 1); }

const float* Llama::InputGrad() const { return impl_->dres; }

size_t Llama::param_count() const {
  size_t n = 0;
  for (const UnitState& unit : units_) n += unit.layout.param_count();
  // The padding rows of embed_tokens and lm_head are not parameters.
  return n - 2 * static_cast<size_t>(Vp_ - config_.vocab_size) * config_.d_model;
}

size_t Llama::activation_bytes() const {
  const ActivationPlan plan = ActivationPlan::For(config_, B_, impl_->checkpointing);
  return plan.bytes() - plan.residual * sizeof(float) + impl_->residual.backend_bytes();
}

size_t Llama::PlannedActivationBytes(const ModelConfig& config, int batch,
                                     bool activation_checkpointing) {
  return ActivationPlan::For(config, batch, activation_checkpointing).bytes();
}

std::string Llama::Describe() const {
  const LlamaDims d = LlamaDimsOf(config_);
  return absl::StrCat("Llama, ", config_.n_layer, " layers, ", d.NH, " heads (", d.NKV,
                      " key/value), d_model ", d.C, ", ffn_hidden ", d.F);
}

const float* Llama::logits() const { return impl_->logits; }

}  // namespace spillway
