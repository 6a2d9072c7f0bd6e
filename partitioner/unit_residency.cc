#include "partitioner/unit_residency.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace spillway {

absl::StatusOr<std::unique_ptr<UnitResidency>> UnitResidency::Create(
    std::vector<UnitState>& units, kernels::Ops& ops, Communicator& comm,
    const ResidencyOptions& options) {
  if (units.empty()) return absl::InvalidArgumentError("UnitResidency: no Units");
  auto r = std::unique_ptr<UnitResidency>(new UnitResidency(units, ops, comm, options));
  r->stage_ = units.front().stage;
  for (const UnitState& u : units) {
    if (u.stage != r->stage_) return absl::InvalidArgumentError("Units of different stages");
  }
  SPW_RETURN_IF_ERROR(r->Allocate());
  return r;
}

absl::Status UnitResidency::Allocate() {
  const int n = static_cast<int>(units_.size());
  param_slot_of_.assign(n, -1);
  grad_slot_of_.assign(n, -1);
  grads_fresh_.assign(n, true);
  grads_copy_.assign(n, 0);
  // Offloaded parameters (all Units', or the last Units' with offload_optimizer.ratio).
  const bool any_offloaded = units_.back().params_offloaded;
  // Offloaded Units reduce in place, and so does everything on one rank (the identity; the
  // Units' shards say how many ranks share them).
  one_rank_ = units_[0].shard.shard_numel == units_[0].shard.padded_numel;
  reduce_in_place_ = units_[0].params_offloaded || one_rank_;
  if (any_offloaded) {
    sums_begin_.assign(n, 0);
    sums_count_.assign(n, 0);
    size_t total = 0;
    for (int u = 0; u < n; ++u) {
      sums_begin_[u] = total;
      const UnitState& unit = units_[u];
      if (!unit.params_offloaded) continue;
      ForEachTensorPart(unit, unit.update_begin(), unit.update_end(),
                        [&](const TensorSpec&, size_t, size_t) { ++sums_count_[u]; });
      total += sums_count_[u];
    }
    SPW_ASSIGN_OR_RETURN(grad_sum_squares_,
                         Buffer::Allocate(std::max<size_t>(total, 1) * sizeof(double),
                                          ops_.memory_tier(), "gradient sums of squares"));
  }
  // Over Units 1..: the ring buffers never hold Unit 0, which has slot 0 to itself.
  size_t largest = 0;
  for (int u = 1; u < n; ++u) {
    largest = std::max(largest, units_[u].shard.padded_numel);
    ring_shard_numel_ = std::max(ring_shard_numel_, units_[u].shard.shard_numel);
  }
  const Tier tier = ops_.memory_tier();
  if (units_[0].params_sharded()) {
    // Prefetch depth: the following Units that fit in stage3_prefetch_bucket_size (at least
    // one), bounded so that all buffers fit in stage3_max_live_parameters when they can.
    size_t ahead = 0;
    while (prefetch_ + 1 < n - 1 && ahead + largest <= options_.prefetch_elements) {
      ahead += largest;
      ++prefetch_;
    }
    prefetch_ = std::max(prefetch_, 1);
    while (prefetch_ > 1 &&
           units_[0].shard.padded_numel + (prefetch_ + 2) * largest > options_.max_live_elements) {
      --prefetch_;
    }
    param_slots_.resize(1 + (n > 1 ? prefetch_ + 2 : 0));
    for (size_t i = 0; i < param_slots_.size(); ++i) {
      const size_t numel = i == 0 ? units_[0].shard.padded_numel : largest;
      SPW_ASSIGN_OR_RETURN(param_slots_[i].buffer,
                           Buffer::Allocate(numel * sizeof(float), tier,
                                            absl::StrCat("gathered parameters, buffer ", i)));
    }
  }
  if (units_[0].grads_sharded()) {
    grad_slots_.resize(n > 1 ? 3 : 1);
    for (size_t i = 0; i < grad_slots_.size(); ++i) {
      const size_t numel = i == 0 ? units_[0].shard.padded_numel : largest;
      const size_t shard = i == 0 ? units_[0].shard.shard_numel : ring_shard_numel_;
      SPW_ASSIGN_OR_RETURN(grad_slots_[i].buffer,
                           Buffer::Allocate(numel * sizeof(float), tier,
                                            absl::StrCat("gradient accumulation buffer ", i)));
      if (reduce_in_place_) continue;
      SPW_ASSIGN_OR_RETURN(grad_slots_[i].reduced,
                           Buffer::Allocate(shard * sizeof(float), tier,
                                            absl::StrCat("reduced gradient shard ", i)));
    }
  }
  return absl::OkStatus();
}

size_t UnitResidency::working_bytes() const {
  size_t bytes = 0;
  for (const Slot& s : param_slots_) bytes += s.buffer.bytes();
  for (const Slot& s : grad_slots_) bytes += s.buffer.bytes() + s.reduced.bytes();
  return bytes;
}

void UnitResidency::Check(const absl::Status& status) {
  if (status_.ok() && !status.ok()) status_ = status;
}

void UnitResidency::BeginPass(Pass pass, bool last_backward) {
  pass_ = pass;
  last_backward_ = last_backward;
  window_start_ = -1;
}

bool UnitResidency::InWindow(int unit) const {
  if (window_start_ < 0) return false;
  const int distance = pass_ == Pass::kForward ? unit - window_start_ : window_start_ - unit;
  return distance >= 0 && distance <= prefetch_;
}

int UnitResidency::GatherInto(int u, bool required) {
  if (param_slot_of_[u] >= 0) return param_slot_of_[u];
  int chosen = -1;
  if (u == 0) {
    chosen = 0;
  } else {
    for (int i = 1; i < static_cast<int>(param_slots_.size()); ++i) {
      const Slot& s = param_slots_[i];
      if (s.users > 0 || (s.unit >= 0 && InWindow(s.unit))) continue;
      if (chosen < 0 || s.last_use < param_slots_[chosen].last_use) chosen = i;
    }
    if (chosen < 0) {
      if (required) Check(absl::InternalError(absl::StrCat("no free buffer to gather Unit ", u)));
      return -1;
    }
  }
  Slot& slot = param_slots_[chosen];
  WaitPending(slot);
  if (slot.unit >= 0) param_slot_of_[slot.unit] = -1;
  if (params_needed_) params_needed_(u);
  UnitState& unit = units_[u];
  ++gathers_;
  slot.unit = u;
  slot.last_use = ++clock_;
  param_slot_of_[u] = chosen;
  if (unit.params_offloaded) {
    StartOffloadedGather(u, slot);
    return chosen;
  }
  if (one_rank_) {  // a resident Unit at stage 3 on one rank: a copy in the backend
    CopyUpAndGather(u, slot, unit.params.as<float>());
    return chosen;
  }
  absl::StatusOr<Communicator::Handle> handle = comm_.StartAllGather(
      unit.params.as<float>(), slot.buffer.as<float>(), unit.shard.shard_numel);
  Check(handle.status());
  if (handle.ok()) {
    slot.pending = *handle;
    slot.has_pending = true;
  }
  return chosen;
}

float* UnitResidency::ReducedShard(const UnitState& unit, Slot& slot) const {
  return reduce_in_place_ || unit.params_offloaded ? slot.buffer.as<float>() + unit.shard.begin
                                                   : slot.reduced.as<float>();
}

std::vector<size_t> UnitResidency::param_slot_shard_numels() const {
  std::vector<size_t> numels(param_slots_.size(), ring_shard_numel_);
  // Slot 0 is Unit 0's alone, which offload_optimizer.ratio can keep in the backend.
  if (!numels.empty()) numels[0] = units_[0].params_in_master ? units_[0].shard.shard_numel : 0;
  return numels;
}

void UnitResidency::StartOffloadedGather(int u, Slot& slot) {
  UnitState& unit = units_[u];
  if (!unit.params_in_master) {
    CopyUpAndGather(u, slot, unit.params.as<float>());
    return;
  }
  if (param_reader_ == nullptr) {
    Check(absl::FailedPreconditionError("parameters on NVMe, but no reader for them"));
    return;
  }
  // The staging's last copy up must have landed before the read overwrites it.
  Check(ops_.WaitCopies(slot.staging_copy));
  Check(param_reader_->StartRead(u, static_cast<int>(&slot - param_slots_.data())));
  slot.reading = status_.ok();
}

void UnitResidency::FinishRead(Slot& slot) {
  slot.reading = false;
  absl::StatusOr<const float*> shard =
      param_reader_->FinishRead(static_cast<int>(&slot - param_slots_.data()));
  Check(shard.status());
  if (!shard.ok()) return;
  CopyUpAndGather(slot.unit, slot, *shard);
  slot.staging_copy = slot.copy;
}

void UnitResidency::CopyUpAndGather(int u, Slot& slot, const float* shard) {
  UnitState& unit = units_[u];
  float* mine = slot.buffer.as<float>() + unit.shard.begin;
  const size_t bytes = unit.shard.shard_numel * sizeof(float);
  // The copy stream starts it after the compute issued so far, the slot's last readers included.
  slot.copy = ops_.CopyToBackendAsync(mine, shard, bytes);
  slot.has_copy = true;
  if (unit.params_offloaded) copied_bytes_ += static_cast<double>(bytes);  // over PCIe
  if (one_rank_) return;
  // The collective starts after the compute issued before it, so the compute waits for the copy.
  ops_.ComputeAfterCopies(slot.copy);
  slot.has_copy = false;
  absl::StatusOr<Communicator::Handle> handle =
      comm_.StartAllGather(mine, slot.buffer.as<float>(), unit.shard.shard_numel);
  Check(handle.status());
  if (handle.ok()) {
    slot.pending = *handle;
    slot.has_pending = true;
  }
}

void UnitResidency::AcquireParams(int u) {
  if (params_needed_) params_needed_(u);
  if (!status_.ok() || !units_[u].params_sharded()) return;
  window_start_ = u;
  const int index = GatherInto(u, /*required=*/true);
  if (index < 0) return;
  Slot& slot = param_slots_[index];
  WaitPending(slot);
  ++slot.users;
  slot.last_use = ++clock_;
  units_[u].live_params = slot.buffer.as<float>();
  const int step = pass_ == Pass::kForward ? 1 : -1;
  for (int k = 1; k <= prefetch_; ++k) {
    const int next = u + k * step;
    if (next < 0 || next >= static_cast<int>(units_.size())) break;
    if (GatherInto(next, /*required=*/false) < 0) break;
    Slot& prefetched = param_slots_[param_slot_of_[next]];
    if (!options_.overlap) {
      WaitPending(prefetched);
    } else if (prefetched.reading && one_rank_ &&
               param_reader_->Ready(static_cast<int>(&prefetched - param_slots_.data()))) {
      // Its NVMe read has landed: the copy up starts now, beside this Unit's compute. (With
      // several ranks the all-gather after it would hold the compute back: at acquire then.)
      FinishRead(prefetched);
    }
  }
}

void UnitResidency::ReleaseParams(int u) {
  if (!units_[u].params_sharded()) return;
  units_[u].live_params = nullptr;
  const int index = param_slot_of_[u];
  if (index >= 0 && param_slots_[index].users > 0) --param_slots_[index].users;
}

void UnitResidency::InvalidateParams() {
  for (Slot& slot : param_slots_) {
    WaitPending(slot);
    if (slot.unit >= 0) param_slot_of_[slot.unit] = -1;
    slot.unit = -1;
    slot.users = 0;
  }
  for (UnitState& unit : units_) {
    if (unit.params_sharded()) unit.live_params = nullptr;
  }
  if (param_reader_ != nullptr) param_reader_->Invalidate();
}

void UnitResidency::WaitPending(Slot& slot) {
  if (slot.reading) FinishRead(slot);
  if (slot.has_copy) {
    ops_.ComputeAfterCopies(slot.copy);
    slot.has_copy = false;
  }
  if (!slot.has_pending) return;
  Check(comm_.Wait(slot.pending));
  slot.has_pending = false;
}

void UnitResidency::CompleteReduction(Slot& slot) {
  if (!slot.has_pending) return;
  WaitPending(slot);
  UnitState& unit = units_[slot.unit];
  if (unit.params_offloaded) {
    LandOffloadedGrads(slot.unit, slot);
  } else {
    ops_.Accumulate(unit.grads.as<float>(), ReducedShard(unit, slot), unit.shard.shard_numel);
  }
  if (last_backward_ && grads_final_ && status_.ok()) grads_final_(slot.unit);
  grad_slot_of_[slot.unit] = -1;
  slot.unit = -1;
}

void UnitResidency::LandOffloadedGrads(int u, Slot& slot) {
  UnitState& unit = units_[u];
  float* mine = slot.buffer.as<float>() + unit.shard.begin;
  if (!grads_fresh_[u]) {
    // The host shard holds the step's earlier micro-batches (once their copy has landed): add
    // them in, reading the pinned memory through its mapping.
    ops_.ComputeAfterCopies(grads_copy_[u]);
    ops_.Accumulate(mine, unit.grads.as<float>(), unit.shard.shard_numel);
  }
  if (last_backward_) {
    double* sums = grad_sum_squares_.as<double>() + sums_begin_[u];
    ops_.Fill(reinterpret_cast<float*>(sums), 0.0f, 2 * sums_count_[u]);  // 0.0: all bits zero
    size_t k = 0;
    ForEachTensorPart(unit, unit.update_begin(), unit.update_end(),
                      [&](const TensorSpec&, size_t begin, size_t end) {
                        ops_.AddSumSquares(sums + k++, slot.buffer.as<float>() + begin,
                                           end - begin);
                      });
  }
  const size_t bytes = unit.shard.shard_numel * sizeof(float);
  slot.copy = ops_.CopyToHostAsync(unit.grads.as<float>(), mine, bytes);
  slot.has_copy = true;
  grads_copy_[u] = slot.copy;
  grads_fresh_[u] = false;
  copied_bytes_ += static_cast<double>(bytes);
}

std::span<const double> UnitResidency::grad_sum_squares(int u) const {
  if (sums_count_.empty()) return {};
  return {grad_sum_squares_.as<double>() + sums_begin_[u], sums_count_[u]};
}

void UnitResidency::BeginGradAccumulation() { grads_fresh_.assign(units_.size(), true); }

double UnitResidency::TakeCopiedBytes() {
  const double bytes = copied_bytes_;
  copied_bytes_ = 0.0;
  return bytes;
}

void UnitResidency::AcquireGrads(int u) {
  UnitState& unit = units_[u];
  if (!status_.ok() || !unit.grads_sharded()) return;
  int chosen = 0;
  if (u != 0) {
    chosen = -1;
    for (int i = 1; i < static_cast<int>(grad_slots_.size()); ++i) {
      if (grad_slots_[i].users > 0) continue;
      if (chosen < 0 || grad_slots_[i].last_use < grad_slots_[chosen].last_use) chosen = i;
    }
    if (chosen < 0) {
      Check(absl::InternalError(absl::StrCat("no free gradient buffer for Unit ", u)));
      return;
    }
  }
  Slot& slot = grad_slots_[chosen];
  CompleteReduction(slot);
  WaitPending(slot);  // the previous gradient's copy down, before the Fill overwrites it
  slot.unit = u;
  slot.users = 1;
  slot.last_use = ++clock_;
  grad_slot_of_[u] = chosen;
  ops_.Fill(slot.buffer.as<float>(), 0.0f, unit.shard.padded_numel);
  unit.live_grads = slot.buffer.as<float>();
}

void UnitResidency::ReleaseGrads(int u) {
  UnitState& unit = units_[u];
  if (!status_.ok()) return;
  if (!unit.grads_sharded()) {
    if (!last_backward_) return;
    if (comm_.world_size() == 1) {
      if (grads_final_) grads_final_(u);
      return;
    }
    reduced_units_.push_back(u);
    const size_t bucket = std::max<size_t>(options_.reduce_bucket_elements, 1);
    float* grads = unit.grads.as<float>();
    for (size_t begin = 0; begin < unit.shard.padded_numel; begin += bucket) {
      const size_t n = std::min(bucket, unit.shard.padded_numel - begin);
      absl::StatusOr<Communicator::Handle> handle = comm_.StartAllReduceSum(grads + begin, n);
      Check(handle.status());
      if (!handle.ok()) return;
      if (options_.overlap) {
        pending_reduces_.push_back(*handle);
      } else {
        Check(comm_.Wait(*handle));
      }
    }
    return;
  }
  const int index = grad_slot_of_[u];
  if (index < 0) return;
  Slot& slot = grad_slots_[index];
  unit.live_grads = nullptr;
  slot.users = 0;
  float* reduced = ReducedShard(unit, slot);
  absl::StatusOr<Communicator::Handle> handle =
      comm_.StartReduceScatterSum(slot.buffer.as<float>(), reduced, unit.shard.shard_numel);
  Check(handle.status());
  if (!handle.ok()) return;
  slot.pending = *handle;
  slot.has_pending = true;
  // One rank has nothing to overlap: land the gradient now, so its copy down starts at once.
  if (!options_.overlap || comm_.world_size() == 1) CompleteReduction(slot);
}

absl::Status UnitResidency::FinishGrads() {
  for (Communicator::Handle h : pending_reduces_) Check(comm_.Wait(h));
  pending_reduces_.clear();
  if (grads_final_ && status_.ok()) {
    for (int u : reduced_units_) grads_final_(u);
  }
  reduced_units_.clear();
  for (Slot& slot : grad_slots_) CompleteReduction(slot);
  return status_;
}

}  // namespace spillway
