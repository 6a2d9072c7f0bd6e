#include "engine/train/nvme_adamw.h"

#include <algorithm>
#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status.h"
#include "engine/train/progress.h"
#include "kernels/cpu/cpu_adam.h"
#include "kernels/cpu/elementwise.h"

namespace spillway {

absl::StatusOr<std::unique_ptr<NvmeAdamW>> NvmeAdamW::Create(const Config& config, Model& model,
                                                             int rank) {
  std::vector<size_t> numels;
  // Units whose optimizer stays in the backend (offload_optimizer.ratio) take no space.
  for (int u = 0; u < model.num_units(); ++u) {
    const UnitState& unit = model.unit(u);
    numels.push_back(unit.optimizer_offloaded() ? unit.optimizer_numel() : 0);
  }
  // Several trainers of one process (tests) each have their own file.
  static std::atomic<int> next_file = 0;
  absl::StatusOr<std::unique_ptr<NvmeOptimizerState>> state = NvmeOptimizerState::Create(
      NvmeIoOptions(config), std::move(numels), static_cast<size_t>(config.zero.nvme_buffer_size),
      static_cast<int>(config.zero.nvme_buffer_count),
      absl::StrCat("optimizer.rank", rank, ".", next_file++));
  if (!state.ok()) {
    return Annotate(state.status(), "zero_optimization.offload_optimizer.nvme_path");
  }
  return std::unique_ptr<NvmeAdamW>(
      new NvmeAdamW(std::move(state).value(), static_cast<int>(config.zero.nvme_buffer_count)));
}

absl::Status NvmeAdamW::StepUnit(int u, UnitState& unit, const OptimizerConfig& opt,
                                 kernels::AdamWParams p) {
  const size_t lo = unit.update_begin(), hi = unit.update_end();
  // Array element j holds flat element origin + j (optimizer_index's inverse).
  const size_t origin = unit.optimizer_sharded() ? unit.shard.begin : 0;
  float* grads = unit.offload_grads_data();
  return state_->StreamUnit(u, [&](size_t first, float* master, float* m, float* v, size_t count) {
    const size_t flat = origin + first;
    ForEachTensorPart(unit, std::max(lo, flat), std::min(hi, flat + count),
                      [&](const TensorSpec& t, size_t begin, size_t end) {
                        p.weight_decay = t.weight_decay ? static_cast<float>(opt.weight_decay) : 0;
                        const size_t k = begin - flat;
                        kernels::cpu::CpuAdamW(master + k, grads + first + k, m + k, v + k, nullptr,
                                               end - begin, p);
                      });
    kernels::cpu::Copy(grads + first, master, count);
    return absl::OkStatus();
  });
}

absl::Status NvmeAdamW::WriteMaster(int u, const float* src) {
  return state_->WriteArray(u, NvmeOptimizerState::kMaster, src);
}

absl::Status NvmeAdamW::ReadMaster(int u, float* dst) {
  return state_->ReadArray(u, NvmeOptimizerState::kMaster, dst);
}

NvmeShardReader::Location NvmeAdamW::MasterLocation(int u) const {
  return {&state_->file(), state_->offset(u, NvmeOptimizerState::kMaster), state_->numel(u)};
}

absl::Status NvmeAdamW::ReadMoment(int u, Moment moment, float* dst) {
  return state_->ReadArray(u, ArrayOf(moment), dst);
}

absl::Status NvmeAdamW::WriteMoment(int u, Moment moment, const float* src) {
  return state_->WriteArray(u, ArrayOf(moment), src);
}

std::string NvmeAdamW::Describe() const {
  return absl::StrFormat(
      "optimizer state on NVMe: %s in %s (fp32 master parameters, Adam m and v) through %s, %s "
      "of host buffers (%d tiles of %s per array)",
      FormatBytes(static_cast<double>(state_->file().size())), state_->file().path(),
      state_->engine().name(), FormatBytes(static_cast<double>(state_->host_bytes())),
      buffer_count_, FormatBytes(static_cast<double>(state_->tile_floats() * sizeof(float))));
}

std::string NvmeAdamW::TakeTimeReport() {
  const TileStreamStats& s = state_->stats();
  std::string line = absl::StrFormat(
      "nvme optimizer: %.2f s streaming (%.2f s waiting for reads, %.2f s AdamW, %.2f s waiting "
      "for writes), %s read, %s written, %d tiles",
      s.total_s, s.read_wait_s, s.compute_s, s.write_wait_s,
      FormatBytes(static_cast<double>(s.bytes_read)),
      FormatBytes(static_cast<double>(s.bytes_written)), s.tiles);
  state_->ResetStats();
  return line;
}

}  // namespace spillway
