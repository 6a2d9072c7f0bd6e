// Shared helpers for the kernel tests: random inputs, float64 comparisons, central finite
// differences and thread-count control.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/ops.h"

namespace spillway::kernels::testing {

// fp32 op vs float64 reference: ||got - want|| / ||want||.
inline constexpr double kForwardTol = 1e-5;
// fp32 analytical gradient vs float64 central finite differences, same metric.
inline constexpr double kGradTol = 1e-5;
// Finite-difference step (float64, so truncation ~h^2 and rounding ~1e-16/h are both tiny).
inline constexpr double kFdStep = 1e-5;

// The CPU backend, created once.
Ops& Cpu();

std::vector<float> RandomFloats(size_t n, uint64_t seed, float scale = 1.0f);
std::vector<int32_t> RandomInts(size_t n, int32_t below, uint64_t seed);
std::vector<double> AsFloat64(const std::vector<float>& x);

// ||got - want|| / ||want|| (0 when both are zero).
double RelError(const std::vector<float>& got, const std::vector<double>& want);
double Dot(const std::vector<double>& a, const std::vector<double>& b);

// d f / d x by float64 central differences at x.
std::vector<double> NumericGrad(const std::function<double(const std::vector<double>&)>& f,
                                std::vector<double> x);

// For larger shapes, where a full finite-difference gradient is too slow: the relative error
// |<grad, u> - D_u f(x)| / |D_u f(x)| of the directional derivative along a random direction u,
// D_u f by float64 central differences.
double DirectionalError(const std::function<double(const std::vector<double>&)>& f,
                        const std::vector<double>& x, const std::vector<float>& grad,
                        uint64_t seed);

// Runs fn() with the OpenMP thread count set to `threads`, then restores it.
void WithThreads(int threads, const std::function<void()>& fn);

bool BitwiseEqual(const std::vector<float>& a, const std::vector<float>& b);

// x rounded to bf16 (spillway::FloatToBf16), as bits; and bf16 bits as floats (exact).
std::vector<uint16_t> Bf16Bits(const std::vector<float>& x);
std::vector<float> Bf16Values(const std::vector<uint16_t>& bits);

// The column sums of x (rows x cols) as the CPU's bias gradient adds them: fp32, in row order.
std::vector<float> ColumnSums(const std::vector<float>& x, int rows, int cols);

}  // namespace spillway::kernels::testing
