#include "engine/train/progress.h"

#include <cerrno>
#include <cmath>
#include <filesystem>
#include <utility>

#include "absl/strings/str_format.h"
#include "core/file_io.h"
#include "core/status.h"

namespace spillway {

std::string StepReport::Format() const {
  const int width = static_cast<int>(std::to_string(total_steps).size());
  std::string mfu_text = mfu > 0 ? absl::StrFormat(" | MFU %.1f%%", 100 * mfu) : "";
  if (pipeline_utilization >= 0) {
    absl::StrAppendFormat(&mfu_text, " | pipeline util %.1f%%", 100 * pipeline_utilization);
  }
  const std::string scale_text =
      loss_scale > 0 ? absl::StrFormat(" | scale %g | skipped %d", loss_scale, skipped_steps) : "";
  return absl::StrFormat(
      "step %*d/%d | loss %.4f | lr %.2e | gnorm %.3f%s | %s tok/s | %.3g TFLOP/s%s | %.1f "
      "ms/step | ETA %s",
      width, step, total_steps, loss, lr, grad_norm, scale_text, FormatCount(tokens_per_s), tflops,
      mfu_text, ms_per_step, FormatDuration(eta_s));
}

nlohmann::json StepReport::ToJson() const {
  nlohmann::json j = {{"step", step},
                      {"loss", loss},
                      {"lr", lr},
                      {"grad_norm", grad_norm},
                      {"tokens_per_s", tokens_per_s},
                      {"ms_per_step", ms_per_step}};
  if (pipeline_utilization >= 0) j["pipeline_utilization"] = pipeline_utilization;
  if (loss_scale > 0) {
    j["loss_scale"] = loss_scale;
    j["skipped_steps"] = skipped_steps;
  }
  return j;
}

std::string FormatDuration(double seconds) {
  const int64_t s = static_cast<int64_t>(std::llround(std::max(0.0, seconds)));
  if (s < 60) return absl::StrFormat("%ds", s);
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

std::string FormatBytes(double bytes) {
  if (bytes < 1024) return absl::StrFormat("%.0f B", bytes);
  if (bytes < 1024.0 * 1024) return absl::StrFormat("%.1f KiB", bytes / 1024);
  if (bytes < 1024.0 * 1024 * 1024) return absl::StrFormat("%.1f MiB", bytes / (1024.0 * 1024));
  return absl::StrFormat("%.2f GiB", bytes / (1024.0 * 1024 * 1024));
}

std::string FormatCount(double n) {
  if (n < 1e3) return absl::StrFormat("%.0f", n);
  if (n < 1e6) return absl::StrFormat("%.1fK", n / 1e3);
  if (n < 1e9) return absl::StrFormat("%.2fM", n / 1e6);
  return absl::StrFormat("%.2fB", n / 1e9);
}

absl::StatusOr<MetricsLog> MetricsLog::Open(const std::string& path, bool append) {
  if (path.empty()) return MetricsLog(nullptr, "");
  const std::string dir = std::filesystem::path(path).parent_path().string();
  if (!dir.empty()) SPW_RETURN_IF_ERROR(Annotate(MakeDirectories(dir), "log.metrics_path"));
  std::FILE* f = std::fopen(path.c_str(), append ? "a" : "w");
  if (f == nullptr) return PosixError(errno, "log.metrics_path: open " + path);
  return MetricsLog(f, path);
}

MetricsLog::MetricsLog(MetricsLog&& other) noexcept
    : file_(std::exchange(other.file_, nullptr)), path_(std::move(other.path_)) {}

MetricsLog& MetricsLog::operator=(MetricsLog&& other) noexcept {
  if (this != &other) {
    if (file_ != nullptr) std::fclose(file_);
    file_ = std::exchange(other.file_, nullptr);
    path_ = std::move(other.path_);
  }
  return *this;
}

MetricsLog::~MetricsLog() {
  if (file_ != nullptr) std::fclose(file_);
}

absl::Status MetricsLog::Write(const nlohmann::json& record) {
  if (file_ == nullptr) return absl::OkStatus();
  const std::string line = record.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    return PosixError(errno, "write metrics log " + path_);
  }
  return absl::OkStatus();
}

}  // namespace spillway
