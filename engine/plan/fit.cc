#include "engine/plan/fit.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/status.h"
#include "engine/train/progress.h"

namespace spillway {
namespace {

std::string Bytes(size_t b) { return FormatBytes(static_cast<double>(b)); }

std::string ShortText(const FitReport& fit) {
  std::vector<std::string> parts;
  for (const TierCheck& c : fit.checks) {
    if (c.short_by() == 0) continue;
    parts.push_back(
        absl::StrCat(c.name, " needs ", Bytes(c.need), " (", c.need, " bytes), has ",
                     c.have.has_value() ? absl::StrCat(Bytes(*c.have), " (", *c.have, " bytes)")
                                        : absl::StrCat("none (", c.note, ")"),
                     ": short by ", Bytes(c.short_by()), " (", c.short_by(), " bytes)"));
  }
  return absl::StrJoin(parts, "; ");
}

int Level(Placement p) { return p == Placement::kNvme ? 2 : p == Placement::kCpu ? 1 : 0; }

std::vector<Placement> Choices(Placement p) {
  if (p != Placement::kAuto) return {p};
  return {Placement::kNone, Placement::kCpu, Placement::kNvme};
}

}  // namespace

std::string PlacementText(const PlanInput& in) {
  const bool split = in.offload_ratio < 1.0 && (in.offload_optimizer == Placement::kCpu ||
                                                in.offload_optimizer == Placement::kNvme);
  return absl::StrCat("offload_optimizer \"", PlacementName(in.offload_optimizer), "\"",
                      split ? absl::StrFormat(" (ratio %g)", in.offload_ratio) : "",
                      ", offload_param \"", PlacementName(in.offload_param), "\"");
}

bool FitReport::fits() const {
  return std::all_of(checks.begin(), checks.end(),
                     [](const TierCheck& c) { return c.short_by() == 0; });
}

FitReport CheckFit(const MemoryPlan& plan, const Hardware& hw) {
  const size_t per_node = static_cast<size_t>(plan.input.ranks_per_node);
  const size_t pinned = plan.Bytes(Tier::kPinnedHost);
  const size_t pageable = plan.Bytes(Tier::kHost);
  FitReport r;
  if (plan.input.gpu) {
    r.checks.push_back({"gpu", plan.Bytes(Tier::kDevice), hw.gpu_free, "no GPU found"});
  }
  r.checks.push_back({"pinned cpu", pinned * per_node, hw.pinned_available(), ""});
  r.checks.push_back({"cpu (all)", (pinned + pageable) * per_node, hw.host_available, ""});
  if (plan.registered_bytes > 0) {
    r.checks.push_back({"memlock", plan.registered_bytes,
                        hw.memlock.has_value() ? hw.memlock : std::optional<size_t>(SIZE_MAX), ""});
  }
  const size_t nvme = plan.Bytes(Tier::kNvme) * per_node;
  if (nvme > 0 || hw.nvme_free.has_value()) {
    r.checks.push_back({"nvme", nvme, hw.nvme_free, hw.nvme_note});
  }
  return r;
}

absl::StatusOr<PlanResult> PlanToFit(const PlanInput& input, const Hardware& hw) {
  std::vector<std::pair<Placement, Placement>> candidates;
  for (Placement o : Choices(input.offload_optimizer)) {
    for (Placement p : Choices(input.offload_param)) candidates.push_back({o, p});
  }
  // Fewest tiers down first; between equals the optimizer nearer the GPU (parameters in CPU
  // memory move 8-12 bytes per parameter over PCIe per step, an NVMe optimizer 24 over the disk).
  std::stable_sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
    return std::make_tuple(Level(a.first) + Level(a.second), Level(a.first)) <
           std::make_tuple(Level(b.first) + Level(b.second), Level(b.first));
  });
  const bool is_auto = candidates.size() > 1;
  PlanResult result;
  absl::Status last_error;
  bool have_plan = false;
  for (const auto& [o, p] : candidates) {
    PlanInput in = input;
    in.offload_optimizer = o;
    in.offload_param = p;
    if (in.offload_ratio_auto) {
      // The split that fits with the most on the GPU; if none, the whole optimizer offloaded.
      in.offload_ratio = 1.0;
      if (std::optional<PlanInput> split = SplitThatFits(in, hw)) in = *std::move(split);
      in.offload_ratio_auto = false;
    }
    absl::StatusOr<MemoryPlan> plan = PlanMemory(in);
    if (!plan.ok()) {
      if (!is_auto) return plan.status();
      last_error = plan.status();
      result.tried.push_back(absl::StrCat(PlacementText(in), ": ", plan.status().message()));
      continue;
    }
    result.fit = CheckFit(*plan, hw);
    result.plan = *std::move(plan);
    result.resolved_auto = is_auto;
    result.resolved_ratio = input.offload_ratio_auto;
    have_plan = true;
    if (is_auto) {
      result.tried.push_back(absl::StrCat(PlacementText(in), ": ",
                                          result.fit.fits() ? "fits" : ShortText(result.fit)));
    }
    if (result.fit.fits()) break;
  }
  if (!have_plan) return last_error;
  return result;
}

std::optional<PlanInput> SplitThatFits(const PlanInput& input, const Hardware& hw) {
  const bool offloaded =
      input.offload_optimizer == Placement::kCpu || input.offload_optimizer == Placement::kNvme;
  if (!offloaded) return std::nullopt;
  const bool compact = input.moments != MomentDtype::kFp32 || input.master != MasterDtype::kFp32;
  const bool split_nvme = input.offload_optimizer == Placement::kNvme && compact;
  for (int r = 1; r <= kSplitSteps; ++r) {
    // nvme_ratio above ratio puts every offloaded Unit on NVMe, as nvme_ratio = ratio does.
    for (int n = 1; n <= (split_nvme ? r : 1); ++n) {
      PlanInput in = input;
      in.offload_ratio = static_cast<double>(r) / kSplitSteps;
      in.nvme_ratio = split_nvme ? static_cast<double>(n) / kSplitSteps : 1.0;
      absl::StatusOr<MemoryPlan> plan = PlanMemory(in);
      if (plan.ok() && CheckFit(*plan, hw).fits()) return in;
    }
  }
  return std::nullopt;
}

absl::Status NotFitError(const PlanResult& result, const Hardware& hw) {
  const PlanInput& in = result.plan.input;
  std::string hint;
  if (!result.resolved_auto) {
    PlanInput any = in;
    any.offload_optimizer = Placement::kAuto;
    if (any.world_size == 1 || any.stage == 3) any.offload_param = Placement::kAuto;
    absl::StatusOr<PlanResult> other = PlanToFit(any, hw);
    if (other.ok() && other->fit.fits()) {
      hint = absl::StrCat("; ", PlacementText(other->plan.input), " would fit");
    }
  }
  if (hint.empty() && (in.offload_ratio == 1.0 && in.nvme_ratio == 1.0)) {
    if (std::optional<PlanInput> split = SplitThatFits(in, hw)) {
      hint = absl::StrFormat("; offload_optimizer.ratio %g", split->offload_ratio);
      if (split->nvme_ratio < 1.0)
        absl::StrAppendFormat(&hint, ", nvme_ratio %g", split->nvme_ratio);
      absl::StrAppend(&hint, " would fit (the first Units on the GPU",
                      split->nvme_ratio < 1.0 ? ", the last on NVMe" : "", ")");
    }
  }
  if (!in.activation_checkpointing) {
    PlanInput checkpointed = in;
    checkpointed.activation_checkpointing = true;
    absl::StatusOr<MemoryPlan> plan = PlanMemory(checkpointed);
    if (plan.ok() && CheckFit(*plan, hw).fits()) {
      absl::StrAppend(&hint, "; activation_checkpointing.enabled would fit");
    }
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "not enough memory for this config with ", PlacementText(in),
      in.world_size > 1 ? absl::StrCat(" (", in.ranks_per_node, " ranks per node)") : "", ": ",
      ShortText(result.fit), hint, "; `spillway plan CONFIG` shows the breakdown"));
}

}  // namespace spillway
