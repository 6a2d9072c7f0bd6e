#include "engine/plan/report.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/train/progress.h"

namespace spillway {
namespace {

std::string Bytes(size_t b) { return FormatBytes(static_cast<double>(b)); }

constexpr Tier kTiers[] = {Tier::kDevice, Tier::kPinnedHost, Tier::kHost, Tier::kNvme};

// "1.20 GiB gpu + 300 MiB pinned cpu": the non-zero tiers of `category`.
std::string ByTier(const MemoryPlan& plan, Category category) {
  std::vector<std::string> parts;
  for (Tier t : kTiers) {
    if (const size_t b = plan.Bytes(category, t); b > 0) {
      parts.push_back(absl::StrCat(Bytes(b), " ", TierName(t)));
    }
  }
  return parts.empty() ? "0 B" : absl::StrJoin(parts, " + ");
}

}  // namespace

std::string FormatPlan(const PlanResult& result, const Hardware& hw) {
  const MemoryPlan& plan = result.plan;
  const PlanInput& in = plan.input;
  std::string out =
      absl::StrFormat("memory plan per rank (%d rank%s, ZeRO stage %d, %d per node), %s\n",
                      in.world_size, in.world_size > 1 ? "s" : "",
                      in.world_size > 1 || in.offload_param != Placement::kNone ? in.stage : 0,
                      in.ranks_per_node, PlacementText(in));
  const double params = static_cast<double>(std::max<size_t>(in.param_count, 1));
  for (const MemoryItem& item : plan.items) {
    absl::StrAppendFormat(&out, "  %-28s %-11s %12s  %6.2f B/param\n", item.what,
                          TierName(item.tier), Bytes(item.bytes), item.bytes / params);
  }
  absl::StrAppendFormat(
      &out, "activations per micro-batch of %d: %s with checkpointing, %s without\n",
      in.micro_batch, Bytes(plan.ActivationBytes(true)), Bytes(plan.ActivationBytes(false)));
  absl::StrAppendFormat(&out, "%-12s %14s %14s %14s\n", "tier", "need", "have", "short by");
  if (in.ranks_per_node > 1) {
    absl::StrAppendFormat(&out,
                          "(gpu and memlock per rank; cpu and nvme for the %d ranks of a node)\n",
                          in.ranks_per_node);
  }
  for (const TierCheck& c : result.fit.checks) {
    const std::string have = !c.have.has_value()   ? (c.note.empty() ? "none" : c.note)
                             : *c.have == SIZE_MAX ? "unlimited"
                                                   : Bytes(*c.have);
    absl::StrAppendFormat(&out, "%-12s %14s %14s %14s\n", c.name, Bytes(c.need), have,
                          c.short_by() > 0 ? Bytes(c.short_by()) : "-");
  }
  if (!hw.overridden.empty()) {
    absl::StrAppend(&out, "hardware overridden by ", kHardwareOverrideEnv, ": ",
                    absl::StrJoin(hw.overridden, ", "), "\n");
  }
  for (const std::string& t : result.tried) absl::StrAppend(&out, "  tried ", t, "\n");
  if (result.fit.fits()) {
    const bool chosen = result.resolved_auto || result.resolved_ratio;
    absl::StrAppend(&out, "verdict: fits", chosen ? "; chosen placement: " : "",
                    chosen ? PlacementText(in) : "", "\n");
  } else {
    absl::StrAppend(&out, "verdict: does not fit: ", NotFitError(result, hw).message(), "\n");
  }
  return out;
}

std::vector<std::string> FormatStartupMemory(const MemoryPlan& plan) {
  const PlanInput& in = plan.input;
  const bool ckpt = in.activation_checkpointing;
  std::vector<std::string> lines;
  lines.push_back(absl::StrFormat(
      "memory%s (planned): parameters %s, gradients %s, optimizer state %s, activations per "
      "micro-batch of %d: %s with activation checkpointing %s (%s with it %s)",
      in.world_size > 1 ? " per rank" : "", ByTier(plan, Category::kParameters),
      ByTier(plan, Category::kGradients), ByTier(plan, Category::kOptimizer), in.micro_batch,
      ByTier(plan, Category::kActivations), ckpt ? "on" : "off", Bytes(plan.ActivationBytes(!ckpt)),
      ckpt ? "off" : "on"));
  std::vector<std::string> totals;
  for (Tier t : kTiers) {
    if (const size_t b = plan.Bytes(t); b > 0) {
      totals.push_back(absl::StrCat(TierName(t), " ", Bytes(b)));
    }
  }
  lines.push_back(absl::StrCat(
      "memory totals", in.world_size > 1 ? " per rank" : "", ": ", absl::StrJoin(totals, ", "),
      plan.Bytes(Category::kPools) > 0
          ? absl::StrCat(" (pools and reserve ", ByTier(plan, Category::kPools), ")")
          : ""));
  return lines;
}

}  // namespace spillway
