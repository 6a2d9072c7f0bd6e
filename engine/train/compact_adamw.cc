#include "engine/train/compact_adamw.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/safetensors.h"
#include "core/status.h"
#include "engine/train/progress.h"
#include "kernels/cpu/compact_adam.h"
#include "kernels/cpu/quant8.h"

namespace spillway {
namespace {

using Dtype = OptimizerConfig::StateDtype;
using kernels::cpu::kQuantBlock;
using kernels::cpu::Quant8Code;

size_t MomentBytes(Dtype dtype) {
  return dtype == Dtype::kFp32 ? sizeof(float) : dtype == Dtype::kBf16 ? sizeof(uint16_t) : 1;
}

size_t Blocks(size_t n) { return (n + kQuantBlock - 1) / kQuantBlock; }

}  // namespace

absl::StatusOr<std::unique_ptr<CompactAdamW>> CompactAdamW::Create(const Config& config,
                                                                   Model& model, Tier tier) {
  const Dtype dtype = config.optimizer.state_dtype;
  const bool bf16_master = config.optimizer.bf16_master;
  auto state = std::unique_ptr<CompactAdamW>(new CompactAdamW(dtype, bf16_master, tier));
  for (int u = 0; u < model.num_units(); ++u) {
    const UnitState& unit = model.unit(u);
    const std::string name = unit.layout.name();
    UnitArrays a;
    a.numel = unit.optimizer_numel();
    size_t blocks = 0;
    ForEachTensorPart(unit, unit.update_begin(), unit.update_end(),
                      [&](const TensorSpec& t, size_t begin, size_t end) {
                        const size_t j = unit.optimizer_index(begin);
                        a.parts.push_back({j, j + (end - begin), blocks, t.weight_decay});
                        blocks += Blocks(end - begin);
                      });
    const size_t master_bytes = bf16_master ? sizeof(uint16_t) : sizeof(float);
    SPW_ASSIGN_OR_RETURN(a.master, Buffer::Allocate(a.numel * master_bytes, tier,
                                                    absl::StrCat(name, " master parameters")));
    if (bf16_master) {
      SPW_ASSIGN_OR_RETURN(a.comp, Buffer::Allocate(a.numel * sizeof(uint16_t), tier,
                                                    absl::StrCat(name, " Kahan compensation")));
    }
    SPW_ASSIGN_OR_RETURN(
        a.m, Buffer::Allocate(a.numel * MomentBytes(dtype), tier, absl::StrCat(name, " Adam m")));
    SPW_ASSIGN_OR_RETURN(
        a.v, Buffer::Allocate(a.numel * MomentBytes(dtype), tier, absl::StrCat(name, " Adam v")));
    if (dtype == Dtype::kInt8 && blocks > 0) {
      SPW_ASSIGN_OR_RETURN(a.m_scale, Buffer::Allocate(blocks * sizeof(float), tier,
                                                       absl::StrCat(name, " Adam m scales")));
      SPW_ASSIGN_OR_RETURN(a.v_scale, Buffer::Allocate(blocks * sizeof(float), tier,
                                                       absl::StrCat(name, " Adam v scales")));
    }
    state->units_.push_back(std::move(a));
  }
  return state;
}

absl::Status CompactAdamW::StepUnit(int u, UnitState& unit, const OptimizerConfig& opt,
                                    kernels::AdamWParams p) {
  UnitArrays& a = units_[u];
  float* grads = unit.offload_grads.as<float>();
  for (const Part& part : a.parts) {
    p.weight_decay = part.decay ? static_cast<float>(opt.weight_decay) : 0.0f;
    const size_t j = part.begin, n = part.end - part.begin;
    if (bf16_master_) {
      uint16_t* master = a.master.as<uint16_t>() + j;
      kernels::cpu::AdamWBf16Master(master, a.comp.as<uint16_t>() + j, grads + j,
                                    a.m.as<float>() + j, a.v.as<float>() + j, n, p);
      for (size_t i = 0; i < n; ++i) grads[j + i] = Bf16ToFloat(master[i]);
      continue;
    }
    float* master = a.master.as<float>() + j;
    if (dtype_ == Dtype::kBf16) {
      kernels::cpu::AdamWBf16State(master, grads + j, a.m.as<uint16_t>() + j,
                                   a.v.as<uint16_t>() + j, n, p);
    } else if (dtype_ == Dtype::kInt8) {
      kernels::cpu::AdamW8bitState(master, grads + j, a.m.as<uint8_t>() + j,
                                   a.m_scale.as<float>() + part.first_block, a.v.as<uint8_t>() + j,
                                   a.v_scale.as<float>() + part.first_block, n, p);
    } else {
      return absl::InternalError("CompactAdamW with fp32 master and moments");
    }
    std::memcpy(grads + j, master, n * sizeof(float));
  }
  return absl::OkStatus();
}

absl::Status CompactAdamW::WriteMaster(int u, const float* src) {
  UnitArrays& a = units_[u];
  if (!bf16_master_) {
    std::memcpy(a.master.data(), src, a.numel * sizeof(float));
    return absl::OkStatus();
  }
  uint16_t* master = a.master.as<uint16_t>();
  for (size_t i = 0; i < a.numel; ++i) master[i] = FloatToBf16(src[i]);
  std::memset(a.comp.data(), 0, a.comp.bytes());
  return absl::OkStatus();
}

absl::Status CompactAdamW::ReadMoment(int u, Moment moment, float* dst) {
  UnitArrays& a = units_[u];
  const Buffer& codes = moment == kExpAvg ? a.m : a.v;
  switch (dtype_) {
    case Dtype::kFp32:
      std::memcpy(dst, codes.data(), a.numel * sizeof(float));
      return absl::OkStatus();
    case Dtype::kBf16:
      for (size_t i = 0; i < a.numel; ++i) dst[i] = Bf16ToFloat(codes.as<uint16_t>()[i]);
      return absl::OkStatus();
    case Dtype::kInt8:
      break;
  }
  std::memset(dst, 0, a.numel * sizeof(float));
  const Quant8Code kind = moment == kExpAvg ? Quant8Code::kSigned : Quant8Code::kUnsigned;
  const float* scales = (moment == kExpAvg ? a.m_scale : a.v_scale).as<float>();
  for (const Part& part : a.parts) {
    for (size_t b = 0; part.begin + b * kQuantBlock < part.end; ++b) {
      const size_t first = part.begin + b * kQuantBlock;
      kernels::cpu::Quant8DecodeBlock(kind, codes.as<uint8_t>() + first,
                                      scales[part.first_block + b], dst + first,
                                      std::min(kQuantBlock, part.end - first));
    }
  }
  return absl::OkStatus();
}

absl::Status CompactAdamW::WriteMoment(int u, Moment moment, const float* src) {
  UnitArrays& a = units_[u];
  Buffer& codes = moment == kExpAvg ? a.m : a.v;
  switch (dtype_) {
    case Dtype::kFp32:
      std::memcpy(codes.data(), src, a.numel * sizeof(float));
      return absl::OkStatus();
    case Dtype::kBf16:
      for (size_t i = 0; i < a.numel; ++i) codes.as<uint16_t>()[i] = FloatToBf16(src[i]);
      return absl::OkStatus();
    case Dtype::kInt8:
      break;
  }
  const Quant8Code kind = moment == kExpAvg ? Quant8Code::kSigned : Quant8Code::kUnsigned;
  float* scales = (moment == kExpAvg ? a.m_scale : a.v_scale).as<float>();
  for (const Part& part : a.parts) {
    for (size_t b = 0; part.begin + b * kQuantBlock < part.end; ++b) {
      const size_t first = part.begin + b * kQuantBlock;
      scales[part.first_block + b] = kernels::cpu::Quant8EncodeBlock(
          kind, src + first, codes.as<uint8_t>() + first, std::min(kQuantBlock, part.end - first));
    }
  }
  return absl::OkStatus();
}

size_t CompactAdamW::bytes() const {
  size_t total = 0;
  for (const UnitArrays& a : units_) {
    total += a.master.bytes() + a.comp.bytes() + a.m.bytes() + a.v.bytes() + a.m_scale.bytes() +
             a.v_scale.bytes();
  }
  return total;
}

std::string CompactAdamW::Describe() const {
  const char* moments = dtype_ == Dtype::kBf16   ? "bf16"
                        : dtype_ == Dtype::kInt8 ? "8-bit block-wise"
                                                 : "fp32";
  return absl::StrFormat(
      "compact optimizer state in %s memory: %s (%s master parameters%s, %s Adam m and v)",
      TierName(tier_), FormatBytes(static_cast<double>(bytes())), bf16_master_ ? "bf16" : "fp32",
      bf16_master_ ? " with a bf16 Kahan compensation" : "", moments);
}

}  // namespace spillway
