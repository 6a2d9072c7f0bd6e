#!/usr/bin/env bash
# GPT-2 training throughput on one GPU: spillway (bench/gpt2_step, fp32 and bf16) and its
# PyTorch peer (bench/peers/gpt2_torch_throughput.py, bf16 autocast, eager and torch.compile)
# in the same call, on 124M (L12 d768 T1024 B16) and 1.5B (L48 d1600 T1024 B8).
# usage: bench/gpt2_throughput.sh BUILD_DIR [OUT_DIR]   (SHAPES="124m 1.5b", SKIP_TORCH=1,
#        SPILLWAY_PRECISIONS="bf16 fp32", TORCH_MODES="eager compile" to narrow it down)
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: bench/gpt2_throughput.sh BUILD_DIR [OUT_DIR]}
out=${2:-/tmp/gpt2_throughput}
mkdir -p "$out"
commit=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "# $(date -u +%F) commit $commit, $gpu" | tee "$out/throughput.txt"
for shape in ${SHAPES:-124m 1.5b}; do
  case $shape in
    124m) args="--layers 12 --heads 12 --dim 768 --seq 1024 --batch 16 --vocab 50257" ;;
    1.5b) args="--layers 48 --heads 25 --dim 1600 --seq 1024 --batch 8 --vocab 50257" ;;
    *) echo "unknown shape $shape"; exit 2 ;;
  esac
  for precision in ${SPILLWAY_PRECISIONS:-bf16 fp32}; do
    timeout 300 "$build/bench/gpt2_step" --backend cuda --precision "$precision" $args \
      --steps 8 --warmup 2 2>&1 | tee -a "$out/throughput.txt"
  done
  [ "${SKIP_TORCH:-0}" = 1 ] && continue
  for mode in ${TORCH_MODES:-eager compile}; do
    timeout 300 python3 bench/peers/gpt2_torch_throughput.py --mode "$mode" $args --steps 8 \
      2>&1 | tail -2 | tee -a "$out/throughput.txt"
  done
done
