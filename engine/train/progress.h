// Human-readable progress lines and the metrics JSONL log.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace spillway {

struct StepReport {
  int64_t step = 0;
  int64_t total_steps = 0;
  double loss = 0.0;
  double lr = 0.0;
  double grad_norm = 0.0;
  double tokens_per_s = 0.0;
  double tflops = 0.0;  // achieved, counting 6N + 12 L d T FLOP per token
  double mfu = 0.0;     // tflops over the device's peak; 0 when the peak is unknown
  double ms_per_step = 0.0;
  double eta_s = 0.0;
  // Pipelined runs: the stages' busy time over (stages x step time), in [0, 1]; < 0: none.
  double pipeline_utilization = -1.0;
  double loss_scale = 0.0;    // fp16's loss scale; 0: not fp16 (not shown)
  int64_t skipped_steps = 0;  // fp16: steps skipped so far for overflows

  // "step   120/2000 | loss 2.1234 | lr 3.00e-04 | gnorm 0.812 | 41.2K tok/s | 99.5 ms/step | ETA
  // 3m07s"; fp16 adds "| scale 65536 | skipped 2" after the gradient norm.
  std::string Format() const;
  nlohmann::json ToJson() const;
};

std::string FormatDuration(double seconds);  // "45s", "3m07s", "2h05m"
std::string FormatBytes(double bytes);       // "512 B", "1.5 MiB", "3.20 GiB"
std::string FormatCount(double n);           // "950", "41.2K", "1.50M", "1.20B"

// Appends one JSON object per line to a file, flushed per line so a crash loses nothing
// already reported.
class MetricsLog {
 public:
  // `append` keeps existing lines (a resumed run); otherwise the file is truncated.
  // An empty path gives a log that writes nothing.
  static absl::StatusOr<MetricsLog> Open(const std::string& path, bool append);

  MetricsLog(MetricsLog&& other) noexcept;
  MetricsLog& operator=(MetricsLog&& other) noexcept;
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  ~MetricsLog();

  absl::Status Write(const nlohmann::json& record);

 private:
  MetricsLog(std::FILE* file, std::string path) : file_(file), path_(std::move(path)) {}
  std::FILE* file_ = nullptr;
  std::string path_;
};

}  // namespace spillway
