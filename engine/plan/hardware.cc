#include "engine/plan/hardware.h"

#include <sys/resource.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/status.h"
#include "offload/device_memory.h"

namespace spillway {
namespace {

// MemAvailable from /proc/meminfo, in bytes; 0 if it cannot be read.
size_t MemAvailable() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  size_t kib = 0;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

// The cgroup v2 limit's headroom (memory.max - memory.current), if a limit is set.
std::optional<size_t> CgroupHeadroom() {
  std::ifstream max_in("/sys/fs/cgroup/memory.max"), cur_in("/sys/fs/cgroup/memory.current");
  std::string max_text;
  size_t max = 0, current = 0;
  if (!(max_in >> max_text) || !(cur_in >> current) || !absl::SimpleAtoi(max_text, &max)) {
    return std::nullopt;  // no cgroup v2 file, or "max" (no limit)
  }
  return max > current ? max - current : 0;
}

}  // namespace

size_t Hardware::pinned_available() const {
  return pinned.has_value() ? std::min(*pinned, host_available) : host_available;
}

absl::StatusOr<size_t> ParseByteSize(absl::string_view text) {
  std::string t = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  double scale = 1;
  for (auto [suffix, s] :
       {std::pair{"kib", 1024.0}, std::pair{"mib", 1024.0 * 1024},
        std::pair{"gib", 1024.0 * 1024 * 1024}, std::pair{"tib", 1024.0 * 1024 * 1024 * 1024},
        std::pair{"k", 1024.0}, std::pair{"m", 1024.0 * 1024}, std::pair{"g", 1024.0 * 1024 * 1024},
        std::pair{"t", 1024.0 * 1024 * 1024 * 1024}, std::pair{"b", 1.0}}) {
    if (absl::EndsWith(t, suffix)) {
      t.resize(t.size() - std::string(suffix).size());
      scale = s;
      break;
    }
  }
  double value = 0;
  if (t.empty() || !absl::SimpleAtod(t, &value) || !(value >= 0) || value * scale > 1.8e19) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a byte size (examples: 1048576, 512MiB, 80G)"));
  }
  return static_cast<size_t>(value * scale);
}

absl::Status ApplyHardwareOverride(absl::string_view spec, Hardware* hw) {
  for (absl::string_view pair : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
    const std::string key(absl::StripAsciiWhitespace(kv.first));
    auto error = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(kHardwareOverrideEnv, ": \"", pair,
                                                     "\": ", why,
                                                     " (format: gpu=80GiB,cpu=120GiB,pinned=...,"
                                                     "memlock=...|unlimited,nvme=...)"));
    };
    if (key == "memlock" && absl::StripAsciiWhitespace(kv.second) == "unlimited") {
      hw->memlock.reset();
      hw->overridden.push_back(key);
      continue;
    }
    absl::StatusOr<size_t> bytes = ParseByteSize(kv.second);
    if (!bytes.ok()) return error(bytes.status().message());
    if (key == "gpu") {
      hw->gpu_free = *bytes;
      hw->gpu_total = *bytes;
    } else if (key == "cpu") {
      hw->host_available = *bytes;
    } else if (key == "pinned") {
      hw->pinned = *bytes;
    } else if (key == "memlock") {
      hw->memlock = *bytes;
    } else if (key == "nvme") {
      hw->nvme_free = *bytes;
      hw->nvme_note.clear();
    } else {
      return error("unknown key; allowed: gpu, cpu, pinned, memlock, nvme");
    }
    hw->overridden.push_back(key);
  }
  return absl::OkStatus();
}

absl::StatusOr<Hardware> DetectHardware(bool query_gpu, const std::string& nvme_path) {
  Hardware hw;
  if (query_gpu) {
    absl::StatusOr<DeviceMemoryInfo> gpu = QueryDeviceMemory();
    if (gpu.ok()) {
      hw.gpu_free = gpu->free_bytes;
      hw.gpu_total = gpu->total_bytes;
    }
  }
  hw.host_available = MemAvailable();
  if (std::optional<size_t> headroom = CgroupHeadroom()) {
    hw.host_available = std::min(hw.host_available, *headroom);
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_MEMLOCK, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    hw.memlock = static_cast<size_t>(limit.rlim_cur);
  }
  if (!nvme_path.empty()) {
    struct statvfs fs {};
    if (statvfs(nvme_path.c_str(), &fs) == 0) {
      hw.nvme_free = static_cast<size_t>(fs.f_bavail) * fs.f_frsize;
    } else {
      hw.nvme_note = std::string(PosixError(errno, nvme_path).message());
    }
  } else {
    hw.nvme_note = "no nvme_path";
  }
  if (const char* spec = std::getenv(kHardwareOverrideEnv); spec != nullptr) {
    SPW_RETURN_IF_ERROR(ApplyHardwareOverride(spec, &hw));
  }
  return hw;
}

}  // namespace spillway
