#!/usr/bin/env bash
# Packs the GPU binaries of a build directory as one variant for bench/variants.sh: stripped,
# into build-pack/bins.tar.xz (added to what is there; about 1.5 MB a variant). Build them first:
#   cmake --build BUILD --target spillway gpt2_step attention gemm_algos cuda_ops_test \
#     gpu_training_test hf_gpu_golden_test llama_cuda_test forward_backward_test
# usage: bench/pack_variant.sh BUILD NAME      (then: device call with carry ["build-pack", ".deps"])
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: bench/pack_variant.sh BUILD NAME}
name=${2:?usage: bench/pack_variant.sh BUILD NAME}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p build-pack
[ -f build-pack/bins.tar.xz ] && tar -xJf build-pack/bins.tar.xz -C "$stage"
rm -rf "${stage:?}/$name"
mkdir -p "$stage/$name/bench" "$stage/$name/tests"/{kernels,train,hf,model}
cp "$build/spillway" "$stage/$name/"
cp "$build/bench/gpt2_step" "$build/bench/attention" "$stage/$name/bench/"
[ -x "$build/bench/gemm_algos" ] && cp "$build/bench/gemm_algos" "$stage/$name/bench/"
for t in kernels/cuda_ops_test train/gpu_training_test hf/hf_gpu_golden_test model/llama_cuda_test \
  model/forward_backward_test; do
  cp "$build/tests/$t" "$stage/$name/tests/$t"
done
strip "$stage/$name/spillway" "$stage/$name"/bench/* "$stage/$name"/tests/*/*
tar -cJf build-pack/bins.tar.xz -C "$stage" .
ls -la build-pack/bins.tar.xz
