#include "kernels/cpu/compact_adam.h"

#include <algorithm>
#include <bit>

#include "core/safetensors.h"
#include "kernels/cpu/adamw_element.h"
#include "kernels/cpu/cpu_adam_kernels.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/quant8.h"

namespace spillway::kernels::cpu {
namespace {

// A multiple of kQuantBlock, so that 8-bit blocks never straddle two chunks.
constexpr size_t kChunk = 64 * kQuantBlock;

// x rounded to bf16 stochastically (unbiased): the 16 dropped bits decide, against the 16 random
// bits r, whether to round up. NaN and infinity as FloatToBf16.
uint16_t StochasticBf16(float x, uint32_t r) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  if ((bits & 0x7f800000u) == 0x7f800000u) return FloatToBf16(x);
  return static_cast<uint16_t>((bits + (r & 0xffffu)) >> 16);
}

}  // namespace

void AdamWBf16State(float* param, const float* grad, uint16_t* m, uint16_t* v, size_t n,
                    const AdamWParams& p) {
  const AdamWStep s = AdamWStep::From(p);
  ParallelForBlocks(n, kChunk, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      float mi = Bf16ToFloat(m[i]), vi = Bf16ToFloat(v[i]);
      param[i] = AdamWElement(s, param[i], grad[i], mi, vi);
      const uint64_t r = RoundingHash(static_cast<uint64_t>(p.step), i, 3);
      m[i] = StochasticBf16(mi, static_cast<uint32_t>(r));
      v[i] = StochasticBf16(vi, static_cast<uint32_t>(r >> 32));
    }
  });
}

void AdamW8bitState(float* param, const float* grad, uint8_t* m, float* m_scale, uint8_t* v,
                    float* v_scale, size_t n, const AdamWParams& p) {
  const AdamWStep s = AdamWStep::From(p);
  ParallelForBlocks(n, kChunk, [&](size_t begin, size_t end) {
    float mf[kQuantBlock], vf[kQuantBlock];
    for (size_t b = begin; b < end; b += kQuantBlock) {
      const size_t len = std::min(kQuantBlock, end - b), block = b / kQuantBlock;
      Quant8DecodeBlock(Quant8Code::kSigned, m + b, m_scale[block], mf, len);
      Quant8DecodeBlock(Quant8Code::kUnsigned, v + b, v_scale[block], vf, len);
      for (size_t j = 0; j < len; ++j) {
        param[b + j] = AdamWElement(s, param[b + j], grad[b + j], mf[j], vf[j]);
      }
      const uint64_t step = static_cast<uint64_t>(p.step);
      m_scale[block] =
          Quant8EncodeBlock(Quant8Code::kSigned, mf, m + b, len, RoundingHash(step, block, 1));
      v_scale[block] =
          Quant8EncodeBlock(Quant8Code::kUnsigned, vf, v + b, len, RoundingHash(step, block, 2));
    }
  });
}

// Kahan summation of the fp32 update into the bf16 param: y = update - comp is what should be
// added; the bf16 sum t drops (t - param) - y, kept (in bf16) for the next step.
void AdamWBf16Master(uint16_t* param, uint16_t* comp, const float* grad, float* m, float* v,
                     size_t n, const AdamWParams& p) {
  const AdamWStep s = AdamWStep::From(p);
  ParallelForBlocks(n, kChunk, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const float old = Bf16ToFloat(param[i]);
      const float update = AdamWElement(s, old, grad[i], m[i], v[i]) - old;
      const float y = update - Bf16ToFloat(comp[i]);
      const uint16_t sum = FloatToBf16(old + y);
      comp[i] = FloatToBf16((Bf16ToFloat(sum) - old) - y);
      param[i] = sum;
    }
  });
}

}  // namespace spillway::kernels::cpu
