#!/usr/bin/env bash
# Where a GPU training step's time goes: Nsight Compute (ncu) times every kernel of one step of
# bench/gpt2_step (which starts the profiler after its warm-up); the table sums them by kernel,
# largest first. The step's wall time without the profiler is printed first.
# usage (device tool): bench/kernel_profile.sh BUILD_DIR [gpt2_step options]
#   e.g. TAG=124m bench/kernel_profile.sh build-device --layers 12 --heads 12 --dim 768 --seq 1024 \
#          --batch 16 --vocab 50257 --precision bf16
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: bench/kernel_profile.sh BUILD_DIR [gpt2_step options]}
shift
out=${OUT:-/tmp/out}
mkdir -p "$out"
csv=$out/ncu${TAG:+_$TAG}.csv  # TAG names the output of one of several runs
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
[ -x "$ncu" ] || { echo "ncu not found"; exit 1; }
"$build/bench/gpt2_step" --backend cuda "$@" --steps 5 --warmup 2 | grep "^spillway"
"$ncu" --csv --metrics gpu__time_duration.sum --clock-control none --profile-from-start off \
  "$build/bench/gpt2_step" --backend cuda "$@" --steps 1 --warmup 1 >"$csv" 2>"$csv.err"
python3 - "$csv" <<'PY'
import collections, csv, re, sys
rows = list(csv.reader(open(sys.argv[1])))
start = next(i for i, r in enumerate(rows) if r[:1] == ["ID"])  # the program's lines come first
head, rows = rows[start], [r for r in rows[start + 1:] if len(r) == len(rows[start])]
name, value = head.index("Kernel Name"), head.index("Metric Value")
times = [(r[name], float(r[value].replace(",", ""))) for r in rows]
step = times  # the timed step only (gpt2_step starts the profiler after its warm-up)
total = collections.defaultdict(lambda: [0, 0.0])
for k, ns in step:
    short = re.sub(r"\(.*", "", k)[:70]
    total[short][0] += 1
    total[short][1] += ns
s = sum(v[1] for v in total.values())
print(f"kernels of one step: {len(step)}, GPU time {s / 1e6:.1f} ms")
print(f"{'kernel':70} {'calls':>6} {'ms':>8} {'share':>6}")
for k, (n, ns) in sorted(total.items(), key=lambda kv: -kv[1][1])[:30]:
    print(f"{k:70} {n:6d} {ns / 1e6:8.2f} {100 * ns / s:5.1f}%")
PY
