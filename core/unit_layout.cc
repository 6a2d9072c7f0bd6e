#include "core/unit_layout.h"

namespace spillway {

void UnitLayout::Add(std::string name, std::vector<int64_t> shape, bool weight_decay) {
  size_t numel = 1;
  for (int64_t d : shape) numel *= static_cast<size_t>(d);
  const size_t offset = (numel_ + kAlignElems - 1) / kAlignElems * kAlignElems;
  tensors_.push_back(TensorSpec{std::move(name), std::move(shape), offset, numel, weight_decay});
  numel_ = offset + numel;
}

size_t UnitLayout::param_count() const {
  size_t n = 0;
  for (const TensorSpec& t : tensors_) n += t.numel;
  return n;
}

const TensorSpec* UnitLayout::Find(absl::string_view name) const {
  for (const TensorSpec& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

}  // namespace spillway
