// Compact optimizer state (optimizer.params.state_dtype / master_dtype): per Unit, Adam m and v
// as bf16 or block-wise 8-bit, or bf16 master parameters with a bf16 Kahan compensation term,
// updated by the kernels of kernels/cpu/compact_adam.h (docs/optimizer_state.md). State bytes
// per parameter: bf16 m/v 8, 8-bit m/v about 6, bf16 master 12 (4 of them the compensation).
//
// Where it lives: in the offload tier's memory (offload_optimizer.device = "cpu"), or on NVMe
// ("nvme"): one preallocated file per rank under nvme_path holding each Unit's arrays, moved
// whole Unit by whole Unit through three host slots, so that the read of Unit u+1 and the write
// of Unit u-1 are in flight while Unit u steps (host memory: three times the largest Unit's
// compact state); with offload_param "nvme" a Unit's writes finish before its step returns.
// offload_optimizer.nvme_ratio below 1 keeps the first Units' state in memory and puts the last
// Units' (at least that share of the elements, partitioner/offload_split.h) on NVMe.
//
// The 8-bit blocks start at each tensor part (so that weight decay can differ between tensors).
// Checkpoints hold the moments decoded to fp32 (bf16 and 8-bit codes encode back exactly) and
// the parameters; the Kahan compensation is not saved, so a bf16-master run resumes with it at
// zero (a difference below one bf16 ulp).
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/model.h"
#include "engine/train/external_optimizer_state.h"
#include "offload/buffer.h"
#include "offload/io_engine.h"
#include "offload/nvme_file.h"

namespace spillway {

class CompactAdamW : public ExternalOptimizerState {
 public:
  static bool Wanted(const Config& config) { return config.optimizer.compact(); }
  // Buffers for `model`'s Units in `tier` (the offload tier), or with
  // config.zero.optimizer_nvme a file under nvme_path (errors name that key) for rank `rank`.
  static absl::StatusOr<std::unique_ptr<CompactAdamW>> Create(const Config& config, Model& model,
                                                              Tier tier, int rank);
  ~CompactAdamW() override;

  absl::Status StepUnit(int u, UnitState& unit, const OptimizerConfig& opt,
                        kernels::AdamWParams p) override;
  absl::Status WriteMaster(int u, const float* src) override;
  absl::Status ReadMaster(int u, float* dst) override;
  NvmeShardReader::Location MasterLocation(int u) const override;
  absl::Status ReadMoment(int u, Moment moment, float* dst) override;
  absl::Status WriteMoment(int u, Moment moment, const float* src) override;
  std::string Describe() const override;
  std::string TakeTimeReport() override;

  // Bytes of state (in memory, or in the file).
  size_t bytes() const;
  bool on_nvme() const { return file_ != nullptr; }  // any Unit's state
  // Host bytes of the three NVMe staging slots (0 in memory).
  size_t staging_bytes() const;

 private:
  // A tensor's part of the Unit's update range: array indexes [begin, end), and (8-bit) the
  // index of its first scale.
  struct Part {
    size_t begin, end, first_block;
    bool decay;
  };
  // master (fp32, or bf16), comp (bf16 Kahan term, bf16 master only), m, v (fp32, bf16 or 8-bit
  // codes), m_scale, v_scale (8-bit: one fp32 per block of each part).
  static constexpr int kArrays = 6;
  enum ArrayIndex { kMaster, kComp, kM, kV, kMScale, kVScale };
  using Arrays = std::array<Buffer, kArrays>;
  struct UnitInfo {
    size_t numel = 0;
    std::vector<Part> parts;
    std::array<size_t, kArrays> bytes{};
    std::array<uint64_t, kArrays> offset{};  // in the file (NVMe)
    bool on_nvme = false;
  };
  // NVMe: a host copy of one Unit's arrays and the I/O in flight on it.
  struct Slot {
    int unit = -1;
    Arrays arrays;
    std::vector<IoEngine::Ticket> tickets;
  };

  CompactAdamW(OptimizerConfig::StateDtype dtype, bool bf16_master, Tier tier)
      : dtype_(dtype), bf16_master_(bf16_master), tier_(tier) {}
  // Unit u's arrays, up to date; on NVMe also starts reading Unit u+1.
  absl::StatusOr<Arrays*> Acquire(int u);
  // Done with Unit u's arrays; `changed`: write them back (NVMe).
  absl::Status Release(int u, bool changed);
  absl::Status Settle(Slot& slot);
  absl::Status SubmitReads(Slot& slot, int u);

  OptimizerConfig::StateDtype dtype_;
  bool bf16_master_;
  Tier tier_;
  std::vector<UnitInfo> units_;
  std::vector<Arrays> memory_;  // per Unit: its arrays when in memory, else empty
  std::unique_ptr<IoEngine> engine_;
  std::unique_ptr<NvmeFile> file_;  // NVMe: closed before the engine goes
  std::array<Slot, 3> slots_;
  // offload_param "nvme" reads the master from the file: a Unit's writes complete before its
  // StepUnit or WriteMaster returns.
  bool settle_writes_ = false;
  // NVMe: seconds blocked on I/O and computing since the last TakeTimeReport, bytes moved.
  double io_wait_s_ = 0, compute_s_ = 0;
  uint64_t bytes_read_ = 0, bytes_written_ = 0;
};

}  // namespace spillway
