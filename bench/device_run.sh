#!/usr/bin/env bash
# One call on the GPU machine: build with the carried .deps (../shared/device/fetch-deps.sh),
# run every test (the `gpu`-labelled ones included), then the CPU benchmark against PyTorch.
# usage (device tool, carry [".deps"]): bash bench/device_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/out}
mkdir -p "$out"
deps=$PWD/.deps/usr
export PKG_CONFIG_PATH=$deps/lib/x86_64-linux-gnu/pkgconfig PKG_CONFIG_SYSROOT_DIR=$PWD/.deps
export LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
cmake -S . -B build-device -G Ninja -DCMAKE_PREFIX_PATH="$deps" \
  -DCMAKE_INCLUDE_PATH="$deps/include" -DCMAKE_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu" \
  >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build build-device >"$out/build.log" 2>&1 || { grep -E "error|FAILED" "$out/build.log" | head -30; exit 1; }
echo "build ok"
ctest --test-dir build-device -L gpu --output-on-failure >"$out/ctest_gpu.log" 2>&1
tail -5 "$out/ctest_gpu.log"
build-device/tests/kernels/cuda_ops_test --gtest_brief=1 2>&1 | tail -40 | tee "$out/cuda_ops_test.txt"
# Run directly too: ctest counts a skipped gtest as passed.
build-device/tests/train/gpu_training_test 2>&1 | grep -E "OK|SKIPPED|FAILED|PASSED" | tee "$out/gpu_training_test.txt"
if [ "${SKIP_CPU_TESTS:-0}" != 1 ]; then
  ctest --test-dir build-device -LE gpu -j8 --output-on-failure >"$out/ctest_cpu.log" 2>&1
  tail -3 "$out/ctest_cpu.log"
fi
if [ "${SKIP_CPU_BENCH:-0}" != 1 ]; then
  PYTHON=python3 bench/run_cpu.sh build-device 2>&1 | tee "$out/bench_cpu.txt"
fi
# The committed golden reference was made with Debian's PyTorch 1.13: check PyTorch 2.x agrees.
python3 tests/golden/make_gpt2_golden.py "$out/golden_torch2.safetensors" >/dev/null &&
  python3 tests/golden/compare_golden.py tests/golden/gpt2_tiny.safetensors \
    "$out/golden_torch2.safetensors" --tol 1e-6 | tee "$out/golden_compare.txt"
# Training on the GPU: the tiny example as shipped, with trainer.backend = "cuda".
sed 's/"seed": 1234,/"seed": 1234, "backend": "cuda",/; s#runs/tiny#/tmp/runs/tiny-cuda#g' \
  examples/tiny/config.json >/tmp/tiny_cuda.json
(time build-device/spillway train /tmp/tiny_cuda.json) >"$out/tiny_cuda.log" 2>&1
grep -E "memory|step +600|eval step 600|real" "$out/tiny_cuda.log"
# One training step of GPT-2 124M (T=1024, B=8) on the H100, fp32, against PyTorch eager fp32.
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  shape="--layers 12 --dim 768 --heads 12 --seq 1024 --batch 8 --vocab 50257 --steps 10"
  build-device/bench/gpt2_step --backend cuda $shape 2>&1 | tee "$out/bench_gpu.txt"
  python3 bench/peers/gpt2_torch_step.py --device cuda $shape 2>&1 | tee -a "$out/bench_gpu.txt"
fi
