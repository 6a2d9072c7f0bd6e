// Times the SIMD CPU AdamW (kernels/cpu/cpu_adam.h) against the machine's memory bandwidth.
//
// usage: cpu_adam [--n N] [--steps S] [--warmup W] [--isa best|all|scalar|avx2|avx512]
//
// First a STREAM-like triad a[i] = b[i] + s * c[i] on n floats (OpenMP, non-temporal stores,
// best of S runs, 12 bytes per element as STREAM counts them). Then, for each
// instruction set asked for, AdamW steps on n parameters without and with the fused bf16 output:
// effective GB/s counts the bytes a step must move (p, g, m, v read; p, m, v written: 28 bytes
// per parameter, +2 with bf16 out), from the median step time; the ratio is to the triad.
// Last, the compact-state AdamW kernels (kernels/cpu/compact_adam.h) on the same n: bf16 m and v
// (20 bytes per parameter), 8-bit block-wise m and v (18 bytes with the codes, ignoring the
// scales); their rows give ns per parameter, the figure the offloaded optimizer's step scales by.
// Prints a table row and one JSON line per measurement. Threads: OMP_NUM_THREADS.
#include "kernels/cpu/cpu_adam.h"

#include <omp.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "kernels/cpu/compact_adam.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/quant8.h"

namespace spillway {
namespace {

using kernels::cpu::CpuIsa;

// Chunks for first-touch initialisation and the triad: the kernel's chunk size, so that each
// thread touches the pages it later streams.
constexpr size_t kChunk = 1 << 14;

template <typename T>
class Array {
 public:
  explicit Array(size_t n)
      : data_(static_cast<T*>(std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64))) {
    if (data_ == nullptr) {
      std::fprintf(stderr, "out of memory allocating %zu bytes: lower --n\n", n * sizeof(T));
      std::exit(1);
    }
  }
  ~Array() { std::free(data_); }
  Array(const Array&) = delete;
  Array& operator=(const Array&) = delete;
  T* get() const { return data_; }

 private:
  T* data_;
};

void Fill(float* x, size_t n, float base) {
  kernels::cpu::ParallelForBlocks(n, kChunk, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) x[i] = base + 1e-3f * static_cast<float>(i % 1000);
  });
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double Median(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  return x[x.size() / 2];
}

// a[i] = b[i] + s * c[i] for i in [begin, end). Non-temporal stores where the CPU has them
// (the best STREAM figure: no read-for-ownership of a); the arrays are 64-byte aligned and begin
// is a multiple of kChunk, so the aligned accesses are valid.
void TriadChunk(float* a, const float* b, const float* c, float s, size_t begin, size_t end) {
  size_t i = begin;
#if defined(__SSE2__)
  const __m128 s4 = _mm_set1_ps(s);
  for (; i + 4 <= end; i += 4) {
    _mm_stream_ps(a + i, _mm_add_ps(_mm_load_ps(b + i), _mm_mul_ps(s4, _mm_load_ps(c + i))));
  }
#endif
  for (; i < end; ++i) a[i] = b[i] + s * c[i];
}

// Best triad bandwidth in GB/s over `runs` runs.
double TriadGBs(size_t n, int runs) {
  Array<float> a(n), b(n), c(n);
  Fill(a.get(), n, 0.0f);
  Fill(b.get(), n, 1.0f);
  Fill(c.get(), n, 2.0f);
  double best = 1e30;
  for (int r = 0; r < runs + 1; ++r) {
    const auto start = std::chrono::steady_clock::now();
    kernels::cpu::ParallelForBlocks(n, kChunk, [&](size_t begin, size_t end) {
      TriadChunk(a.get(), b.get(), c.get(), 3.0f, begin, end);
    });
#if defined(__SSE2__)
    _mm_sfence();
#endif
    if (r > 0) best = std::min(best, Seconds(start));
  }
  return 12.0 * static_cast<double>(n) / best / 1e9;
}

// Median seconds of `step(s)` over `steps` calls after `warmup`, s counting from 1.
template <typename Step>
double MedianStepSeconds(int steps, int warmup, Step step) {
  std::vector<double> seconds;
  for (int s = 0; s < warmup + steps; ++s) {
    const auto start = std::chrono::steady_clock::now();
    step(s + 1);
    if (s >= warmup) seconds.push_back(Seconds(start));
  }
  return Median(seconds);
}

void PrintCompactRow(const char* name, size_t n, int threads, double t, double bytes_per_param,
                     double triad) {
  const double gbs = bytes_per_param * static_cast<double>(n) / t / 1e9;
  std::printf(
      "spillway adamw %s | n=%zu | %d threads | %.1f ms/step | %.2f ns/param | %.1f GB/s | "
      "%.0f%% of triad\n",
      name, n, threads, 1e3 * t, 1e9 * t / static_cast<double>(n), gbs, 100.0 * gbs / triad);
  std::printf(
      "{\"impl\": \"spillway-adamw-%s\", \"n\": %zu, \"threads\": %d, \"ms_per_step\": %.3f, "
      "\"ns_per_param\": %.3f, \"gb_per_s\": %.2f, \"triad_fraction\": %.3f}\n",
      name, n, threads, 1e3 * t, 1e9 * t / static_cast<double>(n), gbs, gbs / triad);
}

// The compact-state kernels on n parameters (param and grad as the fp32 rows left them).
void CompactRows(size_t n, int steps, int warmup, int threads, double triad, float* param,
                 const float* grad) {
  kernels::AdamWParams p;
  p.lr = 1e-4f;
  p.weight_decay = 0.01f;
  {
    Array<uint16_t> m(n), v(n);
    std::fill_n(m.get(), n, uint16_t{0});
    std::fill_n(v.get(), n, uint16_t{0});
    const double t = MedianStepSeconds(steps, warmup, [&](int s) {
      p.step = s;
      kernels::cpu::AdamWBf16State(param, grad, m.get(), v.get(), n, p);
    });
    PrintCompactRow("bf16-state", n, threads, t, 20.0, triad);
  }
  const size_t blocks = (n + kernels::cpu::kQuantBlock - 1) / kernels::cpu::kQuantBlock;
  Array<uint8_t> m(n), v(n);
  Array<float> m_scale(blocks), v_scale(blocks);
  std::fill_n(m.get(), n, uint8_t{0});
  std::fill_n(v.get(), n, uint8_t{0});
  std::fill_n(m_scale.get(), blocks, 0.0f);
  std::fill_n(v_scale.get(), blocks, 0.0f);
  const double t = MedianStepSeconds(steps, warmup, [&](int s) {
    p.step = s;
    kernels::cpu::AdamW8bitState(param, grad, m.get(), m_scale.get(), v.get(), v_scale.get(), n, p);
  });
  PrintCompactRow("int8-state", n, threads, t, 18.0, triad);
}

int Main(int argc, char** argv) {
  size_t n = 100'000'000;
  int steps = 10, warmup = 2;
  std::string isa_arg = "best";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", arg.c_str());
      return 2;
    }
    const char* value = argv[++i];
    int64_t number = 0;
    const bool is_number = absl::SimpleAtoi(value, &number) && number > 0;
    if (arg == "--isa") {
      isa_arg = value;
    } else if (!is_number) {
      std::fprintf(stderr, "%s needs a positive integer, got %s\n", arg.c_str(), value);
      return 2;
    } else if (arg == "--n") {
      n = static_cast<size_t>(number);
    } else if (arg == "--steps") {
      steps = static_cast<int>(number);
    } else if (arg == "--warmup") {
      warmup = static_cast<int>(number);
    } else {
      std::fprintf(stderr, "unknown option %s\n", arg.c_str());
      return 2;
    }
  }
  std::vector<CpuIsa> isas;
  for (CpuIsa isa : kernels::cpu::SupportedCpuIsas()) {
    if (isa_arg == "all" || isa_arg == kernels::cpu::CpuIsaName(isa) ||
        (isa_arg == "best" && isa == kernels::cpu::BestCpuIsa())) {
      isas.push_back(isa);
    }
  }
  if (isas.empty()) {
    std::fprintf(stderr, "--isa %s: not supported here; use best, all, or one of", isa_arg.c_str());
    for (CpuIsa isa : kernels::cpu::SupportedCpuIsas()) {
      std::fprintf(stderr, " %s", std::string(kernels::cpu::CpuIsaName(isa)).c_str());
    }
    std::fprintf(stderr, "\n");
    return 2;
  }
  const int threads = omp_get_max_threads();
  const double triad = TriadGBs(n, steps);
  std::printf("triad | n=%zu | %d threads | %.1f GB/s\n", n, threads, triad);
  std::printf("{\"impl\": \"triad\", \"n\": %zu, \"threads\": %d, \"gb_per_s\": %.2f}\n", n,
              threads, triad);

  Array<float> param(n), grad(n), m(n), v(n);
  Array<uint16_t> bf16(n);
  for (CpuIsa isa : isas) {
    const std::string name(kernels::cpu::CpuIsaName(isa));
    for (bool with_bf16 : {false, true}) {
      Fill(param.get(), n, 0.5f);
      Fill(grad.get(), n, -0.25f);
      Fill(m.get(), n, 0.0f);
      Fill(v.get(), n, 0.0f);
      kernels::AdamWParams p;
      p.lr = 1e-4f;
      p.weight_decay = 0.01f;
      const double t = MedianStepSeconds(steps, warmup, [&](int s) {
        p.step = s;
        kernels::cpu::CpuAdamW(isa, param.get(), grad.get(), m.get(), v.get(),
                               with_bf16 ? bf16.get() : nullptr, n, p);
      });
      const double bytes = (with_bf16 ? 30.0 : 28.0) * static_cast<double>(n);
      const double gbs = bytes / t / 1e9;
      std::printf(
          "spillway adamw %s%s | n=%zu | %d threads | %.1f ms/step | %.3g params/s | %.1f GB/s | "
          "%.0f%% of triad\n",
          name.c_str(), with_bf16 ? "+bf16" : "", n, threads, 1e3 * t, n / t, gbs,
          100.0 * gbs / triad);
      std::printf(
          "{\"impl\": \"spillway-adamw-%s\", \"bf16_out\": %s, \"n\": %zu, \"threads\": %d, "
          "\"ms_per_step\": %.3f, \"params_per_s\": %.4g, \"gb_per_s\": %.2f, "
          "\"triad_fraction\": %.3f}\n",
          name.c_str(), with_bf16 ? "true" : "false", n, threads, 1e3 * t, n / t, gbs, gbs / triad);
    }
  }
  CompactRows(n, steps, warmup, threads, triad, param.get(), grad.get());
  return 0;
}

}  // namespace
}  // namespace spillway

int main(int argc, char** argv) { return spillway::Main(argc, argv); }
