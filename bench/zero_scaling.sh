#!/usr/bin/env bash
# ZeRO scaling on one node: tokens/s of `spillway train` on 1 GPU and on N GPUs (mpirun, NCCL)
# for GPT-2 350M and 1.5B at ZeRO stages 0-3 (weak scaling: the same micro-batch per GPU).
# usage (device tool, kind nvidia-h200-x2, carry [".deps"]): bash bench/zero_scaling.sh
# env: MODELS="350m 1.5b", STAGES="0 1 2 3", STEPS=8, GPUS=2 (the N), BUILD=build-device
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/out}
mkdir -p "$out"
build=${BUILD:-build-device}
source bench/device_env.sh
export OMP_NUM_THREADS=4
if [ ! -x "$build/spillway" ]; then
  SPW_CMAKE_FLAGS=-DSPILLWAY_BUILD_TESTS=OFF spw_build "$build" "$out/zs_build.log" spillway || exit 1
fi
gpus=${GPUS:-2}
steps=${STEPS:-8}
printf "%-6s %-5s %-5s %12s %10s %8s\n" model stage gpus tokens/s tok/s/GPU scaling | tee "$out/zero_scaling.txt"
# run MODEL STAGE N: prints tokens/s of the last progress window (0 on failure).
run() {
  local model=$1 stage=$2 n=$3 cfg=/tmp/zs_$1_$2_$3.json log=$out/zs_$1_s$2_n$3.log
  python3 - "$model" "$stage" "$n" "$steps" "$cfg" <<'PY'
import json, sys
model, stage, n, steps, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
L, H, C, B, ckpt = {"350m": (24, 16, 1024, 8, False), "1.5b": (48, 25, 1600, 4, True)}[model]
json.dump({
  "train_batch_size": B * n, "train_micro_batch_size_per_gpu": B,
  "steps_per_print": steps // 2,
  "activation_checkpointing": {"enabled": ckpt},
  "zero_optimization": {"stage": stage},
  "optimizer": {"type": "AdamW", "params": {"lr": 1e-4}},
  "model": {"type": "gpt2", "n_layer": L, "n_head": H, "d_model": C, "seq_len": 1024,
            "vocab_size": 50257},
  "data": {"synthetic": {"train_tokens": 4 * B * n * 1024 * (steps + 2)}},
  "trainer": {"steps": steps, "backend": "cuda"},
}, open(path, "w"))
PY
  if [ "$n" = 1 ]; then
    timeout 400 "$build/spillway" train "$cfg" >"$log" 2>&1
  else
    timeout 400 mpirun --allow-run-as-root -np "$n" -x LD_LIBRARY_PATH -x NCCL_NVLS_ENABLE \
      -x OMP_NUM_THREADS "$build/spillway" train "$cfg" >"$log" 2>&1
  fi
  grep -E "^memory|working buffers" "$log" | sed "s/^/$model stage $stage x$n: /" >>"$out/zero_scaling_memory.txt"
  grep -E "^step +$steps/$steps" "$log" | python3 -c "
import re, sys
m = re.search(r'\| ([0-9.]+)([KM]?) tok/s', sys.stdin.read())
print(round(float(m.group(1)) * {'': 1, 'K': 1e3, 'M': 1e6}[m.group(2)]) if m else 0)"
}
for model in ${MODELS:-350m 1.5b}; do
  base=$(run "$model" 0 1)
  printf "%-6s %-5s %-5s %12s %10s %8s\n" "$model" "-" 1 "$base" "$base" "1.00x" | tee -a "$out/zero_scaling.txt"
  [ "$base" = 0 ] && { tail -5 "$out/zs_${model}_s0_n1.log"; continue; }
  for stage in ${STAGES:-0 1 2 3}; do
    tps=$(run "$model" "$stage" "$gpus")
    [ "$tps" = 0 ] && tail -5 "$out/zs_${model}_s${stage}_n${gpus}.log"
    printf "%-6s %-5s %-5s %12s %10s %8s\n" "$model" "$stage" "$gpus" "$tps" "$(( tps / gpus ))" \
      "$(python3 -c "print(f'{$tps / $base:.2f}x')")" | tee -a "$out/zero_scaling.txt"
  done
done
