// Block-wise 8-bit codes for optimizer state (docs/optimizer_state.md): each block of
// kQuantBlock values is stored as one fp32 scale (the block's absolute maximum) and one byte per
// value, a tiny float relative to that scale:
//  - Signed (Adam's m): bit 7 sign, bits 6..0 an E4M3 magnitude (4 exponent bits, 3 mantissa
//    bits, subnormals below the smallest exponent); the largest magnitude code means 1.
//    Relative step 1/15 to 1/8, range down to ~2^-18 of the block maximum, then 0.
//  - Unsigned (Adam's v >= 0): bits 7..0 an E5M3 magnitude, the largest code means 1; range down
//    to ~2^-34 of the block maximum, so small second moments do not collapse to 0.
// A value encodes to the nearest code (ties to the smaller magnitude), or by stochastic rounding
// (Quant8EncodeBlock with a seed); the block maximum itself encodes exactly.
#pragma once

#include <cstddef>
#include <cstdint>

namespace spillway::kernels::cpu {

inline constexpr size_t kQuantBlock = 256;

enum class Quant8Code { kSigned, kUnsigned };

// The value of `code` for a block whose scale is 1.
float Quant8Decode(Quant8Code kind, uint8_t code);

// The nearest code to x / scale, which must lie in [-1, 1] ([0, 1] for kUnsigned); scale > 0.
uint8_t Quant8Encode(Quant8Code kind, float x, float scale);

// Decodes n <= kQuantBlock codes of one block into out.
void Quant8DecodeBlock(Quant8Code kind, const uint8_t* codes, float scale, float* out, size_t n);

// Encodes n <= kQuantBlock values as one block: returns the scale (max |x|; 0 if all are 0, and
// then every code decodes to 0). seed 0: each value to the nearest code. Otherwise stochastic
// rounding, unbiased (the expected decoded value is x): value i goes to one of its two
// neighbouring codes by a pseudo-random number hashed from seed + i, so the result is a
// function of the inputs and the seed alone.
float Quant8EncodeBlock(Quant8Code kind, const float* x, uint8_t* codes, size_t n,
                        uint64_t seed = 0);

// A non-zero 64-bit hash of three counters (e.g. step, block, tensor): the seed of
// Quant8EncodeBlock, and random bits for other deterministic stochastic rounding.
uint64_t RoundingHash(uint64_t a, uint64_t b, uint64_t c);

}  // namespace spillway::kernels::cpu
