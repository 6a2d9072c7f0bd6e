#include "pipeline/stage_runner.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace spillway::pipeline {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kActivationTag = 1;
constexpr int kGradientTag = 2;

double Seconds(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

StageRunner::StageRunner(int stage, int stages, int prev_peer, int next_peer, size_t boundary_numel,
                         int slots, kernels::Ops& ops, PeerTransport& transport)
    : stage_(stage),
      stages_(stages),
      prev_peer_(prev_peer),
      next_peer_(next_peer),
      numel_(boundary_numel),
      slots_(slots),
      ops_(ops),
      transport_(transport) {}

absl::StatusOr<std::unique_ptr<StageRunner>> StageRunner::Create(
    int stage, int stages, int prev_peer, int next_peer, size_t boundary_numel, int max_in_flight,
    kernels::Ops& ops, PeerTransport& transport) {
  auto r = std::unique_ptr<StageRunner>(new StageRunner(
      stage, stages, prev_peer, next_peer, boundary_numel, max_in_flight + 1, ops, transport));
  const size_t bytes = boundary_numel * sizeof(float);
  const Tier tier = ops.memory_tier();
  auto allocate = [&](std::vector<Buffer>& bufs, int count, const char* what) -> absl::Status {
    for (int i = 0; i < count; ++i) {
      SPW_ASSIGN_OR_RETURN(Buffer b, Buffer::Allocate(bytes, tier, what));
      bufs.push_back(std::move(b));
    }
    return absl::OkStatus();
  };
  const bool first = stage == 0, last = stage == stages - 1;
  SPW_RETURN_IF_ERROR(allocate(r->inputs_, first ? 0 : r->slots_, "pipeline stage inputs"));
  SPW_RETURN_IF_ERROR(allocate(r->act_out_, last ? 0 : r->slots_, "pipeline activation sends"));
  SPW_RETURN_IF_ERROR(allocate(r->grad_in_, last ? 0 : 2, "pipeline gradient receives"));
  SPW_RETURN_IF_ERROR(allocate(r->grad_out_, first ? 0 : 2, "pipeline gradient sends"));
  if (tier != Tier::kHost) {
    auto stage = [&](std::vector<Buffer>& host, const std::vector<Buffer>& bufs) -> absl::Status {
      for (size_t i = 0; i < bufs.size(); ++i) {
        SPW_ASSIGN_OR_RETURN(Buffer b,
                             Buffer::Allocate(bytes, Tier::kPinnedHost, "pipeline staging"));
        host.push_back(std::move(b));
      }
      return absl::OkStatus();
    };
    SPW_RETURN_IF_ERROR(stage(r->inputs_host_, r->inputs_));
    SPW_RETURN_IF_ERROR(stage(r->act_out_host_, r->act_out_));
    SPW_RETURN_IF_ERROR(stage(r->grad_in_host_, r->grad_in_));
    SPW_RETURN_IF_ERROR(stage(r->grad_out_host_, r->grad_out_));
  }
  r->act_out_h_.assign(r->act_out_.size(), 0);
  r->grad_out_h_.assign(r->grad_out_.size(), 0);
  return r;
}

absl::Status StageRunner::Begin(std::vector<Action> actions) {
  if (MaxInFlight(actions) >= slots_) {
    return absl::InternalError(absl::StrCat("pipeline stage ", stage_, ": a list holds ",
                                            MaxInFlight(actions), " micro-batches, the runner ",
                                            slots_ - 1));
  }
  actions_ = std::move(actions);
  next_ = 0;
  forward_state_ = -1;
  int micro_batches = 0;
  act_recv_ = RecvQueue();
  grad_recv_ = RecvQueue();
  for (const Action& a : actions_) {
    micro_batches = std::max(micro_batches, a.micro_batch + 1);
    if (a.kind == ActionKind::kRecvActivation) act_recv_.micro_batches.push_back(a.micro_batch);
    if (a.kind == ActionKind::kRecvGradient) grad_recv_.micro_batches.push_back(a.micro_batch);
  }
  act_recv_.handles.assign(micro_batches, 0);
  grad_recv_.handles.assign(micro_batches, 0);
  forward_version_.assign(micro_batches, -1);
  backward_version_.assign(micro_batches, -1);
  SPW_RETURN_IF_ERROR(PostNextRecv(ActionKind::kRecvActivation));
  return PostNextRecv(ActionKind::kRecvGradient);
}

absl::Status StageRunner::PostNextRecv(ActionKind kind) {
  const bool act = kind == ActionKind::kRecvActivation;
  RecvQueue& q = act ? act_recv_ : grad_recv_;
  if (q.posted == q.micro_batches.size()) return absl::OkStatus();
  const int mb = q.micro_batches[q.posted++];
  std::vector<Buffer>& bufs =
      act ? (staged() ? inputs_host_ : inputs_) : (staged() ? grad_in_host_ : grad_in_);
  Buffer& dst = bufs[act ? mb % slots_ : mb % 2];
  SPW_ASSIGN_OR_RETURN(q.handles[mb],
                       transport_.StartRecv(dst.data(), dst.bytes(), act ? prev_peer_ : next_peer_,
                                            act ? kActivationTag : kGradientTag));
  return absl::OkStatus();
}

absl::Status StageRunner::WaitRecv(ActionKind kind, int mb) {
  RecvQueue& q = kind == ActionKind::kRecvActivation ? act_recv_ : grad_recv_;
  if (q.handles[mb] == 0) {
    return absl::InternalError(absl::StrCat("pipeline stage ", stage_, ": receive for micro-batch ",
                                            mb, " was not posted"));
  }
  SPW_RETURN_IF_ERROR(transport_.Wait(q.handles[mb]));
  q.handles[mb] = 0;
  if (staged()) {
    const bool act = kind == ActionKind::kRecvActivation;
    const int slot = act ? mb % slots_ : mb % 2;
    Buffer& dst = act ? inputs_[slot] : grad_in_[slot];
    ops_.CopyToBackend(dst.data(), (act ? inputs_host_ : grad_in_host_)[slot].data(), dst.bytes());
    SPW_RETURN_IF_ERROR(ops_.Synchronize());
  }
  return PostNextRecv(kind);
}

absl::Status StageRunner::Send(std::vector<Buffer>& bufs, std::vector<Buffer>& host,
                               std::vector<PeerTransport::Handle>& handles, int slot,
                               const float* src, int peer, int tag) {
  if (handles[slot] != 0) {
    SPW_RETURN_IF_ERROR(transport_.Wait(handles[slot]));
    handles[slot] = 0;
  }
  // dst = src in backend memory (the backend's ops have no plain copy).
  float* dst = bufs[slot].as<float>();
  ops_.Fill(dst, 0.0f, numel_);
  ops_.Accumulate(dst, src, numel_);
  void* wire = dst;
  if (!host.empty()) {
    ops_.CopyToHost(host[slot].data(), dst, bufs[slot].bytes());
    wire = host[slot].data();
  }
  SPW_RETURN_IF_ERROR(ops_.Synchronize());
  SPW_ASSIGN_OR_RETURN(handles[slot], transport_.StartSend(wire, bufs[slot].bytes(), peer, tag));
  return absl::OkStatus();
}

absl::StatusOr<double> StageRunner::RunThrough(size_t end, StageCompute& compute) {
  const Clock::time_point start = Clock::now();
  last_ = StageTiming();
  end = std::min(end, actions_.size());
  int last_backward = -1;
  for (size_t i = next_; i < end; ++i) {
    if (actions_[i].kind == ActionKind::kBackward) last_backward = static_cast<int>(i);
  }
  double loss = 0.0;
  for (; next_ < end; ++next_) {
    const Action& a = actions_[next_];
    const int mb = a.micro_batch;
    const float* input = stage_ == 0 ? nullptr : inputs_[mb % slots_].as<float>();
    switch (a.kind) {
      case ActionKind::kRecvActivation:
      case ActionKind::kRecvGradient:
        SPW_RETURN_IF_ERROR(WaitRecv(a.kind, mb));
        break;
      case ActionKind::kForward: {
        const Clock::time_point t = Clock::now();
        loss += compute.Forward(mb, input);
        SPW_RETURN_IF_ERROR(ops_.Synchronize());
        last_.busy_s += Seconds(t, Clock::now());
        forward_state_ = mb;
        forward_version_[mb] = version_;
        break;
      }
      case ActionKind::kBackward: {
        const Clock::time_point t = Clock::now();
        compute.BeginBackward(mb);
        if (forward_state_ != mb) {
          compute.Forward(mb, input);
          ++last_.recomputes;
        }
        const float* output_grad = stage_ == stages_ - 1 ? nullptr : grad_in_[mb % 2].as<float>();
        compute.Backward(mb, output_grad, static_cast<int>(next_) == last_backward);
        compute.EndBackward(mb);
        SPW_RETURN_IF_ERROR(ops_.Synchronize());
        last_.busy_s += Seconds(t, Clock::now());
        forward_state_ = -1;
        backward_version_[mb] = version_;
        break;
      }
      case ActionKind::kSendActivation:
        SPW_RETURN_IF_ERROR(Send(act_out_, act_out_host_, act_out_h_, mb % slots_, compute.Output(),
                                 next_peer_, kActivationTag));
        break;
      case ActionKind::kSendGradient:
        SPW_RETURN_IF_ERROR(Send(grad_out_, grad_out_host_, grad_out_h_, mb % 2,
                                 compute.InputGrad(), prev_peer_, kGradientTag));
        break;
    }
  }
  last_.wall_s = Seconds(start, Clock::now());
  return loss;
}

absl::Status StageRunner::WaitSends() {
  for (auto* handles : {&act_out_h_, &grad_out_h_}) {
    for (PeerTransport::Handle& h : *handles) {
      if (h == 0) continue;
      SPW_RETURN_IF_ERROR(transport_.Wait(h));
      h = 0;
    }
  }
  return absl::OkStatus();
}

}  // namespace spillway::pipeline
