#!/usr/bin/env bash
# Capacity on one GPU: the largest GPT model that completes 3 training steps with the optimizer
# state off the GPU, per placement, and seconds per step with where the optimizer's time goes.
#   nvme      fp32 master, m and v on NVMe (offload_optimizer.device = "nvme"; 12 B/param on
#             disk, a 4 B/param gradient copy in pinned memory)
#   nvme_int8 fp32 master + 8-bit block-wise m and v on NVMe (about 6 B/param on disk), staged
#             Unit by Unit through pinned memory
#   cpu_int8  fp32 master + 8-bit block-wise m and v in pinned CPU memory (6 B/param + 4)
#   cpu       fp32 state in pinned CPU memory (16 B/param with the gradient copy): the baseline
#   fsdp2     the peer: PyTorch FSDP2 with CPUOffloadPolicy (bench/peers/fsdp2_offload.py, B=1,
#             checkpointing, STEPS steps of which the first is warm-up), same sizes; its limit is
#             host memory at about 16 B/param (e.g. SIZES="6.7b 7.5b 8b")
# Parameters and gradients stay on the GPU in fp32 (8 B/param), so the GPU bounds every
# placement above near 8B parameters on an 80 GB H100; NVMe bounds "nvme" at disk / 12 B (about
# 5B on a 64 GiB disk) and "nvme_int8" at disk / 6 B. A "params_" prefix (params_cpu,
# params_nvme_int8, ...) adds offload_param "cpu" at stage 3: parameter and gradient shards in
# pinned CPU memory (8 B/param), the GPU keeps working buffers and activations only, so host
# memory and disk bound the model instead (params_nvme_int8: about 14 B/param in all). A
# "pnvme_" prefix (pnvme_nvme_int8) puts the parameters on NVMe instead (offload_param "nvme":
# they are the fp32 master in the optimizer's file), so pinned memory holds only the gradient
# shards (4 B/param) and staging; NVME_RATIO below 1 keeps the first Units' compact state in
# pinned memory and the rest on NVMe (offload_optimizer.nvme_ratio), and RATIO below 1 keeps
# the first Units wholly on the GPU (offload_optimizer.ratio), to use all three tiers.
# PLAN=1 runs `spillway plan` instead of training (anywhere; set SPILLWAY_PLAN_HARDWARE, e.g.
# gpu=79GiB,cpu=120GiB,memlock=1TiB,nvme=60GiB, to plan for the GPU machine).
# For each placement the sizes run in order until one fails (out of memory, disk, time limit).
# usage (device tool, nvidia-h100-x1, carry [".deps"]), one placement per call to stay within
# the 10-minute limit:
#   MODES=nvme bash bench/capacity.sh
#   MODES=nvme_int8 SIZES="4b 6.7b 8b" bash bench/capacity.sh
#   MODES=cpu_int8 SIZES="4b 6.7b 8b" bash bench/capacity.sh
#   MODES=fsdp2 SIZES="6.7b 7.5b 8b" RUN_TIMEOUT=580 bash bench/capacity.sh   (the peer's limit)
# env: MODES ("nvme nvme_int8 cpu_int8"), SIZES ("1.5b 2.7b 4b 5b"), STEPS (3), RUN_TIMEOUT (300 s per
#      run), NVME_DIR (./.capacity_nvme, on the root disk), AIO_BLOCK (8388608) and AIO_QD (64):
#      the engine's best on the GPU machine's disk (bench/RESULTS.md, nvme_io 2026-12-05),
#      BUILD (build-device), BACKEND (cuda; cpu with SIZES=tiny checks the script anywhere),
#      NVME_RATIO (1), RATIO (1), MAX_IN_CPU (offload_param.max_in_cpu with the pnvme_ modes,
#      e.g. 2.3e9: 6 Units' shards at 18b; unset: no cache), PLAN (unset).
#      Logs and a table under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${OUT:-/tmp/out}
mkdir -p "$out"
build=${BUILD:-build-device}
source bench/device_env.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
if [ ! -x "$build/spillway" ] && [ "${MODES:-}" != fsdp2 ]; then
  SPW_CMAKE_FLAGS=-DSPILLWAY_BUILD_TESTS=OFF spw_build "$build" "$out/cap_build.log" spillway || exit 1
fi
nvme_dir=${NVME_DIR:-$PWD/.capacity_nvme}
steps=${STEPS:-3}
{
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
  free -g | head -2
  mkdir -p "$nvme_dir" && df -h "$nvme_dir" | tail -1
} | tee "$out/capacity_machine.txt"
table=$out/capacity.txt
printf "%-9s %-5s %8s %-8s %9s %10s  %s\n" mode size params status s/step host_GiB \
  "optimizer time (last step)" | tee "$table"

# config MODE SIZE PATH: writes the training config; prints the parameter count.
config() {
  python3 - "$1" "$2" "$steps" "$nvme_dir" "$3" "${AIO_BLOCK:-8388608}" "${AIO_QD:-64}" \
    "${BACKEND:-cuda}" "${NVME_RATIO:-1}" "${RATIO:-1}" "${MAX_IN_CPU:-}" <<'PY'
import json, sys
mode, size, steps, nvme_dir, path, block, qd, backend, nvme_ratio, ratio, max_in_cpu = \
    sys.argv[1:12]
steps = int(steps)
L, d, H = {"1.5b": (48, 1600, 25), "2.7b": (32, 2560, 20), "4b": (36, 3072, 24),
           "5b": (40, 3200, 25), "6.7b": (32, 4096, 32), "8b": (40, 4096, 32),
           "10b": (48, 4096, 32), "12b": (40, 5120, 40), "14b": (40, 5376, 42),
           "16b": (44, 5504, 43), "18b": (48, 5632, 44), "20b": (44, 6144, 48),
           "22b": (48, 6144, 48), "24b": (52, 6144, 48),
           "7.5b": (36, 4096, 32), "tiny": (2, 64, 2)}[size]
if mode == "fsdp2":  # the peer's command-line shape instead of a config
  open(path, "w").write(f"--layers {L} --heads {H} --dim {d}")
  print(f"{(12 * L * d * d + 13 * L * d + 50257 * d + 1024 * d) / 1e9:.2f}B")
  sys.exit(0)
params_device = ("cpu" if mode.startswith("params_") else
                 "nvme" if mode.startswith("pnvme_") else None)
mode = mode.removeprefix("params_").removeprefix("pnvme_")
V, T = 50257, 1024
offload = {"device": "cpu", "pin_memory": True}
params = {"lr": 1e-4}
if mode.startswith("nvme"):
  offload = {"device": "nvme", "nvme_path": nvme_dir, "pin_memory": True,
             "buffer_count": 4, "buffer_size": 64 << 20}
  if float(nvme_ratio) < 1:
    offload["nvme_ratio"] = float(nvme_ratio)
if float(ratio) < 1:
  offload["ratio"] = float(ratio)
if mode.endswith("int8"):
  params["state_dtype"] = "int8"
json.dump({
  "train_batch_size": 1, "train_micro_batch_size_per_gpu": 1, "steps_per_print": 1,
  "activation_checkpointing": {"enabled": True},
  "zero_optimization": dict(
      {"stage": 3 if params_device else 0, "offload_optimizer": offload},
      **({"offload_param": dict({"device": params_device, "pin_memory": True},
                                **({"max_in_cpu": float(max_in_cpu)} if max_in_cpu else {}))}
         if params_device else {})),
  "aio": {"block_size": int(block), "queue_depth": int(qd)},
  "optimizer": {"type": "AdamW", "params": params},
  "model": {"type": "gpt2", "n_layer": L, "n_head": H, "d_model": d, "seq_len": T,
            "vocab_size": V},
  "data": {"synthetic": {"train_tokens": 4 * T * (steps + 2)}},
  "trainer": {"steps": steps, "backend": backend},
}, open(path, "w"))
print(f"{(12 * L * d * d + 13 * L * d + V * d + T * d) / 1e9:.2f}B")
PY
}

for mode in ${MODES:-nvme nvme_int8 cpu_int8}; do
  largest=none
  for size in ${SIZES:-1.5b 2.7b 4b 5b}; do
    cfg=/tmp/cap_${mode}_${size}.json log=$out/cap_${mode}_${size}.log
    params=$(config "$mode" "$size" "$cfg")
    if [ -n "${PLAN:-}" ]; then
      "$build/spillway" plan "$cfg" >"$log" 2>&1
      verdict=$(grep -E "^verdict" "$log")
      printf "%-15s %-5s %8s  %s\n" "$mode" "$size" "$params" "$verdict" | tee -a "$table"
      grep -E "^(gpu|pinned cpu|cpu \(all\)|nvme) " "$log" | sed "s/^/  /" >>"$table"
      case "$verdict" in *"does not fit"*) break ;; esac
      largest="$size ($params)"
      continue
    fi
    rm -f "$nvme_dir"/spillway.*  # files a killed run left behind
    timer=()
    [ -x /usr/bin/time ] && timer=(/usr/bin/time -v -o "$log.time")  # peak host memory
    if [ "$mode" = fsdp2 ]; then
      # shellcheck disable=SC2046  # the shape's arguments
      "${timer[@]}" timeout "${RUN_TIMEOUT:-300}" python3 bench/peers/fsdp2_offload.py \
        $(cat "$cfg") --seq 1024 --vocab 50257 --batch 1 --steps $((steps - 1)) --warmup 1 \
        --checkpointing >"$log" 2>&1
    else
      "${timer[@]}" timeout "${RUN_TIMEOUT:-300}" "$build/spillway" train "$cfg" >"$log" 2>&1
    fi
    rc=$?
    rm -f "$nvme_dir"/spillway.*
    host=$(awk '/Maximum resident/ { printf "%.1f", $NF / 1048576 }' "$log.time" 2>/dev/null)
    line=$(grep -E "^step +$steps/$steps|^fsdp2-cpu-offload" "$log")
    if [ $rc = 0 ] && [ -n "$line" ]; then
      status=ok
      largest="$size ($params)"
      sps=$(echo "$line" | sed -E 's/.*\| ([0-9.]+) ms\/step.*/\1/' | awk '{ printf "%.2f", $1 / 1000 }')
    else
      status="fail($rc)"
      sps=-
    fi
    opt=$(grep -E "^nvme optimizer" "$log" | tail -1)
    printf "%-9s %-5s %8s %-8s %9s %10s  %s\n" "$mode" "$size" "$params" "$status" "$sps" \
      "${host:-?}" "$opt" | tee -a "$table"
    grep -E "^(memory|optimizer|compact|model)" "$log" | sed "s/^/  /" >>"$table"
    grep -E "^step +$steps/$steps|^step +1/$steps" "$log" | sed "s/^/  /" >>"$table"
    if [ "$status" != ok ]; then
      tail -4 "$log" | sed "s/^/  | /" | tee -a "$table"
      break
    fi
  done
  echo "largest that completed $steps steps with $mode: $largest" | tee -a "$table"
done
