// Pipeline schedules as explicit per-stage lists of actions, and a simulator that runs all
// stages' lists together the way StageRunner executes them.
//
// Stage s of p computes micro-batches 0..m-1. Activations go from stage s to s+1 after each
// forward, their gradients from s+1 back to s after each backward; every stage handles
// micro-batches in increasing order in both directions, so gradients accumulate in the same
// order as in a non-pipelined step.
// - GPipe: all m forwards, then all m backwards (the flush is the end of the list).
// - 1F1B: min(p - s - 1, m) warm-up forwards, then alternately one forward and one backward,
//   then the remaining backwards.
// Execution model (StageRunner, Simulate): sends do not block (the sender keeps its buffer
// until the transfer is done), receives wait for their message. A stage keeps only each
// in-flight micro-batch's input and recomputes the stage's forward before a backward unless
// its last forward was that micro-batch's.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace spillway::pipeline {

enum class Schedule { kGPipe, kOneFOneB };

// "gpipe" or "1f1b" (pipeline.schedule).
absl::StatusOr<Schedule> ParseSchedule(absl::string_view name);

enum class ActionKind {
  kRecvActivation,  // from stage - 1
  kForward,
  kSendActivation,  // to stage + 1
  kRecvGradient,    // from stage + 1
  kBackward,
  kSendGradient,  // to stage - 1
};

struct Action {
  ActionKind kind;
  int micro_batch;
  bool operator==(const Action&) const = default;
};

// Stage `stage`'s actions for one step (0 <= stage < stages, micro_batches >= 1).
std::vector<Action> StageActions(Schedule schedule, int stages, int micro_batches, int stage);

// Compact text of a list, for tests and logs: "F0" forward, "B0" backward, "<a0"/">a0"
// receive/send activation, "<g0"/">g0" receive/send gradient, separated by spaces.
std::string ActionsToString(const std::vector<Action>& actions);

// The most micro-batch inputs a stage holds at once under `actions` (received or computed
// and not yet backwarded).
int MaxInFlight(const std::vector<Action>& actions);

struct SimulatedRun {
  double makespan = 0.0;     // time the last stage finishes
  std::vector<double> busy;  // per stage: time in forwards, recomputes and backwards
  int recomputes = 0;        // forwards recomputed before a backward, over all stages
  // Mean over stages of busy / makespan.
  double Utilization() const;
};

// Runs every stage's list with each forward taking `forward_cost` and each backward
// `backward_cost` (a recompute costs a forward), transfers taking no time. FailedPrecondition
// if the stages deadlock or a message arrives out of order.
absl::StatusOr<SimulatedRun> Simulate(Schedule schedule, int stages, int micro_batches,
                                      double forward_cost, double backward_cost);

}  // namespace spillway::pipeline
