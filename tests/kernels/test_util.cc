#include "tests/kernels/test_util.h"

#include <omp.h>

#include <cmath>
#include <cstring>
#include <memory>

#include "core/rng.h"
#include "core/safetensors.h"
#include "kernels/cpu/cpu_ops.h"

namespace spillway::kernels::testing {

Ops& Cpu() {
  static const std::unique_ptr<Ops> ops = MakeCpuOps();
  return *ops;
}

std::vector<float> RandomFloats(size_t n, uint64_t seed, float scale) {
  Rng rng(seed);
  std::vector<float> x(n);
  for (float& v : x) v = static_cast<float>(rng.Normal()) * scale;
  return x;
}

std::vector<int32_t> RandomInts(size_t n, int32_t below, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> x(n);
  for (int32_t& v : x) v = static_cast<int32_t>(rng.Below(below));
  return x;
}

std::vector<double> AsFloat64(const std::vector<float>& x) { return {x.begin(), x.end()}; }

double RelError(const std::vector<float>& got, const std::vector<double>& want) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  if (norm == 0.0) return std::sqrt(diff);
  return std::sqrt(diff / norm);
}

double Dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

std::vector<double> NumericGrad(const std::function<double(const std::vector<double>&)>& f,
                                std::vector<double> x) {
  std::vector<double> grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + kFdStep;
    const double plus = f(x);
    x[i] = x0 - kFdStep;
    const double minus = f(x);
    x[i] = x0;
    grad[i] = (plus - minus) / (2 * kFdStep);
  }
  return grad;
}

double DirectionalError(const std::function<double(const std::vector<double>&)>& f,
                        const std::vector<double>& x, const std::vector<float>& grad,
                        uint64_t seed) {
  Rng rng(seed);
  std::vector<double> plus = x, minus = x;
  double analytic = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double u = rng.Normal();
    plus[i] += kFdStep * u;
    minus[i] -= kFdStep * u;
    analytic += grad[i] * u;
  }
  const double numeric = (f(plus) - f(minus)) / (2 * kFdStep);
  return std::abs(analytic - numeric) / std::abs(numeric);
}

void WithThreads(int threads, const std::function<void()>& fn) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  fn();
  omp_set_num_threads(saved);
}

bool BitwiseEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<uint16_t> Bf16Bits(const std::vector<float>& x) {
  std::vector<uint16_t> bits(x.size());
  for (size_t i = 0; i < x.size(); ++i) bits[i] = FloatToBf16(x[i]);
  return bits;
}

std::vector<float> Bf16Values(const std::vector<uint16_t>& bits) {
  std::vector<float> x(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) x[i] = Bf16ToFloat(bits[i]);
  return x;
}

std::vector<float> ColumnSums(const std::vector<float>& x, int rows, int cols) {
  std::vector<float> sums(cols, 0.0f);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) sums[c] += x[static_cast<size_t>(r) * cols + c];
  }
  return sums;
}

}  // namespace spillway::kernels::testing
