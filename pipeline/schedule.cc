#include "pipeline/schedule.h"

#include <algorithm>
#include <deque>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace spillway::pipeline {
namespace {

void AddForward(std::vector<Action>& out, int stages, int stage, int mb) {
  if (stage > 0) out.push_back({ActionKind::kRecvActivation, mb});
  out.push_back({ActionKind::kForward, mb});
  if (stage < stages - 1) out.push_back({ActionKind::kSendActivation, mb});
}

void AddBackward(std::vector<Action>& out, int stages, int stage, int mb) {
  if (stage < stages - 1) out.push_back({ActionKind::kRecvGradient, mb});
  out.push_back({ActionKind::kBackward, mb});
  if (stage > 0) out.push_back({ActionKind::kSendGradient, mb});
}

}  // namespace

absl::StatusOr<Schedule> ParseSchedule(absl::string_view name) {
  if (name == "gpipe") return Schedule::kGPipe;
  if (name == "1f1b") return Schedule::kOneFOneB;
  return absl::InvalidArgumentError(
      absl::StrCat("pipeline.schedule \"", name, "\": expected \"gpipe\" or \"1f1b\""));
}

std::vector<Action> StageActions(Schedule schedule, int stages, int micro_batches, int stage) {
  std::vector<Action> out;
  if (schedule == Schedule::kGPipe) {
    for (int mb = 0; mb < micro_batches; ++mb) AddForward(out, stages, stage, mb);
    for (int mb = 0; mb < micro_batches; ++mb) AddBackward(out, stages, stage, mb);
    return out;
  }
  const int warmup = std::min(stages - stage - 1, micro_batches);
  int forward = 0, backward = 0;
  for (; forward < warmup; ++forward) AddForward(out, stages, stage, forward);
  for (; forward < micro_batches; ++forward, ++backward) {
    AddForward(out, stages, stage, forward);
    AddBackward(out, stages, stage, backward);
  }
  for (; backward < micro_batches; ++backward) AddBackward(out, stages, stage, backward);
  return out;
}

std::string ActionsToString(const std::vector<Action>& actions) {
  return absl::StrJoin(actions, " ", [](std::string* out, const Action& a) {
    static constexpr const char* kNames[] = {"<a", "F", ">a", "<g", "B", ">g"};
    absl::StrAppend(out, kNames[static_cast<int>(a.kind)], a.micro_batch);
  });
}

int MaxInFlight(const std::vector<Action>& actions) {
  int live = 0, most = 0;
  for (const Action& a : actions) {
    if (a.kind == ActionKind::kForward) most = std::max(most, ++live);
    if (a.kind == ActionKind::kBackward) --live;
  }
  return most;
}

double SimulatedRun::Utilization() const {
  if (busy.empty() || makespan <= 0) return 0.0;
  double sum = 0.0;
  for (double b : busy) sum += b / makespan;
  return sum / static_cast<double>(busy.size());
}

absl::StatusOr<SimulatedRun> Simulate(Schedule schedule, int stages, int micro_batches,
                                      double forward_cost, double backward_cost) {
  struct Message {
    int micro_batch;
    double arrival;
  };
  // acts[s]: activations sent from s to s + 1; grads[s]: gradients sent from s + 1 to s.
  std::vector<std::deque<Message>> acts(stages), grads(stages);
  std::vector<std::vector<Action>> lists(stages);
  for (int s = 0; s < stages; ++s) lists[s] = StageActions(schedule, stages, micro_batches, s);
  std::vector<size_t> next(stages, 0);
  std::vector<double> clock(stages, 0.0);
  std::vector<int> last_forward(stages, -1);
  SimulatedRun run;
  run.busy.assign(stages, 0.0);

  auto receive = [&](std::deque<Message>& channel, int s, int mb) -> absl::StatusOr<bool> {
    if (channel.empty()) return false;
    if (channel.front().micro_batch != mb) {
      return absl::FailedPreconditionError(absl::StrCat("stage ", s, " expected micro-batch ", mb,
                                                        " but micro-batch ",
                                                        channel.front().micro_batch, " came"));
    }
    clock[s] = std::max(clock[s], channel.front().arrival);
    channel.pop_front();
    return true;
  };
  for (bool progressed = true; progressed;) {
    progressed = false;
    for (int s = 0; s < stages; ++s) {
      while (next[s] < lists[s].size()) {
        const Action& a = lists[s][next[s]];
        bool done = true;
        switch (a.kind) {
          case ActionKind::kRecvActivation: {
            absl::StatusOr<bool> got = receive(acts[s - 1], s, a.micro_batch);
            if (!got.ok()) return got.status();
            done = *got;
            break;
          }
          case ActionKind::kRecvGradient: {
            absl::StatusOr<bool> got = receive(grads[s], s, a.micro_batch);
            if (!got.ok()) return got.status();
            done = *got;
            break;
          }
          case ActionKind::kForward:
            clock[s] += forward_cost;
            run.busy[s] += forward_cost;
            last_forward[s] = a.micro_batch;
            break;
          case ActionKind::kBackward:
            if (last_forward[s] != a.micro_batch) {
              clock[s] += forward_cost;
              run.busy[s] += forward_cost;
              ++run.recomputes;
            }
            clock[s] += backward_cost;
            run.busy[s] += backward_cost;
            last_forward[s] = -1;
            break;
          case ActionKind::kSendActivation:
            acts[s].push_back({a.micro_batch, clock[s]});
            break;
          case ActionKind::kSendGradient:
            grads[s - 1].push_back({a.micro_batch, clock[s]});
            break;
        }
        if (!done) break;
        ++next[s];
        progressed = true;
      }
    }
  }
  for (int s = 0; s < stages; ++s) {
    if (next[s] < lists[s].size()) {
      return absl::FailedPreconditionError(absl::StrCat("the stages deadlock: stage ", s,
                                                        " waits at action ", next[s], " (",
                                                        ActionsToString({lists[s][next[s]]}), ")"));
    }
    run.makespan = std::max(run.makespan, clock[s]);
  }
  return run;
}

}  // namespace spillway::pipeline
