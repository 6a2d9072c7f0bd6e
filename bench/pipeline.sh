#!/usr/bin/env bash
# Pipeline schedules side by side: pipeline utilization (busy over wall time, mean over stages,
# from `spillway train`'s final line) and tokens/s for gpipe, 1f1b and pipemare, with the 1F1B
# bubble (p-1)/(m+p-1) for reference. One table, also written to $OUT/pipeline.txt.
#
# CPU mode (default): MPI ranks on this machine's CPUs, examples/tiny's model, 2 and 4 stages.
#   usage: bash bench/pipeline.sh            (env: BUILD=build-cpu STEPS=40 MICRO=8)
# GPU mode (device tool, carry [".deps"]): GPT-2 1.5B (fp32: pipelined runs train in fp32) in
# 2 stages, and in 4 where there are 2 GPUs. With fewer GPUs than stages, neighbouring stages
# share a GPU (the trainer's GpuForRank); "gpu-busy" is then the GPU's own figure: the mean of
# nvidia-smi's utilization.gpu (share of time a kernel ran) over the samples from the first to
# the last above 50%, which leaves the start-up out (its brief spikes stayed below 15% on the
# H100). On a shared GPU it is near 100% for every schedule: read tokens/s there.
#   usage: MODE=gpu bash bench/pipeline.sh   (env: STEPS=6 MICRO=8 BUILD=build-device SHAPES=,
#   SCHEDULES="gpipe 1f1b pipemare")
# PipeMare's discrepancy correction runs on the CPU backend only, so the GPU rows use T1 alone.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/out}
mkdir -p "$out"
mode=${MODE:-cpu}
micro=${MICRO:-8}
if [ "$mode" = gpu ]; then
  build=${BUILD:-build-device}
  steps=${STEPS:-6}
  deps=$PWD/.deps/usr
  export PKG_CONFIG_PATH=$deps/lib/x86_64-linux-gnu/pkgconfig PKG_CONFIG_SYSROOT_DIR=$PWD/.deps
  export LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
  export NCCL_NVLS_ENABLE=0 OMP_NUM_THREADS=4
  if [ ! -x "$build/spillway" ]; then
    cmake -S . -B "$build" -G Ninja -DSPILLWAY_BUILD_TESTS=OFF -DCMAKE_PREFIX_PATH="$deps" \
      -DCMAKE_INCLUDE_PATH="$deps/include" -DCMAKE_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu" \
      >"$out/pipeline_configure.log" 2>&1 || { tail -20 "$out/pipeline_configure.log"; exit 1; }
    cmake --build "$build" --target spillway >"$out/pipeline_build.log" 2>&1 ||
      { grep -E "error" "$out/pipeline_build.log" | head; exit 1; }
  fi
  gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
  shapes=${SHAPES:-$([ "$gpus" -ge 2 ] && echo "1.5b:2 1.5b:4" || echo "1.5b:2")}
else
  build=${BUILD:-build-cpu}
  steps=${STEPS:-40}
  export OMP_NUM_THREADS=1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
  export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-} NCCL_NVLS_ENABLE=0
  [ -x "$build/spillway" ] || cmake --build "$build" --target spillway >/dev/null
  shapes="tiny:2 tiny:4"
fi

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "# $(date -u +%F) commit $commit, mode $mode, $micro micro-batches per step, $steps steps" |
  tee "$out/pipeline.txt"
printf "%-6s %-7s %-9s %12s %11s %9s %14s  %s\n" model stages schedule tokens/s util-mean \
  gpu-busy "1F1B-bubble" "util per stage" | tee -a "$out/pipeline.txt"

# run MODEL STAGES SCHEDULE: one training run; prints "tokens/s util-mean per-stage".
run() {
  local model=$1 stages=$2 schedule=$3 cfg=/tmp/pipeline_$1_$2_$3.json
  local log=$out/pipeline_$1_$2_$3.log
  python3 - "$model" "$stages" "$schedule" "$steps" "$micro" "$mode" "$cfg" <<'PY'
import json, sys
model, stages, schedule, steps, micro, mode, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], \
    int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
L, H, C, T, B = {"tiny": (4, 4, 128, 128, 4), "1.5b": (48, 25, 1600, 1024, 2)}[model]
V = 256 if model == "tiny" else 50257
pipeline = {"stages": stages, "micro_batches": micro, "schedule": schedule,
            "partition": "balanced"}
if schedule == "pipemare":
    pipeline["pipemare"] = {"discrepancy_correction": mode != "gpu"}
json.dump({
  "train_micro_batch_size_per_gpu": B,
  "steps_per_print": steps,
  "activation_checkpointing": {"enabled": model != "tiny"},
  "optimizer": {"type": "AdamW", "params": {"lr": 1e-4}},
  "model": {"type": "gpt2", "n_layer": L, "n_head": H, "d_model": C, "seq_len": T,
            "vocab_size": V},
  "pipeline": pipeline,
  "data": {"synthetic": {"train_tokens": 2 * B * micro * T * (steps + 2)}},
  "trainer": {"steps": steps, "backend": "cuda" if mode == "gpu" else "cpu"},
}, open(path, "w"))
PY
  local smi=""
  if [ "$mode" = gpu ]; then
    nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 200 \
      >"$log.smi" 2>/dev/null &
    smi=$!
  fi
  timeout 550 mpirun --oversubscribe --allow-run-as-root -np "$stages" -x LD_LIBRARY_PATH \
    -x NCCL_NVLS_ENABLE -x OMP_NUM_THREADS "$build/spillway" train "$cfg" >"$log" 2>&1
  [ -n "$smi" ] && kill "$smi" 2>/dev/null
  python3 - "$log" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
tps = re.findall(r'\| ([0-9.]+)([KM]?) tok/s', text)
tps = round(float(tps[-1][0]) * {'': 1, 'K': 1e3, 'M': 1e6}[tps[-1][1]]) if tps else 0
m = re.search(r'per stage\): (.*); mean ([0-9.]+)%', text)
busy = "-"
try:  # one line per GPU per sample; the window from the first to the last sample above 50%
    samples = [int(x) for x in open(sys.argv[1] + ".smi").read().split() if x.isdigit()]
    hot = [i for i, x in enumerate(samples) if x > 50]
    if hot:
        window = samples[hot[0]:hot[-1] + 1]
        busy = f"{sum(window) / len(window):.1f}%"
except OSError:
    pass
print(tps, f"{m.group(2)}%" if m else "-", busy,
      (m.group(1) if m else "failed").replace(" ", ""))
PY
}

for shape in $shapes; do
  model=${shape%%:*}
  stages=${shape##*:}
  bubble=$(python3 -c "p, m = $stages, $micro; print(f'{(p - 1) / (m + p - 1) * 100:.1f}%')")
  for schedule in ${SCHEDULES:-gpipe 1f1b pipemare}; do
    read -r tps util busy per <<<"$(run "$model" "$stages" "$schedule")"
    [ "$tps" = 0 ] && tail -3 "$out/pipeline_${model}_${stages}_${schedule}.log"
    printf "%-6s %-7s %-9s %12s %11s %9s %14s  %s\n" "$model" "$stages" "$schedule" "$tps" \
      "$util" "$busy" "$bubble" "$per" | tee -a "$out/pipeline.txt"
  done
done
