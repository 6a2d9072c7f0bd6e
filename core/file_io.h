// Whole-file reads and crash-safe writes.
//
// WriteFileAtomic never leaves a half-written file under `path`: it writes "<path>.tmp",
// fsyncs it, renames it over `path` and fsyncs the directory. Errors name the path.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "absl/status/statusor.h"

namespace spillway {

absl::StatusOr<std::string> ReadFileToString(const std::string& path);

absl::Status WriteFileAtomic(const std::string& path, std::span<const std::byte> data);
absl::Status WriteFileAtomic(const std::string& path, absl::string_view data);

// fsync()s a directory so that renames and creations inside it are durable.
absl::Status FsyncDirectory(const std::string& dir);

// Creates `dir` and its parents (like mkdir -p). OK if it exists already.
absl::Status MakeDirectories(const std::string& dir);

// CRC-32 (zlib's polynomial) of `data`, continuing from `crc` (0 to start).
uint32_t Crc32(std::span<const std::byte> data, uint32_t crc = 0);

}  // namespace spillway
