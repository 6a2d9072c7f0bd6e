// A small, portable, checkpointable random number generator (xoshiro256**).
//
// The same seed gives the same sequence on every platform and compiler (unlike the
// std:: distributions), and the whole state is four integers that checkpoints save.
#pragma once

#include <array>
#include <cstdint>

namespace spillway {

class Rng {
 public:
  using State = std::array<uint64_t, 4>;

  explicit Rng(uint64_t seed);
  // A generator for an independent stream: same seed, different `stream`, unrelated sequences.
  Rng(uint64_t seed, uint64_t stream);

  uint64_t NextU64();
  // Uniform in [0, 1) with 53 random bits.
  double Uniform();
  // Uniform integer in [0, n); n > 0. Unbiased (rejection sampling).
  uint64_t Below(uint64_t n);
  // Standard normal (Box-Muller; no cached second value, so State is the whole state).
  double Normal();

  const State& state() const { return state_; }
  void set_state(const State& state) { state_ = state; }

 private:
  State state_;
};

}  // namespace spillway
