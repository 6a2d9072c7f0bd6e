#!/usr/bin/env bash
# Optimizer offload on one GPU: tokens/s and the per-step time split of `spillway train` with
# the optimizer in the GPU and offloaded to the CPU (synchronous, without clipping, delayed
# update), and of PyTorch FSDP2 with CPUOffloadPolicy (bench/peers/fsdp2_offload.py, bf16),
# side by side on GPT-2 1.5B (L=48, d=1600, 25 heads) and a 3.8B (L=32, d=3072, 24 heads),
# B=8, T=1024, activation checkpointing on.
# usage (device tool, nvidia-h100-x1, carry [".deps"]): bash bench/offload.sh
# env: MODELS="1.5b 3.8b", VARIANTS="gpu offload offload_noclip offload_delayed peer", STEPS=6,
#      PRECISION=bf16 (as the peer; or fp32); variant offload_param: stage 3 with the parameters
#      and gradients in pinned CPU memory too (offload_param "cpu"); variant offload_ratio:
#      offload_optimizer.ratio RATIO (default 0.6, the last Units on the CPU; offload_ratio0.4:
#      ratio 0.4; offload_ratioauto: "auto", the most the GPU holds),
#      BUILD=build-device; a variant ending in _cpuckpt also keeps the activation checkpoints in
#      CPU memory (offload_noclip_cpuckpt); "noclip" anywhere in a variant's name turns gradient
#      clipping off (offload_ratio_noclip).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${OUT:-/tmp/out}
mkdir -p "$out"
build=${BUILD:-build-device}
deps=$PWD/.deps/usr
export PKG_CONFIG_PATH=$deps/lib/x86_64-linux-gnu/pkgconfig PKG_CONFIG_SYSROOT_DIR=$PWD/.deps
export LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
if [ ! -x "$build/spillway" ]; then
  cmake -S . -B "$build" -G Ninja -DSPILLWAY_BUILD_TESTS=OFF -DCMAKE_PREFIX_PATH="$deps" \
    -DCMAKE_INCLUDE_PATH="$deps/include" -DCMAKE_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu" \
    >"$out/offload_configure.log" 2>&1 || { tail -20 "$out/offload_configure.log"; exit 1; }
  cmake --build "$build" --target spillway >"$out/offload_build.log" 2>&1 ||
    { grep -E "error" "$out/offload_build.log" | head; exit 1; }
fi
steps=${STEPS:-6}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/offload.txt"
printf "%-5s %-16s %10s  %s\n" model variant tokens/s "split per step" | tee -a "$out/offload.txt"
# spillway MODEL VARIANT: one `spillway train` run; prints tokens/s of the last window and the
# offload split line.
spillway() {
  local model=$1 variant=$2 cfg=/tmp/offload_$1_$2.json log=$out/offload_$1_$2.log
  python3 - "$model" "$variant" "$steps" "$cfg" "${PRECISION:-bf16}" "${RATIO:-0.6}" <<'PY'
import json, sys
model, variant, steps, path, precision, ratio = sys.argv[1:7]
steps = int(steps)
L, H, C = {"1.5b": (48, 25, 1600), "3.8b": (32, 24, 3072)}[model]
zero = {"stage": 0}
if variant != "gpu":
    zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
if variant.startswith("offload_ratio"):  # partial offload: the first Units step on the GPU
    digits = variant[len("offload_ratio"):].split("_")[0]  # offload_ratio0.4: ratio 0.4
    zero["offload_optimizer"]["ratio"] = digits if digits == "auto" else float(digits or ratio)
if variant.startswith("offload_param"):  # ZeRO-3 with the parameters in CPU memory too
    zero["stage"] = 3
    zero["offload_param"] = {"device": "cpu", "pin_memory": True}
if variant.startswith("offload_delayed"):
    zero["offload_optimizer"].update({"delayed_update": True, "delayed_update_warmup": 1})
ckpt = {"enabled": True, "cpu_checkpointing": variant.endswith("_cpuckpt")}
json.dump({
  "train_batch_size": 8, "train_micro_batch_size_per_gpu": 8,
  "gradient_clipping": 0.0 if "noclip" in variant else 1.0,
  "steps_per_print": steps // 2,
  "activation_checkpointing": ckpt,
  "zero_optimization": zero,
  "optimizer": {"type": "AdamW", "params": {"lr": 1e-4}},
  "model": {"type": "gpt2", "n_layer": L, "n_head": H, "d_model": C, "seq_len": 1024,
            "vocab_size": 50257},
  "data": {"synthetic": {"train_tokens": 8 * 1024 * (steps + 4)}},
  "trainer": {"steps": steps, "backend": "cuda"},
  "bf16": {"enabled": precision == "bf16"},
}, open(path, "w"))
PY
  timeout 400 "$build/spillway" train "$cfg" >"$log" 2>&1
  local tps split
  tps=$(grep -E "^step +$steps/$steps" "$log" | python3 -c "
import re, sys
m = re.search(r'\| ([0-9.]+)([KM]?) tok/s', sys.stdin.read())
print(round(float(m.group(1)) * {'': 1, 'K': 1e3, 'M': 1e6}[m.group(2)]) if m else 0)")
  split=$(grep -E "^offload per step" "$log" | tail -1 | sed 's/^offload per step: //')
  [ "$tps" = 0 ] && split="failed: $(tail -2 "$log" | tr '\n' ' ')"
  printf "%-5s %-16s %10s  %s\n" "$model" "spillway-$variant" "$tps" "$split" | tee -a "$out/offload.txt"
}
peer() {
  local model=$1 log=$out/offload_$1_peer.log
  local shape
  shape=$(python3 -c "print({'1.5b': '--layers 48 --heads 25 --dim 1600',
                             '3.8b': '--layers 32 --heads 24 --dim 3072'}['$model'])")
  # shellcheck disable=SC2086
  timeout 600 python3 bench/peers/fsdp2_offload.py $shape --seq 1024 --vocab 50257 --batch 8 \
    --steps "$((steps - 2))" --warmup 1 --checkpointing >"$log" 2>&1
  local line
  line=$(grep "^fsdp2" "$log" || echo "failed: $(tail -2 "$log" | tr '\n' ' ')")
  printf "%-5s %-16s %10s  %s\n" "$model" "fsdp2-offload" \
    "$(echo "$line" | sed -nE 's/.*\| ([0-9]+) tok\/s.*/\1/p')" "$line" | tee -a "$out/offload.txt"
}
for model in ${MODELS:-1.5b 3.8b}; do
  for variant in ${VARIANTS:-gpu offload offload_noclip offload_delayed peer}; do
    if [ "$variant" = peer ]; then
      peer "$model"
    elif [ "$variant" = gpu ] && [ "$model" = 3.8b ]; then
      continue  # 16 bytes per parameter of fp32 state: 61 GB before activations
    else
      spillway "$model" "$variant"
    fi
  done
done
grep -hE "^memory|offloaded to" "$out"/offload_*.log | sort -u >"$out/offload_memory.txt"
