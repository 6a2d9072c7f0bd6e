#include "engine/train/offload_optimizer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "engine/train/optimizer_step.h"
#include "kernels/cpu/cpu_adam.h"
#include "kernels/cpu/elementwise.h"

namespace spillway {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

absl::StatusOr<std::unique_ptr<OffloadedOptimizer>> OffloadedOptimizer::Create(
    Model& model, kernels::Ops& ops, const OptimizerConfig& opt, int64_t delayed_from,
    int staging_count, size_t staging_elements, ExternalOptimizerState* external) {
  auto o = std::unique_ptr<OffloadedOptimizer>(
      new OffloadedOptimizer(model, ops, opt, delayed_from, external));
  o->pending_.assign(model.num_units(), 0);
  o->uploads_.assign(model.num_units(), 0);
  o->cpu_threads_ = kernels::cpu::CpuKernelThreads();
  if (ops.memory_tier() == Tier::kDevice) {
    o->cpu_threads_ = std::max(1, std::min(o->cpu_threads_, kernels::cpu::CpusAvailable() - 1));
  }
  o->unlanded_.assign(model.num_units(), 0);
  // The last Unit is always offloaded (offload_optimizer.ratio offloads from the end).
  const UnitState& last = model.unit(model.num_units() - 1);
  o->lazy_uploads_ = !last.optimizer_sharded() || last.params_offloaded;
  if (ops.memory_tier() == Tier::kDevice && !last.params_offloaded &&
      last.offload_grads.tier() == Tier::kHost) {
    SPW_ASSIGN_OR_RETURN(
        o->staging_,
        StagingPool::Create(staging_count, staging_elements * sizeof(float), Tier::kPinnedHost));
    o->staging_elements_ = staging_elements;
  }
  o->done_.assign(model.num_units(), 0);
  o->worker_ = std::thread([p = o.get()] { p->Work(); });
  return o;
}

OffloadedOptimizer::~OffloadedOptimizer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void OffloadedOptimizer::BeginStep(int64_t step, int64_t optimizer_step, double lr, bool clipping) {
  step_ = step;
  clipping_ = clipping || external_ != nullptr;
  params_ = AdamWParamsFor(opt_, lr, optimizer_step);
  order_.clear();
}

void OffloadedOptimizer::WaitUpdated(int u, int64_t step) {
  const Clock::time_point start = Clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return done_[u] >= step; });
  times_.wait_s += SecondsSince(start);
}

bool OffloadedOptimizer::UpdateGoesUp(const UnitState& unit) {
  // Offloaded parameters are updated in place; Units in the backend update there.
  return unit.update_begin() < unit.update_end() && !unit.params_offloaded &&
         unit.optimizer_offloaded();
}

int64_t OffloadedOptimizer::IssueUpload(int u, bool from_worker) {
  UnitState& unit = model_.unit(u);
  const size_t lo = unit.update_begin(), hi = unit.update_end();
  const size_t bytes = (hi - lo) * sizeof(float);
  float* params = unit.params.as<float>() + unit.param_index(lo);
  const float* updated =
      (external_ != nullptr ? unit.offload_grads : unit.offload_master).as<float>() +
      unit.optimizer_index(lo);
  const int64_t ticket = from_worker ? ops_.UploadAsync(params, updated, bytes)
                                     : ops_.CopyToBackendAsync(params, updated, bytes);
  std::lock_guard<std::mutex> lock(mu_);
  uploads_[u] = ticket;
  times_.pcie_bytes += static_cast<double>(bytes);
  return ticket;
}

void OffloadedOptimizer::Upload(int u) {
  const int64_t step = std::exchange(pending_[u], 0);
  if (step == 0 || skipped_.count(step) > 0 || !UpdateGoesUp(model_.unit(u))) return;
  if (WorkerUploads(step)) return;  // issued before the update was marked done
  last_ticket_ = IssueUpload(u, /*from_worker=*/false);
}

void OffloadedOptimizer::OnParamsNeeded(int u) {
  const int64_t step = pending_[u];
  if (step != 0 && !Delayed(step)) {
    WaitUpdated(u, step);
    Upload(u);
  }
  int64_t ticket = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ticket = std::exchange(uploads_[u], 0);
  }
  ops_.ComputeAfterCopies(ticket);
}

void OffloadedOptimizer::OnGradsFinal(int u) {
  // Delayed mode: u's previous update is done by now (a forward ran meanwhile); it goes up
  // before the gradient comes down, and u's parameters are not read again in this step.
  if (pending_[u] != 0) {
    WaitUpdated(u, pending_[u]);
    Upload(u);
  }
  order_.push_back(u);
  UnitState& unit = model_.unit(u);
  const size_t lo = unit.update_begin(), hi = unit.update_end();
  if (!unit.optimizer_offloaded()) {  // steps in the backend (offload_optimizer.ratio)
    std::lock_guard<std::mutex> lock(mu_);
    done_[u] = step_;
    return;
  }
  pending_[u] = step_;
  if (lo >= hi) {
    std::lock_guard<std::mutex> lock(mu_);
    done_[u] = step_;
    return;
  }
  const size_t bytes = (hi - lo) * sizeof(float);
  Task task;
  task.unit = u;
  task.step = step_;
  task.clipping = clipping_;
  task.params = params_;
  if (unit.params_offloaded) {
    // The residency brought the gradient down into unit.grads: wait for what it issued.
    float* grads = unit.offload_grads_data();
    task.ticket = ops_.CopyToHostAsync(grads, grads, 0);
    last_ticket_ = task.ticket;
  } else if (staging_ == nullptr) {
    task.ticket = ops_.CopyToHostAsync(unit.offload_grads.as<float>() + unit.optimizer_index(lo),
                                       unit.grads.as<float>() + unit.grad_index(lo), bytes);
    last_ticket_ = task.ticket;
  }
  for (size_t begin = lo; staging_ != nullptr && begin < hi; begin += staging_elements_) {
    Chunk chunk;
    chunk.unit = u;
    chunk.numel = std::min(staging_elements_, hi - begin);
    chunk.offset = unit.optimizer_index(begin);
    const Clock::time_point start = Clock::now();
    chunk.buffer = staging_->Acquire();
    const double waited = SecondsSince(start);
    chunk.ticket = ops_.CopyToHostAsync(staging_->data(chunk.buffer),
                                        unit.grads.as<float>() + unit.grad_index(begin),
                                        chunk.numel * sizeof(float));
    last_ticket_ = chunk.ticket;
    {
      std::lock_guard<std::mutex> lock(mu_);
      times_.wait_s += waited;
      ++unlanded_[u];
      landing_.push_back(chunk);
    }
    cv_.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Offloaded parameters: the residency counts its own copies (UnitResidency::TakeCopiedBytes).
    if (!unit.params_offloaded) times_.pcie_bytes += static_cast<double>(bytes);
    queue_.push_back(task);
  }
  cv_.notify_all();
}

std::deque<OffloadedOptimizer::Task>::iterator OffloadedOptimizer::ReadyTask() {
  auto next = queue_.end();
  auto first_issued = queue_.end();
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (unlanded_[it->unit] > 0 || (it->clipping && scales_.count(it->step) == 0)) continue;
    if (first_issued == queue_.end() || it->ticket < first_issued->ticket) first_issued = it;
    // The training thread issues the backward ahead of the backend: most queued gradients are
    // still on their way, and the one to wait for is the first issued. External state streams
    // its Units in order (its steps follow the backward, when every copy has about landed).
    if (external_ == nullptr && !ops_.CopiesLanded(it->ticket)) continue;
    const auto key = [this](const Task& t) {
      return std::make_pair(t.step, Delayed(t.step) ? -t.unit : t.unit);
    };
    if (next == queue_.end() || key(*it) < key(*next)) next = it;
  }
  return next != queue_.end() ? next : first_issued;
}

void OffloadedOptimizer::LandChunk(const Chunk& chunk) {
  absl::Status status = ops_.WaitCopies(chunk.ticket);
  if (status.ok()) {
    std::memcpy(model_.unit(chunk.unit).offload_grads.as<float>() + chunk.offset,
                staging_->data(chunk.buffer), chunk.numel * sizeof(float));
  }
  staging_->Release(chunk.buffer);
  std::lock_guard<std::mutex> lock(mu_);
  if (!status.ok() && error_.ok()) error_ = status;
  --unlanded_[chunk.unit];
}

void OffloadedOptimizer::Work() {
  kernels::cpu::SetCallerKernelThreads(cpu_threads_);
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // Staged chunks first, whatever the steps wait for: the training thread may need buffers.
    cv_.wait(lock, [&] { return stop_ || !landing_.empty() || ReadyTask() != queue_.end(); });
    if (!landing_.empty()) {
      const Chunk chunk = landing_.front();
      landing_.pop_front();
      lock.unlock();
      LandChunk(chunk);
      lock.lock();
      cv_.notify_all();
      continue;
    }
    const auto ready = ReadyTask();
    if (ready == queue_.end()) return;  // stopping: what is left waits for a scale never given
    Task task = *ready;
    queue_.erase(ready);
    if (task.clipping) task.params.grad_scale = scales_[task.step];
    lock.unlock();
    const Clock::time_point start = Clock::now();
    absl::Status status = ops_.WaitCopies(task.ticket);
    const double landing = SecondsSince(start);
    const Clock::time_point compute = Clock::now();
    if (status.ok()) status = StepUnit(task);
    const double seconds = SecondsSince(compute);
    // A NaN scale is a skipped step: nothing changed.
    if (status.ok() && WorkerUploads(task.step) && !std::isnan(task.params.grad_scale) &&
        UpdateGoesUp(model_.unit(task.unit))) {
      IssueUpload(task.unit, /*from_worker=*/true);
    }
    lock.lock();
    if (!status.ok() && error_.ok()) error_ = status;
    done_[task.unit] = task.step;
    times_.adam_s += seconds;
    times_.grads_wait_s += landing;
    cv_.notify_all();
  }
}

absl::Status OffloadedOptimizer::StepUnit(const Task& task) {
  if (std::isnan(task.params.grad_scale)) return absl::OkStatus();  // a skipped step
  UnitState& unit = model_.unit(task.unit);
  if (external_ == nullptr) {
    StepOffloadedShard(unit, opt_, task.params);
    return absl::OkStatus();
  }
  SPW_RETURN_IF_ERROR(external_->StepUnit(task.unit, unit, opt_, task.params));
  // The updated parameters are in the gradient shard (on NVMe: the master is the parameters).
  if (unit.params_offloaded && !unit.params_in_master) {
    const size_t lo = unit.update_begin(), hi = unit.update_end();
    kernels::cpu::Copy(unit.params.as<float>() + unit.param_index(lo),
                       unit.offload_grads_data() + unit.optimizer_index(lo), hi - lo);
  }
  return absl::OkStatus();
}

absl::Status OffloadedOptimizer::error() {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

absl::Status OffloadedOptimizer::FinishStep(float grad_scale, bool skipped) {
  if (order_.size() != static_cast<size_t>(model_.num_units())) {
    return absl::InternalError(absl::StrCat("the offloaded optimizer step heard of ", order_.size(),
                                            " of ", model_.num_units(), " Units' final gradients"));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    scales_[step_] = skipped ? std::numeric_limits<float>::quiet_NaN() : grad_scale;
    scales_.erase(scales_.begin(), scales_.lower_bound(step_ - 1));
  }
  cv_.notify_all();
  if (skipped) {
    if (!clipping_) return absl::InternalError("a skipped offloaded step was begun unclipped");
    skipped_.insert(step_);
    skipped_.erase(skipped_.begin(), skipped_.lower_bound(step_ - 1));
  }
  if (!delayed() && !lazy_uploads_) {
    for (int u : order_) {
      WaitUpdated(u, step_);
      Upload(u);
    }
  }
  // The uploads (delayed: the previous step's, from the hooks) and the gradient copies, which
  // the next step's ZeroGrads overwrites.
  ops_.ComputeAfterCopies(last_ticket_);
  order_.clear();
  return error();
}

absl::StatusOr<bool> OffloadedOptimizer::Flush() {
  bool uploaded = false;
  for (int u = 0; u < model_.num_units(); ++u) {
    if (pending_[u] == 0) continue;
    WaitUpdated(u, pending_[u]);
    Upload(u);
    uploaded = true;
  }
  int64_t last = last_ticket_;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int64_t& ticket : uploads_) last = std::max(last, std::exchange(ticket, 0));
  }
  if (uploaded) ops_.ComputeAfterCopies(last);
  SPW_RETURN_IF_ERROR(error());
  return uploaded;
}

OffloadTimes OffloadedOptimizer::TakeTimes() {
  const double pcie_s = ops_.TakeCopySeconds();
  std::lock_guard<std::mutex> lock(mu_);
  OffloadTimes t = times_;
  t.pcie_s = pcie_s;
  times_ = OffloadTimes();
  return t;
}

}  // namespace spillway
