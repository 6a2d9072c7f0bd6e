// Writes a safetensors file one tensor at a time, so that the whole never sits in memory: the
// header, which lists every tensor in file order, first; then each tensor's bytes, in that
// order. The file appears under `path` only when Finish() succeeds (written to "<path>.tmp",
// fsynced, renamed); a writer dropped before that removes its temporary file.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/safetensors.h"

namespace spillway {

class SafetensorsStreamWriter {
 public:
  struct Tensor {
    std::string name;
    SafetensorsDtype dtype;
    std::vector<int64_t> shape;
  };

  // Errors (invalid or repeated names, negative dimensions, an unwritable path) name the
  // tensor or the path.
  static absl::StatusOr<SafetensorsStreamWriter> Create(
      const std::string& path, std::vector<Tensor> tensors,
      const std::map<std::string, std::string>& metadata);

  SafetensorsStreamWriter(SafetensorsStreamWriter&& other) noexcept;
  SafetensorsStreamWriter& operator=(SafetensorsStreamWriter&&) = delete;
  SafetensorsStreamWriter(const SafetensorsStreamWriter&) = delete;
  ~SafetensorsStreamWriter();

  // The next tensor's bytes: exactly its size (shape x dtype size), or InvalidArgument.
  absl::Status Append(std::span<const std::byte> data);
  // After the last tensor: fsync, rename into place, fsync the directory.
  absl::Status Finish();

 private:
  SafetensorsStreamWriter(std::string path, int fd, std::vector<Tensor> tensors,
                          std::vector<uint64_t> bytes)
      : path_(std::move(path)), fd_(fd), tensors_(std::move(tensors)), bytes_(std::move(bytes)) {}
  absl::Status WriteAll(const void* data, size_t size);

  std::string path_;
  int fd_ = -1;
  std::vector<Tensor> tensors_;
  std::vector<uint64_t> bytes_;
  size_t next_ = 0;
  bool finished_ = false;
};

}  // namespace spillway
