#include "engine/train/compact_adamw.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/safetensors.h"
#include "core/status.h"
#include "engine/train/progress.h"
#include "kernels/cpu/compact_adam.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/quant8.h"
#include "partitioner/offload_split.h"

namespace spillway {
namespace {

using Dtype = OptimizerConfig::StateDtype;
using kernels::cpu::kQuantBlock;
using kernels::cpu::Quant8Code;

size_t MomentBytes(Dtype dtype) {
  return dtype == Dtype::kFp32 ? sizeof(float) : dtype == Dtype::kBf16 ? sizeof(uint16_t) : 1;
}

size_t Blocks(size_t n) { return (n + kQuantBlock - 1) / kQuantBlock; }

constexpr const char* kArrayNames[] = {
    "master parameters", "Kahan compensation", "Adam m", "Adam v",
    "Adam m scales",     "Adam v scales"};

}  // namespace

absl::StatusOr<std::unique_ptr<CompactAdamW>> CompactAdamW::Create(const Config& config,
                                                                   Model& model, Tier tier,
                                                                   int rank) {
  const Dtype dtype = config.optimizer.state_dtype;
  const bool bf16_master = config.optimizer.bf16_master;
  auto state = std::unique_ptr<CompactAdamW>(new CompactAdamW(dtype, bf16_master, tier));
  // offload_optimizer.nvme_ratio: the last Units' state on NVMe, the first Units' in memory.
  std::vector<size_t> numels;
  for (int u = 0; u < model.num_units(); ++u) numels.push_back(model.unit(u).numel());
  const int first_nvme = config.zero.optimizer_nvme
                             ? FirstOffloadedUnit(numels, config.zero.nvme_ratio)
                             : model.num_units();
  // Units whose optimizer stays in the backend (offload_optimizer.ratio) take no space here.
  auto offloaded = [&](int u) { return model.unit(u).optimizer_offloaded(); };
  uint64_t file_bytes = 0;
  std::array<size_t, kArrays> largest{};
  for (int u = 0; u < model.num_units(); ++u) {
    const UnitState& unit = model.unit(u);
    UnitInfo info;
    info.numel = offloaded(u) ? unit.optimizer_numel() : 0;
    info.on_nvme = u >= first_nvme && offloaded(u);
    size_t blocks = 0;
    if (offloaded(u)) {
      ForEachTensorPart(unit, unit.update_begin(), unit.update_end(),
                        [&](const TensorSpec& t, size_t begin, size_t end) {
                          const size_t j = unit.optimizer_index(begin);
                          info.parts.push_back({j, j + (end - begin), blocks, t.weight_decay});
                          blocks += Blocks(end - begin);
                        });
    }
    info.bytes[kMaster] = info.numel * (bf16_master ? sizeof(uint16_t) : sizeof(float));
    info.bytes[kComp] = bf16_master ? info.numel * sizeof(uint16_t) : 0;
    info.bytes[kM] = info.bytes[kV] = info.numel * MomentBytes(dtype);
    info.bytes[kMScale] = info.bytes[kVScale] = dtype == Dtype::kInt8 ? blocks * sizeof(float) : 0;
    for (int k = 0; k < kArrays && info.on_nvme; ++k) {
      info.offset[k] = file_bytes;
      file_bytes += RoundUpToNvmeAlignment(info.bytes[k]);
      largest[k] = std::max<size_t>(largest[k], RoundUpToNvmeAlignment(info.bytes[k]));
    }
    Arrays arrays;  // empty for a Unit on NVMe
    if (!info.on_nvme) {
      for (int k = 0; k < kArrays; ++k) {
        SPW_ASSIGN_OR_RETURN(
            arrays[k], Buffer::Allocate(info.bytes[k], tier,
                                        absl::StrCat(unit.layout.name(), " ", kArrayNames[k])));
      }
    }
    state->memory_.push_back(std::move(arrays));
    state->units_.push_back(std::move(info));
  }
  if (file_bytes == 0) return state;  // no Unit on NVMe
  state->settle_writes_ = config.zero.param_nvme;
  const IoOptions io = NvmeIoOptions(config);
  absl::Status created = [&]() -> absl::Status {
    SPW_ASSIGN_OR_RETURN(state->engine_, CreateIoEngine(io));
    static std::atomic<int> next_file = 0;
    SPW_ASSIGN_OR_RETURN(state->file_, state->engine_->CreateFile(
                                           absl::StrCat("optimizer.rank", rank, ".", next_file++),
                                           std::max<uint64_t>(file_bytes, kNvmeAlignment)));
    return absl::OkStatus();
  }();
  if (!created.ok()) return Annotate(created, "zero_optimization.offload_optimizer.nvme_path");
  for (Slot& slot : state->slots_) {
    for (int k = 0; k < kArrays; ++k) {
      SPW_ASSIGN_OR_RETURN(
          slot.arrays[k],
          Buffer::Allocate(largest[k], tier, absl::StrCat("NVMe staging of ", kArrayNames[k])));
    }
  }
  return state;
}

CompactAdamW::~CompactAdamW() {
  if (engine_ != nullptr) engine_->WaitAll().IgnoreError();
  file_.reset();
}

absl::Status CompactAdamW::Settle(Slot& slot) {
  if (slot.tickets.empty()) return absl::OkStatus();
  const auto start = std::chrono::steady_clock::now();
  absl::Status status;
  for (IoEngine::Ticket t : slot.tickets) status.Update(engine_->Wait(t));
  slot.tickets.clear();
  io_wait_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!status.ok()) slot.unit = -1;  // its contents are undefined
  return status;
}

absl::Status CompactAdamW::SubmitReads(Slot& slot, int u) {
  slot.unit = u;
  const UnitInfo& info = units_[u];
  for (int k = 0; k < kArrays; ++k) {
    if (info.bytes[k] == 0) continue;
    absl::StatusOr<IoEngine::Ticket> t = engine_->SubmitRead(
        *file_, info.offset[k], slot.arrays[k].span().first(RoundUpToNvmeAlignment(info.bytes[k])));
    if (!t.ok()) {
      slot.unit = -1;
      return t.status();
    }
    slot.tickets.push_back(*t);
    bytes_read_ += RoundUpToNvmeAlignment(info.bytes[k]);
  }
  return absl::OkStatus();
}

absl::StatusOr<CompactAdamW::Arrays*> CompactAdamW::Acquire(int u) {
  if (!units_[u].on_nvme) return &memory_[u];
  Slot& slot = slots_[u % slots_.size()];
  SPW_RETURN_IF_ERROR(Settle(slot));
  if (slot.unit != u) {
    SPW_RETURN_IF_ERROR(SubmitReads(slot, u));
    SPW_RETURN_IF_ERROR(Settle(slot));
  }
  if (u + 1 < static_cast<int>(units_.size()) && units_[u + 1].on_nvme) {
    Slot& next = slots_[(u + 1) % slots_.size()];
    if (next.unit != u + 1) {
      SPW_RETURN_IF_ERROR(Settle(next));  // Unit u-2's writes
      SPW_RETURN_IF_ERROR(SubmitReads(next, u + 1));
    }
  }
  return &slot.arrays;
}

absl::Status CompactAdamW::Release(int u, bool changed) {
  if (!units_[u].on_nvme || !changed) return absl::OkStatus();
  Slot& slot = slots_[u % slots_.size()];
  const UnitInfo& info = units_[u];
  for (int k = 0; k < kArrays; ++k) {
    if (info.bytes[k] == 0) continue;
    absl::StatusOr<IoEngine::Ticket> t = engine_->SubmitWrite(
        *file_, info.offset[k], slot.arrays[k].span().first(RoundUpToNvmeAlignment(info.bytes[k])));
    if (!t.ok()) {
      slot.unit = -1;
      return t.status();
    }
    slot.tickets.push_back(*t);
    bytes_written_ += RoundUpToNvmeAlignment(info.bytes[k]);
  }
  return settle_writes_ ? Settle(slot) : absl::OkStatus();
}

absl::Status CompactAdamW::StepUnit(int u, UnitState& unit, const OptimizerConfig& opt,
                                    kernels::AdamWParams p) {
  SPW_ASSIGN_OR_RETURN(Arrays * arrays, Acquire(u));
  const auto start = std::chrono::steady_clock::now();
  Arrays& a = *arrays;
  float* grads = unit.offload_grads_data();
  for (const Part& part : units_[u].parts) {
    p.weight_decay = part.decay ? static_cast<float>(opt.weight_decay) : 0.0f;
    const size_t j = part.begin, n = part.end - part.begin;
    if (bf16_master_) {
      uint16_t* master = a[kMaster].as<uint16_t>() + j;
      kernels::cpu::AdamWBf16Master(master, a[kComp].as<uint16_t>() + j, grads + j,
                                    a[kM].as<float>() + j, a[kV].as<float>() + j, n, p);
      for (size_t i = 0; i < n; ++i) grads[j + i] = Bf16ToFloat(master[i]);
      continue;
    }
    float* master = a[kMaster].as<float>() + j;
    if (dtype_ == Dtype::kBf16) {
      kernels::cpu::AdamWBf16State(master, grads + j, a[kM].as<uint16_t>() + j,
                                   a[kV].as<uint16_t>() + j, n, p);
    } else if (dtype_ == Dtype::kInt8) {
      kernels::cpu::AdamW8bitState(
          master, grads + j, a[kM].as<uint8_t>() + j, a[kMScale].as<float>() + part.first_block,
          a[kV].as<uint8_t>() + j, a[kVScale].as<float>() + part.first_block, n, p);
    } else {
      return absl::InternalError("CompactAdamW with fp32 master and moments");
    }
    kernels::cpu::Copy(grads + j, master, n);
  }
  compute_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return Release(u, /*changed=*/true);
}

absl::Status CompactAdamW::WriteMaster(int u, const float* src) {
  SPW_ASSIGN_OR_RETURN(Arrays * arrays, Acquire(u));
  Arrays& a = *arrays;
  const size_t n = units_[u].numel;
  if (!bf16_master_) {
    std::memcpy(a[kMaster].data(), src, n * sizeof(float));
  } else {
    uint16_t* master = a[kMaster].as<uint16_t>();
    for (size_t i = 0; i < n; ++i) master[i] = FloatToBf16(src[i]);
    std::memset(a[kComp].data(), 0, units_[u].bytes[kComp]);
  }
  return Release(u, /*changed=*/true);
}

absl::Status CompactAdamW::ReadMaster(int u, float* dst) {
  SPW_ASSIGN_OR_RETURN(Arrays * arrays, Acquire(u));
  const Buffer& master = (*arrays)[kMaster];
  const size_t n = units_[u].numel;
  if (!bf16_master_) {
    std::memcpy(dst, master.data(), n * sizeof(float));
  } else {
    for (size_t i = 0; i < n; ++i) dst[i] = Bf16ToFloat(master.as<uint16_t>()[i]);
  }
  return Release(u, /*changed=*/false);
}

NvmeShardReader::Location CompactAdamW::MasterLocation(int u) const {
  if (bf16_master_) return {};
  if (!units_[u].on_nvme) return {nullptr, 0, units_[u].numel, memory_[u][kMaster].as<float>()};
  return {file_.get(), units_[u].offset[kMaster], units_[u].numel};
}

absl::Status CompactAdamW::ReadMoment(int u, Moment moment, float* dst) {
  SPW_ASSIGN_OR_RETURN(Arrays * arrays, Acquire(u));
  const Arrays& a = *arrays;
  const UnitInfo& info = units_[u];
  const Buffer& codes = a[moment == kExpAvg ? kM : kV];
  if (dtype_ == Dtype::kFp32) {
    std::memcpy(dst, codes.data(), info.numel * sizeof(float));
  } else if (dtype_ == Dtype::kBf16) {
    for (size_t i = 0; i < info.numel; ++i) dst[i] = Bf16ToFloat(codes.as<uint16_t>()[i]);
  } else {
    std::memset(dst, 0, info.numel * sizeof(float));
    const Quant8Code kind = moment == kExpAvg ? Quant8Code::kSigned : Quant8Code::kUnsigned;
    const float* scales = a[moment == kExpAvg ? kMScale : kVScale].as<float>();
    for (const Part& part : info.parts) {
      for (size_t b = 0; part.begin + b * kQuantBlock < part.end; ++b) {
        const size_t first = part.begin + b * kQuantBlock;
        kernels::cpu::Quant8DecodeBlock(kind, codes.as<uint8_t>() + first,
                                        scales[part.first_block + b], dst + first,
                                        std::min(kQuantBlock, part.end - first));
      }
    }
  }
  return Release(u, /*changed=*/false);
}

absl::Status CompactAdamW::WriteMoment(int u, Moment moment, const float* src) {
  SPW_ASSIGN_OR_RETURN(Arrays * arrays, Acquire(u));
  Arrays& a = *arrays;
  const UnitInfo& info = units_[u];
  Buffer& codes = a[moment == kExpAvg ? kM : kV];
  if (dtype_ == Dtype::kFp32) {
    std::memcpy(codes.data(), src, info.numel * sizeof(float));
  } else if (dtype_ == Dtype::kBf16) {
    for (size_t i = 0; i < info.numel; ++i) codes.as<uint16_t>()[i] = FloatToBf16(src[i]);
  } else {
    const Quant8Code kind = moment == kExpAvg ? Quant8Code::kSigned : Quant8Code::kUnsigned;
    float* scales = a[moment == kExpAvg ? kMScale : kVScale].as<float>();
    for (const Part& part : info.parts) {
      for (size_t b = 0; part.begin + b * kQuantBlock < part.end; ++b) {
        const size_t first = part.begin + b * kQuantBlock;
        scales[part.first_block + b] =
            kernels::cpu::Quant8EncodeBlock(kind, src + first, codes.as<uint8_t>() + first,
                                            std::min(kQuantBlock, part.end - first));
      }
    }
  }
  return Release(u, /*changed=*/true);
}

std::string CompactAdamW::TakeTimeReport() {
  if (file_ == nullptr) return "";
  std::string line = absl::StrFormat(
      "nvme optimizer (compact): %.2f s waiting for reads and writes, %.2f s AdamW, %s read, %s "
      "written",
      io_wait_s_, compute_s_, FormatBytes(static_cast<double>(bytes_read_)),
      FormatBytes(static_cast<double>(bytes_written_)));
  io_wait_s_ = compute_s_ = 0;
  bytes_read_ = bytes_written_ = 0;
  return line;
}

size_t CompactAdamW::bytes() const {
  size_t total = 0;
  for (const UnitInfo& info : units_) {
    for (size_t b : info.bytes) total += b;
  }
  return total;
}

size_t CompactAdamW::staging_bytes() const {
  size_t bytes = 0;
  for (const Slot& slot : slots_) {
    for (const Buffer& b : slot.arrays) bytes += b.bytes();
  }
  return bytes;
}

std::string CompactAdamW::Describe() const {
  const char* moments = dtype_ == Dtype::kBf16   ? "bf16"
                        : dtype_ == Dtype::kInt8 ? "8-bit block-wise"
                                                 : "fp32";
  std::string where = absl::StrCat(TierName(tier_), " memory");
  if (file_ != nullptr) {
    int first = 0, first_nvme = 0;  // the first Unit stepped here, and on NVMe
    while (units_[first].numel == 0) ++first;
    while (!units_[first_nvme].on_nvme) ++first_nvme;
    where = absl::StrCat(
        first_nvme == first ? ""
                            : absl::StrCat(where, " (Units ", first, "-", first_nvme - 1, ") and "),
        "NVMe (",
        first_nvme == first ? "" : absl::StrCat("Units ", first_nvme, "-", units_.size() - 1, ", "),
        file_->path(), " through ", engine_->name(), ", ",
        FormatBytes(static_cast<double>(staging_bytes())), " of host staging)");
  }
  return absl::StrFormat(
      "compact optimizer state in %s: %s (%s master parameters%s, %s Adam m "
      "and v)",
      where, FormatBytes(static_cast<double>(bytes())), bf16_master_ ? "bf16" : "fp32",
      bf16_master_ ? " with a bf16 Kahan compensation" : "", moments);
}

}  // namespace spillway
