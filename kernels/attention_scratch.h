// The device scratch of the CUDA backend's tensor-core attention (kernels/cuda/attention_tc.cu),
// in plain C++ so that the kernels, the backend and the memory planner share one layout: the
// backward's row sums D (B*NH*T floats), then the 16-bit copies of qkv (B*T rows of
// (NH+2*NKV)*hs) and of dout (B*T rows of NH*hs) that the kernels read, each part starting
// 256 bytes after the last. Given 16-bit qkv and dout (the bf16 attention ops), the kernels use
// the row sums alone (sums_bytes).
#pragma once

#include <cstddef>
#include <cstdint>

namespace spillway::kernels {

struct AttentionScratchLayout {
  size_t d_offset = 0, qkv16_offset = 0, dout16_offset = 0, bytes = 0, sums_bytes = 0;
};

inline AttentionScratchLayout TensorCoreAttentionScratch(int B, int T, int NH, int NKV, int hs) {
  auto round = [](size_t bytes) { return (bytes + 255) / 256 * 256; };
  const size_t rows = static_cast<size_t>(B > 0 ? B : 0) * static_cast<size_t>(T > 0 ? T : 0);
  AttentionScratchLayout l;
  l.sums_bytes = round(rows * static_cast<size_t>(NH) * sizeof(float));
  l.qkv16_offset = l.sums_bytes;
  l.dout16_offset = l.qkv16_offset + round(rows * (NH + 2 * NKV) * hs * sizeof(uint16_t));
  l.bytes = l.dout16_offset + round(rows * NH * hs * sizeof(uint16_t));
  return l;
}

}  // namespace spillway::kernels
