#!/usr/bin/env bash
# The Llama checks that need the GPU machine, in one call: the CUDA op tests (Llama ops and GQA
# attention vs the CPU backend), the whole Llama model on cuda vs cpu, the CPU golden test, and
# the golden reference regenerated with PyTorch 2.x and cross-checked against
# transformers.LlamaForCausalLM. Builds as bench/device_run.sh does (with the carried .deps).
# usage (device tool, carry [".deps"]): bash bench/llama_device.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/out}
mkdir -p "$out"
deps=$PWD/.deps/usr
export PKG_CONFIG_PATH=$deps/lib/x86_64-linux-gnu/pkgconfig PKG_CONFIG_SYSROOT_DIR=$PWD/.deps
export LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
cmake -S . -B build-device -G Ninja -DCMAKE_PREFIX_PATH="$deps" \
  -DCMAKE_INCLUDE_PATH="$deps/include" -DCMAKE_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu" \
  >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build build-device --target cuda_ops_test llama_cuda_test llama_golden_test \
  >"$out/build.log" 2>&1 || { grep -E "error|FAILED" "$out/build.log" | head -30; exit 1; }
echo "build ok"
status=0
# Run directly, not through ctest: ctest counts a skipped gtest as passed.
build-device/tests/kernels/cuda_ops_test 2>&1 | tee "$out/cuda_ops_test.txt" |
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|rel|Expected" | head -60
[ "${PIPESTATUS[0]}" = 0 ] || status=1
build-device/tests/model/llama_cuda_test 2>&1 | tee "$out/llama_cuda_test.txt" |
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |^unit|Failure" | head -40
[ "${PIPESTATUS[0]}" = 0 ] || status=1
SPILLWAY_SOURCE_DIR=$PWD build-device/tests/golden/llama_golden_test 2>&1 |
  tee "$out/llama_golden_test.txt" | grep -E "worst|^\[  (FAILED|PASSED) "
[ "${PIPESTATUS[0]}" = 0 ] || status=1
# The committed reference was made with Debian's PyTorch 1.13: PyTorch 2.x must agree, and the
# reference's math must be transformers' LlamaForCausalLM.
python3 tests/golden/make_llama_golden.py "$out/llama_torch2.safetensors" --require-hf 2>&1 |
  tee "$out/llama_hf_check.txt" || status=1
python3 tests/golden/compare_golden.py tests/golden/llama_tiny.safetensors \
  "$out/llama_torch2.safetensors" --tol 1e-6 2>&1 | tee "$out/llama_golden_compare.txt" || status=1
echo "llama device checks: $([ $status = 0 ] && echo PASS || echo FAIL)"
exit $status
