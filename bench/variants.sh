#!/usr/bin/env bash
# One device call over binaries built elsewhere: unpacks build-pack/bins.tar.xz (variants packed
# by bench/pack_variant.sh) and runs the steps of PLAN in order while DEADLINE seconds (from the
# start) allow, so that the most wanted figures come first. Summary in $OUT/summary.txt, every
# log in $OUT/logs.tar.gz.
#   tests:V            the tests labelled gpu whose binaries V holds, as ctest runs them (V's
#                      gpu_tests.txt; pack_variant.sh --all-gpu-tests packs every one)
#   tests-if-failed:V  the same, only if an earlier tests step failed
#   tput:V             bench/gpt2_step bf16 at GPT-2 124M (B 16) and 1.5B (B 8); tputng:V the same
#                      with --no-graph (the forward and backward op by op, not replayed);
#                      tput124:V 124M only
#   torch              the PyTorch eager peer on the same shapes; compile: torch.compile at 124M
#   attn:V             bench/attention; attn16:V the same with --bf16-io (bf16 tensors, as the
#                      trainer gives them); attnpeer: PyTorch SDPA on the same shapes
#   ncuattn:V          Nsight Compute's full set (raw metrics, CSV) on the attention kernels at
#                      124M's shape, and the SASS of the bf16 head-size-64 (wgmma) ones, into $OUT
#   gemm:V             bench/gemm_algos (cuBLASLt's algorithms and epilogues) at 124M and 1.5B
#   prof:V, prof124:V  bench/kernel_profile.sh at 1.5B, at 124M; pipe:V  MODE=gpu bench/pipeline.sh
#   offload:V          bench/offload.sh with V's spillway (env OMODELS, default 1.5b; OVARIANTS,
#                      default "gpu offload peer"; OSTEPS, default 6)
# usage (device tool, carry ["build-pack", ".deps"]):
#   PLAN="tests:new tput:old tput:new torch prof:new" DEADLINE=560 bash bench/variants.sh
set -u
cd "$(dirname "$0")/.." || exit 1
export LD_LIBRARY_PATH=$PWD/.deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-} NCCL_NVLS_ENABLE=0
out=${OUT:-/tmp/out}
L=/tmp/variant_logs
mkdir -p "$out" $L /tmp/variants /tmp/variant_tests
S=$out/summary.txt
t0=$(date +%s)
deadline=${DEADLINE:-560}
left() { echo $((deadline - ($(date +%s) - t0))); }
cap() { local l; l=$(left); echo $((l > $1 ? $1 : l)); }
el() { echo "[$(($(date +%s) - t0))s] $*" | tee -a "$S"; }
tar -xJf build-pack/bins.tar.xz -C /tmp/variants || { el "unpack failed"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$S"
export TEST_TMPDIR=/tmp/variant_tests SPILLWAY_SOURCE_DIR=$PWD GTEST_COLOR=no
s124="--layers 12 --heads 12 --dim 768 --seq 1024 --batch 16 --vocab 50257"
s15="--layers 48 --heads 25 --dim 1600 --seq 1024 --batch 8 --vocab 50257"
failed=0
tests() {
  local v=$1 line t n rc
  [ -f "/tmp/variants/$v/gpu_tests.txt" ] || { el "$v: no gpu_tests.txt (pack it again)"; return; }
  while read -r line; do
    t=$(grep -o 'tests/[a-z_]*/[a-z_0-9]*' <<<"$line" | head -1)
    [ -x "/tmp/variants/$v/$t" ] || continue
    n=$(basename "$t")
    # The line is ctest's command (words quoted as ctest quotes them), with V's binaries.
    eval "timeout $(cap 300) ${line//tests\//\/tmp\/variants\/$v\/tests\/}" </dev/null \
      >"$L/${v}_$n.txt" 2>&1
    rc=$?
    [ $rc != 0 ] && failed=1
    el "$v $n rc=$rc $(grep -E '^\[  (PASSED|FAILED|SKIPPED) +\] [0-9]+ test' "$L/${v}_$n.txt" | sort -u | tr '\n' ' ')"
    grep -E '^\[  FAILED  \]|Failure|rror' "$L/${v}_$n.txt" | head -8 | tee -a "$S"
    grep -E "bf16 N=|attention B=|autotuned|^wgmma " "$L/${v}_$n.txt" | tee -a "$S"
  done <"/tmp/variants/$v/gpu_tests.txt"
}
for step in ${PLAN:?set PLAN}; do
  [ "$(left)" -lt 20 ] && { el "out of time before $step"; break; }
  kind=${step%%:*}
  v=${step#*:}
  case $kind in
    tests) tests "$v" ;;
    tests-if-failed) [ $failed = 1 ] && tests "$v" ;;
    tput | tputng | tput124)
      graph=
      [ "$kind" = tputng ] && graph=--no-graph
      shapes=("$s124" "$s15")
      [ "$kind" = tput124 ] && shapes=("$s124")
      for s in "${shapes[@]}"; do
        # shellcheck disable=SC2086  # $s is a list of options
        timeout "$(cap 150)" "/tmp/variants/$v/bench/gpt2_step" --backend cuda --precision bf16 \
          $s --steps 8 --warmup 2 $graph >"$L/${v}_step.txt" 2>&1
        el "$v$graph $(grep -E '^spillway' "$L/${v}_step.txt" | tail -1)"
        grep -E '^(host|gpu|graph|capture):' "$L/${v}_step.txt" | tee -a "$S"
      done ;;
    torch)
      for s in "$s124" "$s15"; do
        # shellcheck disable=SC2086
        timeout "$(cap 150)" python3 bench/peers/gpt2_torch_throughput.py --mode eager $s \
          --steps 8 2>&1 | tail -1 | tee -a "$S"
      done ;;
    compile)
      # shellcheck disable=SC2086
      timeout "$(cap 240)" python3 bench/peers/gpt2_torch_throughput.py --mode compile $s124 \
        --steps 8 2>&1 | tail -1 | tee -a "$S" ;;
    attn) timeout "$(cap 90)" "/tmp/variants/$v/bench/attention" 2>&1 | sed "s/^/$v /" | tee -a "$S" ;;
    attn16)
      timeout "$(cap 90)" "/tmp/variants/$v/bench/attention" --bf16-io 2>&1 | sed "s/^/$v /" |
        tee -a "$S" ;;
    ncuattn)
      ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
      for k in TcForward TcBackwardDq TcBackwardDkv; do
        timeout "$(cap 90)" "$ncu" --set full --page raw --csv -k "regex:$k" -c 1 \
          "/tmp/variants/$v/bench/attention" --bf16-io --reps 1 16:1024:12:64 >"$out/ncu_${k}_$v.csv" 2>&1
        el "ncu $k $v rc=$?"
      done
      objdump=$(command -v cuobjdump || ls /usr/local/cuda/bin/cuobjdump 2>/dev/null | head -1)
      "$objdump" -sass "/tmp/variants/$v/bench/attention" 2>&1 |
        awk '/Function : .*Tc.*(Li64E|Wgmma)/{p=1} /Function : /&&!/Tc.*(Li64E|Wgmma)/{p=0} p' >"$out/sass_$v.txt"
      el "sass $v: $(wc -l <"$out/sass_$v.txt") lines" ;;
    gemm)
      timeout "$(cap 60)" "/tmp/variants/$v/bench/gemm_algos" >"$out/gemm124_$v.txt" 2>&1
      timeout "$(cap 60)" "/tmp/variants/$v/bench/gemm_algos" --rows 8192 --dim 1600 --reps 10 \
        >"$out/gemm15_$v.txt" 2>&1
      el "gemm_algos $v: $(grep -h '^plain' "$out/gemm124_$v.txt" "$out/gemm15_$v.txt" | tr '\n' ' ')" ;;
    attnpeer)
      timeout "$(cap 120)" python3 bench/peers/attention_torch.py 16:1024:12:64 8:1024:25:64 \
        8:1024:24:128 2>&1 | tail -4 | tee -a "$S" ;;
    prof | prof124)
      shape=$s15 tag=15b
      [ "$kind" = prof124 ] && shape=$s124 tag=124m
      # shellcheck disable=SC2086
      OUT=$L TAG=${tag}_$v timeout "$(cap 200)" bash bench/kernel_profile.sh "/tmp/variants/$v" \
        $shape --precision bf16 >"$out/prof${tag}_$v.txt" 2>&1
      el "profile $v ($tag) done"
      head -30 "$out/prof${tag}_$v.txt" >>"$S" ;;
    pipe)
      OUT=$L MODE=gpu STEPS=${PSTEPS:-4} BUILD=/tmp/variants/$v timeout "$(($(left) - 5))" \
        bash bench/pipeline.sh >/dev/null 2>&1
      cat "$L/pipeline.txt" >>"$S"
      el "pipeline done" ;;
    offload)
      OUT=$L BUILD=/tmp/variants/$v MODELS=${OMODELS:-1.5b} VARIANTS=${OVARIANTS:-gpu offload peer} \
        STEPS=${OSTEPS:-6} timeout "$(($(left) - 5))" bash bench/offload.sh >/dev/null 2>&1
      cat "$L/offload.txt" >>"$S"
      el "offload done" ;;
    *) el "unknown step $step" ;;
  esac
done
tar -czf "$out/logs.tar.gz" -C /tmp variant_logs
el "all done"
