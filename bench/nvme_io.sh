#!/usr/bin/env bash
# The NVMe I/O layer on the GPU machine's disk, side by side with dd, in one call:
#  1. build nvme_io and offload_io_test (CPU only) with the carried .deps, run the tests there
#     (io_uring is available there) with their scratch files on the same disk;
#  2. dd with O_DIRECT at queue depth 1 (bs 1M and 8M), then 4 and 8 dd processes on disjoint
#     ranges of one file (seek/skip), aggregate GB/s;
#  3. bench/nvme_io: io_uring over queue depths x block sizes, pread/pwrite at two settings,
#     and io_uring at the default setting writing zeros (as dd does from /dev/zero);
#  4. a table: best dd vs best engine.
# usage (device tool, carry [".deps"], from the repo root): bash bench/nvme_io.sh
# env: NVME_DIR (default ./.nvme_bench, on the root ext4 disk), SIZE_GIB (default 8),
#      QUEUE_DEPTHS (1,8,32,64), BLOCK_MIB (1,8), BUILD_DIR (build-nvme; a build that already
#      holds nvme_io and offload_io_test is used as it is). Logs under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${OUT:-/tmp/out}
mkdir -p "$out"
dir=${NVME_DIR:-$PWD/.nvme_bench}
size_gib=${SIZE_GIB:-8}
mkdir -p "$dir"
build=${BUILD_DIR:-build-nvme}
cmake_deps=()
if [ -d .deps ]; then  # the libraries the GPU machine lacks (../shared/device/fetch-deps.sh)
  deps=$PWD/.deps/usr
  export PKG_CONFIG_PATH=$deps/lib/x86_64-linux-gnu/pkgconfig PKG_CONFIG_SYSROOT_DIR=$PWD/.deps
  export LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
  cmake_deps=(-DCMAKE_PREFIX_PATH="$deps" -DCMAKE_INCLUDE_PATH="$deps/include"
    -DCMAKE_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu")
fi

{
  uname -r
  df -T "$dir" | tail -1
  echo "io_uring_disabled=$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo n/a)" \
    "memlock=$(ulimit -l)" "nproc=$(nproc)"
  lsblk -o NAME,SIZE,ROTA,TYPE,MODEL 2>/dev/null | head -8
} | tee "$out/machine.txt"

if [ ! -x "$build/bench/nvme_io" ] || [ ! -x "$build/tests/offload/offload_io_test" ]; then
  cmake -S . -B "$build" -G Ninja -DSPILLWAY_CUDA=OFF "${cmake_deps[@]}" \
    >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
  cmake --build "$build" --target nvme_io offload_io_test >"$out/build.log" 2>&1 ||
    { grep -E "error|FAILED" "$out/build.log" | head -30; exit 1; }
  echo "build ok"
fi
TMPDIR=$dir "$build"/tests/offload/offload_io_test >"$out/offload_io_test.log" 2>&1
grep -E "PASSED|FAILED|SKIPPED" "$out/offload_io_test.log" | tail -12

# dd, O_DIRECT. GB/s = bytes / seconds / 1e9 from wall-clock time around each run.
mib=$((size_gib * 1024))
bytes=$((mib * 1024 * 1024))
f=$dir/dd.bin
now() { date +%s.%N; }
gbps() { awk -v b="$bytes" -v s="$1" -v e="$2" 'BEGIN { printf "%.2f", b / (e - s) / 1e9 }'; }
dd_out=$out/dd.txt
: >"$dd_out"
# Untimed first pass: the timed passes overwrite allocated blocks, as the engine's do.
dd if=/dev/zero of="$f" bs=1M count=$mib oflag=direct status=none || { echo "dd failed"; exit 1; }
for bs in 1 8; do
  n=$((mib / bs))
  s=$(now); dd if=/dev/zero of="$f" bs=${bs}M count=$n oflag=direct conv=notrunc status=none; e=$(now)
  w=$(gbps "$s" "$e")
  s=$(now); dd if="$f" of=/dev/null bs=${bs}M count=$n iflag=direct status=none; e=$(now)
  r=$(gbps "$s" "$e")
  echo "dd qd1 bs=${bs}M write $w read $r" | tee -a "$dd_out"
done
for p in 4 8; do
  part=$((mib / p))
  s=$(now)
  for i in $(seq 0 $((p - 1))); do
    dd if=/dev/zero of="$f" bs=1M count=$part seek=$((i * part)) oflag=direct conv=notrunc \
      status=none &
  done
  wait; e=$(now)
  w=$(gbps "$s" "$e")
  s=$(now)
  for i in $(seq 0 $((p - 1))); do
    dd if="$f" of=/dev/null bs=1M count=$part skip=$((i * part)) iflag=direct status=none &
  done
  wait; e=$(now)
  r=$(gbps "$s" "$e")
  echo "dd x$p bs=1M write $w read $r" | tee -a "$dd_out"
done
rm -f "$f"

engine_out=$out/nvme_io.txt
"$build"/bench/nvme_io --dir "$dir" --size_gib "$size_gib" --engines uring \
  --queue_depths "${QUEUE_DEPTHS:-1,8,32,64}" --block_mib "${BLOCK_MIB:-1,8}" \
  2>&1 | tee "$engine_out"
"$build"/bench/nvme_io --dir "$dir" --size_gib "$size_gib" --engines pread \
  --queue_depths 1,32 --block_mib 1 2>&1 | grep -v "^#" | tee -a "$engine_out"
"$build"/bench/nvme_io --dir "$dir" --size_gib "$size_gib" --engines uring \
  --queue_depths 32 --block_mib 1 --fill zero 2>&1 | grep -v "^#" | tee -a "$engine_out"

python3 - "$dd_out" "$engine_out" <<'EOF' | tee "$out/summary.txt"
import json, re, sys
dd = []
for line in open(sys.argv[1]):
    m = re.match(r"dd (\S+) bs=(\S+) write (\S+) read (\S+)", line)
    if m:
        dd.append((f"dd {m[1]} bs={m[2]}", float(m[3]), float(m[4])))
runs = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
eng = [(f"{r['engine']} qd={r['queue_depth']} bs={r['block_size'] >> 20}M fill={r['fill']}",
        r["write_gbps"], r["read_gbps"]) for r in runs]
if not dd or not eng:
    sys.exit("missing dd or engine results")
print(f"{'':8} {'best dd (GB/s)':>36} {'best engine (GB/s)':>44} {'ratio':>6}")
for i, what in ((1, "write"), (2, "read")):
    d = max(dd, key=lambda x: x[i])
    e = max((x for x in eng if "fill=random" in x[0]), key=lambda x: x[i])
    print(f"{what:8} {d[i]:6.2f} {d[0]:>29} {e[i]:6.2f} {e[0]:>37} {e[i] / d[i]:6.2f}")
for name, w, r in dd:
    print(f"  {name:40} write {w:6.2f} read {r:6.2f}")
for name, w, r in eng:
    print(f"  {name:40} write {w:6.2f} read {r:6.2f}")
EOF
[ -z "${NVME_DIR:-}" ] && rmdir "$dir"
