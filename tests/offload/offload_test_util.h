// Helpers for the NVMe I/O tests: a scratch directory, both engines by name (io_uring tests
// skip where the kernel refuses io_uring), random bytes, and a warning sink that records.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "offload/buffer.h"
#include "offload/io_engine.h"

namespace spillway::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

enum class EngineKind { kUring, kPread };
std::string EngineName(EngineKind kind);

// OK if io_uring works here; the reason it does not otherwise.
absl::Status UringAvailable();

absl::StatusOr<std::unique_ptr<IoEngine>> MakeEngine(EngineKind kind, IoOptions options);

// `bytes` (a multiple of 4 KiB) of aligned host memory filled from `seed`.
Buffer RandomBuffer(size_t bytes, uint64_t seed);
void FillRandom(std::span<std::byte> bytes, uint64_t seed);
bool SameBytes(std::span<const std::byte> a, std::span<const std::byte> b);

// Collects warnings; sink() goes into IoOptions::warn.
struct WarningLog {
  std::vector<std::string> lines;
  WarningSink sink() {
    return [this](absl::string_view line) { lines.emplace_back(line); };
  }
};

}  // namespace spillway::testing
