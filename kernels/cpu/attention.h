// Causal multi-head and grouped-query self-attention, flash-style (see kernels/ops.h for the
// contracts and the qkv layouts).
#pragma once

namespace spillway::kernels::cpu {

// out (B,T,C) and lse (B,NH,T) = logsumexp of the scaled scores (scale = 1/sqrt(hs)). One thread
// owns each (b, h); each query row t runs an online softmax over keys 0..t in fixed blocks.
void AttentionForward(float* out, float* lse, const float* qkv, int B, int T, int C, int NH);

// dqkv (B,T,3C) = gradient w.r.t. qkv (overwritten). Probabilities are recomputed from q, k
// and lse; one thread owns each (b, h) and sums over query rows in ascending order.
void AttentionBackward(float* dqkv, const float* dout, const float* qkv, const float* out,
                       const float* lse, int B, int T, int C, int NH);

// The same with NKV key/value heads, qkv (B,T,(NH+2*NKV)*hs); AttentionForward is the case
// NKV == NH and runs this very code. One thread owns each (b, query head).
void GqaAttentionForward(float* out, float* lse, const float* qkv, int B, int T, int NH, int NKV,
                         int hs);

// One thread owns each (b, kv head g) and runs the query heads of g one after the other, in
// ascending order, adding into the same dk and dv: deterministic, and with NKV == NH exactly
// AttentionBackward.
void GqaAttentionBackward(float* dqkv, const float* dout, const float* qkv, const float* out,
                          const float* lse, int B, int T, int NH, int NKV, int hs);

}  // namespace spillway::kernels::cpu
