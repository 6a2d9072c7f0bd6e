// Reading and writing safetensors files (the format of Hugging Face checkpoints).
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON header
//   {"<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"<key>": "<value>", ...}}
// (padded with spaces), then the data buffer; data_offsets are relative to its start.
//
// SafetensorsFile::Open validates the whole header before returning: header length within the
// file, valid JSON, known dtypes, non-negative shapes whose size matches the byte length,
// offsets inside the data buffer and not overlapping. Every error names the file and, where
// there is one, the tensor. Tensor bytes are then views into the mapped file.
//
// WriteSafetensors writes what Hugging Face's writer does: tensors sorted by dtype size
// (largest first) then name, packed back to back, header padded with spaces to a multiple of 8
// bytes, so every tensor is aligned to its element size. It writes atomically (file_io.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace spillway {

enum class SafetensorsDtype {
  kBool,
  kU8,
  kI8,
  kF8E5M2,
  kF8E4M3,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kF64,
  kI64,
  kU64,
};

// "F32", "BF16", ... as written in headers.
absl::string_view SafetensorsDtypeName(SafetensorsDtype dtype);
// The dtype named `name`, or InvalidArgument.
absl::StatusOr<SafetensorsDtype> ParseSafetensorsDtype(absl::string_view name);
// Bytes per element.
size_t SafetensorsDtypeSize(SafetensorsDtype dtype);

struct SafetensorsTensorInfo {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<int64_t> shape;       // empty for a scalar
  int64_t numel = 1;                // product of shape
  std::span<const std::byte> data;  // numel * dtype size bytes, little-endian; maybe unaligned
};

class SafetensorsFile {
 public:
  // Maps `path` (or reads it, where it cannot be mapped) and validates its header.
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);
  // Validates `contents`, a whole safetensors file; `source` names it in errors.
  static absl::StatusOr<SafetensorsFile> FromBytes(std::string contents, std::string source);

  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  // Tensor names in the order of their data in the file.
  const std::vector<std::string>& names() const { return names_; }
  // The tensor called `name`, or null.
  const SafetensorsTensorInfo* Find(absl::string_view name) const;
  // The tensor called `name`, or NotFound naming the file and the tensor.
  absl::StatusOr<const SafetensorsTensorInfo*> Get(absl::string_view name) const;
  // The "__metadata__" map (empty if the header has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The tensor's values as float, converted from F32, F16, BF16 or F64 (rounded to nearest).
  // Other dtypes, or a missing tensor, are errors naming the file and the tensor.
  absl::StatusOr<std::vector<float>> ReadFloat(absl::string_view name) const;
  // The tensor's values as int32, from I32 or I64 (each value must fit in int32).
  absl::StatusOr<std::vector<int32_t>> ReadInt32(absl::string_view name) const;

 private:
  struct Storage;
  SafetensorsFile(std::string path, std::unique_ptr<Storage> storage);
  absl::Status Parse();
  absl::Status Error(absl::string_view tensor, absl::string_view what) const;

  std::string path_;
  std::unique_ptr<Storage> storage_;
  std::vector<std::string> names_;
  std::map<std::string, SafetensorsTensorInfo, std::less<>> tensors_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write: a view of its little-endian bytes, which must outlive the write.
struct SafetensorsTensorView {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<int64_t> shape;
  std::span<const std::byte> data;

  static SafetensorsTensorView F32(std::string name, std::vector<int64_t> shape,
                                   std::span<const float> values);
  static SafetensorsTensorView I32(std::string name, std::vector<int64_t> shape,
                                   std::span<const int32_t> values);
};

// The bytes of a safetensors file holding `tensors` and `metadata`. InvalidArgument for an
// empty, duplicate or "__metadata__" name, a name or metadata string that is not UTF-8, a
// negative dimension, or data whose size is not numel * dtype size.
absl::StatusOr<std::string> SerializeSafetensors(
    std::span<const SafetensorsTensorView> tensors,
    const std::map<std::string, std::string>& metadata);

// SerializeSafetensors, written to `path` with WriteFileAtomic. Errors name the path.
absl::Status WriteSafetensors(const std::string& path,
                              std::span<const SafetensorsTensorView> tensors,
                              const std::map<std::string, std::string>& metadata = {});

// Float conversions for 16-bit dtypes (round to nearest even; NaN stays NaN, overflow gives
// infinity in F16).
float Bf16ToFloat(uint16_t bits);
float F16ToFloat(uint16_t bits);
uint16_t FloatToBf16(float value);
uint16_t FloatToF16(float value);
// `values` encoded as BF16 or F16 bytes, for a SafetensorsTensorView with that dtype.
std::vector<std::byte> EncodeBf16(std::span<const float> values);
std::vector<std::byte> EncodeF16(std::span<const float> values);

}  // namespace spillway
