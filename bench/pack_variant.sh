#!/usr/bin/env bash
# Packs the GPU binaries of a build directory as one variant for bench/variants.sh: stripped,
# into build-pack/bins.tar.xz (added to what is there; about 11.5 MB a variant, 19.5 MB with
# --all-gpu-tests; --bench-only: bench/gpt2_step and bench/attention alone, for timings). Build
# them first:
#   cmake --build BUILD --target spillway gpt2_step attention gemm_algos cuda_ops_test \
#     gpu_training_test hf_gpu_golden_test llama_cuda_test forward_backward_test
#   (--all-gpu-tests: also zero_test offload_test nvme_offload_test memory_plan_test)
# The variant's gpu_tests.txt lists ctest's commands for the tests labelled gpu (paths relative
# to the variant), which variants.sh's tests step runs where the variant holds the binary: the
# five above, or with --all-gpu-tests every one.
# usage: bench/pack_variant.sh BUILD NAME [--all-gpu-tests | --bench-only]
#   (then: device call with carry ["build-pack", ".deps"])
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: bench/pack_variant.sh BUILD NAME [--all-gpu-tests | --bench-only]"
build=${1:?$usage}
name=${2:?$usage}
mode=${3:-}
case $mode in "" | --all-gpu-tests | --bench-only) ;; *) echo "$usage" >&2; exit 2 ;; esac
build_abs=$(cd "$build" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p build-pack
[ -f build-pack/bins.tar.xz ] && tar -xJf build-pack/bins.tar.xz -C "$stage"
rm -rf "${stage:?}/$name"
mkdir -p "$stage/$name/bench"
[ "$mode" = --bench-only ] || cp "$build/spillway" "$stage/$name/"
cp "$build/bench/gpt2_step" "$build/bench/attention" "$stage/$name/bench/"
[ "$mode" != --bench-only ] && [ -x "$build/bench/gemm_algos" ] && cp "$build/bench/gemm_algos" "$stage/$name/bench/"
# ctest's commands, each after `env` and its environment, with the build directory's prefix
# dropped, mpiexec found on the PATH and SPILLWAY_SOURCE_DIR left to the caller; run from the
# repository's root (their working directory).
ctest --test-dir "$build" -N -V -L gpu | awk '
  function flush() { if (cmd != "") print "env " vars cmd }
  /^[0-9]+: Test command: / { flush(); sub(/^[0-9]+: Test command: /, ""); cmd = $0; vars = ""
                              in_env = 0; next }
  /^[0-9]+: Environment variables:/ { in_env = 1; next }
  in_env && /^[0-9]+:  / { v = $0; sub(/^[0-9]+:  /, "", v); vars = vars "\"" v "\" "; next }
  { in_env = 0 }
  END { flush() }' |
  sed -e "s|$build_abs/||g" -e 's| /[^ "]*/mpiexec | mpiexec |' \
    -e 's|"SPILLWAY_SOURCE_DIR=[^"]*" ||' >"$stage/$name/gpu_tests.txt"
[ -s "$stage/$name/gpu_tests.txt" ] || { echo "no gpu-labelled tests in $build" >&2; exit 1; }
lean="tests/kernels/cuda_ops_test tests/train/gpu_training_test tests/hf/hf_gpu_golden_test \
tests/model/llama_cuda_test tests/model/forward_backward_test"
for t in $(grep -o 'tests/[a-z_]*/[a-z_0-9]*' "$stage/$name/gpu_tests.txt" | sort -u); do
  [ "$mode" = --bench-only ] && continue
  case " $lean " in *" $t "*) ;; *) [ "$mode" = --all-gpu-tests ] || continue ;; esac
  mkdir -p "$stage/$name/$(dirname "$t")"
  cp "$build/$t" "$stage/$name/$t"
done
find "$stage/$name" -type f -perm -u+x -exec strip {} +
tar -cJf build-pack/bins.tar.xz -C "$stage" .
ls -la build-pack/bins.tar.xz
