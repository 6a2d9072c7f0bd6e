#include "tests/offload/offload_test_util.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "gtest/gtest.h"
#include "offload/posix_io_engine.h"
#include "offload/uring_io_engine.h"

namespace spillway::testing {

ScratchDir::ScratchDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/spillway_offload_test.XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << pattern << ": " << std::strerror(errno);
  }
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string EngineName(EngineKind kind) { return kind == EngineKind::kUring ? "uring" : "pread"; }

absl::Status UringAvailable() {
  static const absl::Status status = UringIoEngine::Create(IoOptions{}).status();
  return status;
}

absl::StatusOr<std::unique_ptr<IoEngine>> MakeEngine(EngineKind kind, IoOptions options) {
  if (kind == EngineKind::kUring) {
    absl::StatusOr<std::unique_ptr<UringIoEngine>> e = UringIoEngine::Create(std::move(options));
    if (!e.ok()) return e.status();
    return std::unique_ptr<IoEngine>(std::move(e).value());
  }
  absl::StatusOr<std::unique_ptr<PosixIoEngine>> e = PosixIoEngine::Create(std::move(options));
  if (!e.ok()) return e.status();
  return std::unique_ptr<IoEngine>(std::move(e).value());
}

void FillRandom(std::span<std::byte> bytes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    const uint64_t word = rng();
    std::memcpy(bytes.data() + i, &word, 8);
  }
  for (; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(rng());
}

Buffer RandomBuffer(size_t bytes, uint64_t seed) {
  Buffer b = *Buffer::Allocate(bytes, Tier::kHost, "test data");
  FillRandom(b.span(), seed);
  return b;
}

bool SameBytes(std::span<const std::byte> a, std::span<const std::byte> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace spillway::testing
