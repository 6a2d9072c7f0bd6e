// spillway plan: the memory each tier needs for a config, against what this machine has.
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/cli/args.h"
#include "engine/cli/commands.h"
#include "engine/config/config.h"
#include "engine/plan/fit.h"
#include "engine/plan/plan_config.h"
#include "engine/plan/report.h"

namespace spillway {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "spillway: %s\n", std::string(status.message()).c_str());
  return kExitFailure;
}

absl::StatusOr<int> PositiveOption(const Args& args, const std::string& name, int fallback) {
  if (!args.Has(name)) return fallback;
  int value = 0;
  if (!absl::SimpleAtoi(args.Get(name), &value) || value < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, ": expected a positive whole number, found \"", args.Get(name), "\""));
  }
  return value;
}

absl::Status PlacementOption(const Args& args, const std::string& name, Placement* out) {
  if (!args.Has(name)) return absl::OkStatus();
  absl::StatusOr<Placement> p = ParsePlacement(args.Get(name));
  if (!p.ok())
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": ", p.status().message()));
  *out = *p;
  return absl::OkStatus();
}

absl::StatusOr<PlanResult> Plan(const Args& args, Hardware* hw) {
  absl::StatusOr<int> world = PositiveOption(args, "world", 1);
  if (!world.ok()) return world.status();
  absl::StatusOr<int> per_node = PositiveOption(args, "ranks-per-node", *world);
  if (!per_node.ok()) return per_node.status();
  absl::StatusOr<Config> config = LoadConfig(args.positional[0], *world);
  if (!config.ok()) return config.status();
  absl::StatusOr<PlanInput> input = PlanInputFromConfig(*config, *world, *per_node);
  if (!input.ok()) return input.status();
  if (absl::Status s = PlacementOption(args, "offload-optimizer", &input->offload_optimizer);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = PlacementOption(args, "offload-param", &input->offload_param); !s.ok()) {
    return s;
  }
  input->nvme_path = args.Get("nvme-path", input->nvme_path);
  absl::StatusOr<Hardware> found = DetectHardware(input->gpu, input->nvme_path);
  if (!found.ok()) return found.status();
  *hw = *found;
  return PlanToFit(*input, *hw);
}

}  // namespace

const char kPlanUsage[] =
    "usage: spillway plan CONFIG [--world N] [--ranks-per-node N]\n"
    "                     [--offload-optimizer none|cpu|nvme|auto]\n"
    "                     [--offload-param none|cpu|nvme|auto] [--nvme-path DIR]\n"
    "  Prints the bytes each memory tier (GPU, pinned CPU, pageable CPU, NVMe) needs per rank\n"
    "  to train CONFIG on N ranks (default 1; ranks per node default N), against what this\n"
    "  machine has, and whether it fits. The --offload-* options replace the config's\n"
    "  placement; \"auto\" picks the cheapest placement that fits (none, then cpu, then nvme).\n"
    "  Exits 0 if it fits, 1 if not. SPILLWAY_PLAN_HARDWARE=gpu=80GiB,cpu=120GiB,pinned=...,\n"
    "  memlock=...,nvme=... replaces what was found (docs/memory_planner.md).\n";

int PlanCommand(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = ParseArgs(
      argv, {"world", "ranks-per-node", "offload-optimizer", "offload-param", "nvme-path"});
  if (!args.ok() || args->positional.size() != 1) {
    std::fprintf(stderr, "%s%s",
                 args.ok() ? "" : (std::string(args.status().message()) + "\n").c_str(),
                 kPlanUsage);
    return kExitUsage;
  }
  Hardware hw;
  absl::StatusOr<PlanResult> result = Plan(*args, &hw);
  if (!result.ok()) return Fail(result.status());
  std::fputs(FormatPlan(*result, hw).c_str(), stdout);
  const absl::StatusOr<int> world = PositiveOption(*args, "world", 1);
  if (absl::StatusOr<Config> config = LoadConfig(args->positional[0], world.ok() ? *world : 1);
      config.ok() && config->pipeline.stages > 1) {
    std::fputs(
        "pipeline: planned as if unpipelined (every rank holds every Unit, sharded over "
        "world / pipeline.stages ranks): an upper bound on each stage\n",
        stdout);
  }
  return result->fit.fits() ? kExitOk : kExitFailure;
}

}  // namespace spillway
