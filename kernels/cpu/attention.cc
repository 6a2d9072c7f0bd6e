#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/cpu/attention_tiles.h"
#include "kernels/cpu/vec.h"

namespace spillway::kernels::cpu {
namespace {

constexpr int kKeyBlock = 64;  // keys per online-softmax step (a multiple of kLanes)

float* Scratch(std::vector<float>& buf, size_t n) {
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

}  // namespace

void AttentionForward(float* out, float* lse, const float* qkv, int B, int T, int C, int NH) {
  GqaAttentionForward(out, lse, qkv, B, T, NH, NH, C / NH);
}

void GqaAttentionForward(float* out, float* lse, const float* qkv, int B, int T, int NH, int NKV,
                         int hs) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  const int64_t C = static_cast<int64_t>(NH) * hs;             // out row stride
  const int64_t C3 = static_cast<int64_t>(NH + 2 * NKV) * hs;  // qkv row stride
  const int group = NH / NKV;
  const int64_t heads = static_cast<int64_t>(B) * NH;
  const int ld = RoundUp(T, kLanes);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t bh = 0; bh < heads; ++bh) {
    const int h = static_cast<int>(bh % NH);
    const int64_t b = bh / NH;
    const float* base = qkv + b * T * C3 + h * hs;
    const float* kbase = qkv + b * T * C3 + static_cast<int64_t>(NH + h / group) * hs;
    const float* vbase = kbase + static_cast<int64_t>(NKV) * hs;
    thread_local std::vector<float> buf;
    float* kt = Scratch(buf, static_cast<size_t>(hs) * ld + kRows * (hs + kKeyBlock));
    float* acc = kt + static_cast<size_t>(hs) * ld;  // (kRows, hs)
    float* scores = acc + kRows * hs;                // (kRows, kKeyBlock)
    PackTransposed(kt, ld, kbase, C3, T, hs);
    for (int t0 = 0; t0 < T; t0 += kRows) {
      const int rows = std::min(kRows, T - t0);
      const float* q[kRows];
      float m[kRows], l[kRows];
      for (int r = 0; r < kRows; ++r) {
        q[r] = base + std::min(t0 + r, T - 1) * C3;
        m[r] = -std::numeric_limits<float>::infinity();
        l[r] = 0.0f;
      }
      std::fill_n(acc, kRows * hs, 0.0f);
      float* a_rows[kRows];
      for (int r = 0; r < kRows; ++r) a_rows[r] = acc + r * hs;
      // kKeyBlock is a multiple of kRows, so every row of the group has keys in every block.
      const int last = t0 + rows - 1;
      for (int s0 = 0; s0 <= last; s0 += kKeyBlock) {
        const int block = std::min(last + 1 - s0, kKeyBlock);
        GroupDots(scores, kKeyBlock, q, kt, ld, s0, block, hs);
        for (int r = 0; r < kRows; ++r) {
          if (r >= rows) {  // padding row
            std::fill_n(scores + r * kKeyBlock, block, 0.0f);
            continue;
          }
          float* sc = scores + r * kKeyBlock;
          const int n = std::min(t0 + r + 1 - s0, kKeyBlock);
          for (int j = 0; j < n; ++j) sc[j] *= scale;
          const float new_m = std::max(m[r], Max(sc, n));
          const float corr = std::exp(m[r] - new_m);
          for (int d = 0; d < hs; ++d) a_rows[r][d] *= corr;
          for (int j = 0; j < n; ++j) sc[j] = FastExp(sc[j] - new_m);
          l[r] = l[r] * corr + Sum(sc, n);
          m[r] = new_m;
          std::fill(sc + n, sc + block, 0.0f);  // keys past this row's causal limit
        }
        GroupAccumulate(a_rows, scores, kKeyBlock, vbase + s0 * C3, C3, block, hs);
      }
      for (int r = 0; r < rows; ++r) {
        const int t = t0 + r;
        float* o = out + (b * T + t) * C + h * hs;
        const float inv_l = 1.0f / l[r];
        for (int d = 0; d < hs; ++d) o[d] = acc[r * hs + d] * inv_l;
        lse[bh * T + t] = m[r] + std::log(l[r]);
      }
    }
  }
}

void AttentionBackward(float* dqkv, const float* dout, const float* qkv, const float* out,
                       const float* lse, int B, int T, int C, int NH) {
  GqaAttentionBackward(dqkv, dout, qkv, out, lse, B, T, NH, NH, C / NH);
}

void GqaAttentionBackward(float* dqkv, const float* dout, const float* qkv, const float* out,
                          const float* lse, int B, int T, int NH, int NKV, int hs) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  const int64_t C = static_cast<int64_t>(NH) * hs;
  const int64_t C3 = static_cast<int64_t>(NH + 2 * NKV) * hs;
  const int group = NH / NKV;
  const int64_t kv_heads = static_cast<int64_t>(B) * NKV;
  const int ld = RoundUp(T, kLanes);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t bg = 0; bg < kv_heads; ++bg) {
    const int g = static_cast<int>(bg % NKV);
    const int64_t b = bg / NKV;
    const int64_t kv_off = static_cast<int64_t>(NH + g) * hs;
    const float* kbase = qkv + b * T * C3 + kv_off;
    const float* vbase = kbase + static_cast<int64_t>(NKV) * hs;
    thread_local std::vector<float> buf;
    float* kt = Scratch(buf, static_cast<size_t>(4 * hs + 2 * kRows) * ld + kRows * hs);
    float* vt = kt + static_cast<size_t>(hs) * ld;
    float* p = vt + static_cast<size_t>(hs) * ld;          // (kRows, ld) probabilities
    float* ds = p + static_cast<size_t>(kRows) * ld;       // (kRows, ld) dp, then d(scaled score)
    float* pad_dq = ds + static_cast<size_t>(kRows) * ld;  // dq of padding rows (discarded)
    float* dk = pad_dq + kRows * hs;                       // (ld, hs)
    float* dv = dk + static_cast<size_t>(ld) * hs;         // (ld, hs)
    PackTransposed(kt, ld, kbase, C3, T, hs);
    PackTransposed(vt, ld, vbase, C3, T, hs);
    std::fill_n(dk, 2 * static_cast<size_t>(ld) * hs, 0.0f);
    // The group's query heads in ascending order, all adding into the same dk, dv.
    for (int h = g * group; h < (g + 1) * group; ++h) {
      const float* base = qkv + b * T * C3 + h * hs;
      float* dbase = dqkv + b * T * C3 + h * hs;
      const float* row_lse = lse + (b * NH + h) * T;
      for (int t0 = 0; t0 < T; t0 += kRows) {
        const int n = std::min(T, t0 + kRows);  // keys of the group's last row
        RowGroup rg;
        for (int r = 0; r < kRows; ++r) {
          const int t = std::min(t0 + r, T - 1);
          rg.q[r] = base + t * C3;
          rg.dout[r] = dout + (b * T + t) * C + h * hs;
          rg.p[r] = p + r * ld;
          rg.ds[r] = ds + r * ld;
        }
        GroupDots(p, ld, rg.q, kt, ld, 0, n, hs);
        GroupDots(ds, ld, rg.dout, vt, ld, 0, n, hs);
        for (int r = 0; r < kRows; ++r) {
          const int t = t0 + r;
          float* pr = p + r * ld;
          float* dsr = ds + r * ld;
          if (t >= T) {  // padding row: zero weights
            std::fill_n(pr, n, 0.0f);
            std::fill_n(dsr, n, 0.0f);
            continue;
          }
          const float delta = Dot(rg.dout[r], out + (b * T + t) * C + h * hs, hs);
          for (int s = 0; s <= t; ++s) pr[s] = FastExp(pr[s] * scale - row_lse[t]);
          for (int s = 0; s <= t; ++s) dsr[s] = pr[s] * (dsr[s] - delta) * scale;
          std::fill(pr + t + 1, pr + n, 0.0f);
          std::fill(dsr + t + 1, dsr + n, 0.0f);
        }
        float* dq[kRows];
        for (int r = 0; r < kRows; ++r) {
          dq[r] = r < n - t0 ? dbase + (t0 + r) * C3 : pad_dq + r * hs;
          std::fill_n(dq[r], hs, 0.0f);
        }
        GroupAccumulate(dq, ds, ld, kbase, C3, n, hs);
        AccumulateKeyGrads(dk, dv, hs, rg, n, hs);
      }
    }
    float* dkbase = dqkv + b * T * C3 + kv_off;
    float* dvbase = dkbase + static_cast<int64_t>(NKV) * hs;
    for (int s = 0; s < T; ++s) {
      std::copy_n(dk + s * hs, hs, dkbase + s * C3);
      std::copy_n(dv + s * hs, hs, dvbase + s * C3);
    }
  }
}

}  // namespace spillway::kernels::cpu
