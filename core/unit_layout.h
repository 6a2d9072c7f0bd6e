// The Unit: a contiguous piece of the model (the embeddings, one transformer block, the final
// norm) that owns one flat buffer per kind of state. A UnitLayout is the index of that buffer:
// each named tensor's shape and offset, in elements. Every kind of state of a Unit (params,
// grads, Adam m and v, and any shard of them) uses the same layout, so offsets computed once
// serve them all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace spillway {

struct TensorSpec {
  std::string name;            // full name, e.g. "h.3.attn.c_attn.weight"
  std::vector<int64_t> shape;  // row-major
  size_t offset = 0;           // in elements, from the start of the Unit's flat buffer
  size_t numel = 0;
  bool weight_decay = false;  // AdamW decays matrices and embeddings, not biases or norms
};

class UnitLayout {
 public:
  explicit UnitLayout(std::string name) : name_(std::move(name)) {}

  // Appends a tensor at the end of the flat buffer; offsets are aligned to kAlignElems so
  // that every tensor starts on a 64-byte boundary (vector loads, and later CUDA alignment).
  void Add(std::string name, std::vector<int64_t> shape, bool weight_decay);

  const std::string& name() const { return name_; }
  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  // Elements in the flat buffer, padding included.
  size_t numel() const { return numel_; }
  // Elements that belong to tensors (numel() less padding): the parameter count.
  size_t param_count() const;
  // The tensor named `name`, or null.
  const TensorSpec* Find(absl::string_view name) const;

  static constexpr size_t kAlignElems = 16;

 private:
  std::string name_;
  std::vector<TensorSpec> tensors_;
  size_t numel_ = 0;
};

}  // namespace spillway
