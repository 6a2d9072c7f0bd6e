#!/usr/bin/env bash
# The SIMD CPU AdamW against the memory bandwidth (triad) and against torch.optim.AdamW, side by
# side on the same n and thread count, on the GPU machine (run from the repo root, carried
# .deps as in bench/device_run.sh; results under $OUT).
# usage: bash bench/cpu_adam.sh        (N=1e8 parameters, THREADS=nproc, BUILD=build-device)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/out}
mkdir -p "$out"
n=${N:-100000000}
build=${BUILD:-build-device}
python=${PYTHON:-python3}
export OMP_NUM_THREADS=${THREADS:-$(nproc)}
export OMP_PROC_BIND=${OMP_PROC_BIND:-close} OMP_PLACES=${OMP_PLACES:-cores}
if [ -d .deps/usr ]; then
  deps=$PWD/.deps/usr
  export PKG_CONFIG_PATH=$deps/lib/x86_64-linux-gnu/pkgconfig PKG_CONFIG_SYSROOT_DIR=$PWD/.deps
  export LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
  cmake_deps=(-DCMAKE_PREFIX_PATH="$deps" -DCMAKE_INCLUDE_PATH="$deps/include"
              -DCMAKE_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu")
else
  cmake_deps=()
fi
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja "${cmake_deps[@]}" >"$out/cpu_adam_configure.log" 2>&1 ||
    { tail -30 "$out/cpu_adam_configure.log"; exit 1; }
fi
cmake --build "$build" --target cpu_adam >"$out/cpu_adam_build.log" 2>&1 ||
  { grep -E "error|FAILED" "$out/cpu_adam_build.log" | head -30; exit 1; }
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "${COMMIT:-unknown}")
echo "# $(date -u +%F) commit $commit, $(lscpu | sed -n 's/^Model name: *//p'), n=$n," \
  "$OMP_NUM_THREADS threads" | tee "$out/cpu_adam.txt"
"$build/bench/cpu_adam" --n "$n" --isa all | tee -a "$out/cpu_adam.txt"
for mode in fused foreach default; do
  "$python" bench/peers/cpu_adam_torch.py --n "$n" --mode "$mode" | tee -a "$out/cpu_adam.txt"
done
# The summary: the best ISA's figures against the triad (target >= 80%) and torch (>= 5x).
"$python" - "$out/cpu_adam.txt" <<'PY' | tee "$out/cpu_adam_summary.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
triad = next(r for r in rows if r["impl"] == "triad")
peers = [r for r in rows if r["impl"].startswith("pytorch")]
print(f"triad: {triad['gb_per_s']:.1f} GB/s; " + "; ".join(
    f"{p['impl']}: {p['ms_per_step']:.1f} ms/step, {p['gb_per_s']:.1f} GB/s" for p in peers))
names = " | ".join(f"vs {p['impl'].rsplit('-', 1)[1]} (>= 5x)" for p in peers)
print(f"| kernel | bf16 out | ms/step | params/s | GB/s | vs triad (>= 80%) | {names} |")
print("|---|---|---|---|---|---|" + "---|" * len(peers))
for r in rows:
    if r["impl"].startswith("spillway") and "bf16_out" in r:  # fp32 state (not the compact kernels)
        ratios = " | ".join(f"{p['ms_per_step'] / r['ms_per_step']:.1f}x" for p in peers)
        print(f"| {r['impl']} | {'yes' if r['bf16_out'] else 'no'} | {r['ms_per_step']:.1f} | "
              f"{r['params_per_s']:.3g} | {r['gb_per_s']:.1f} | {100 * r['triad_fraction']:.0f}% | "
              f"{ratios} |")
PY
