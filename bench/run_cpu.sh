#!/usr/bin/env bash
# Runs spillway's CPU training step and its PyTorch peer side by side on the same shapes and
# thread count. usage: bench/run_cpu.sh [BUILD_DIR]   (PYTHON=... to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
python=${PYTHON:-/usr/bin/python3}
threads=${OMP_NUM_THREADS:-$(nproc)}
export OMP_NUM_THREADS=$threads
cmake --build "$build" --target gpt2_step >/dev/null
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "${COMMIT:-unknown}")
echo "# $(date -u +%F) commit $commit, $(lscpu | sed -n 's/^Model name: *//p'), $threads threads"
for shape in "--layers 4 --dim 128 --heads 4 --seq 128 --batch 16" \
             "--layers 12 --dim 768 --heads 12 --seq 256 --batch 4"; do
  "$build/bench/gpt2_step" $shape --steps 10
  "$python" bench/peers/gpt2_torch_step.py $shape --steps 10
done
