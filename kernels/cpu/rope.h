// Rotary position embeddings, Hugging Face Llama's rotate_half convention (see kernels/ops.h
// for the contract and the qkv layout).
#pragma once

namespace spillway::kernels::cpu {

// Rotates the NH query and NKV key heads of qkv (B,T,(NH+2*NKV)*hs) in place by the angles of
// their position. One task per position t: its cos/sin table (double, rounded to float) serves
// the B rows at t.
void RopeForward(float* qkv, int B, int T, int NH, int NKV, int hs, double theta);

// The inverse rotation, in place on dqkv: the backward of RopeForward.
void RopeBackward(float* dqkv, int B, int T, int NH, int NKV, int hs, double theta);

}  // namespace spillway::kernels::cpu
