# Sourced from the repository root by the bench scripts that run on the GPU machine.
# Exports the environment for the carried .deps (../shared/device/fetch-deps.sh), when present,
# and defines spw_build BUILD_DIR LOG TARGET...: configures BUILD_DIR (Ninja, plus the flags in
# SPW_CMAKE_FLAGS) and builds the targets, logging to LOG; on failure prints the errors and
# returns 1.
cmake_deps=()
if [ -d .deps ]; then
  deps=$PWD/.deps/usr
  export PKG_CONFIG_PATH=$deps/lib/x86_64-linux-gnu/pkgconfig PKG_CONFIG_SYSROOT_DIR=$PWD/.deps
  export LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
  cmake_deps=(-DCMAKE_PREFIX_PATH="$deps" -DCMAKE_INCLUDE_PATH="$deps/include"
    -DCMAKE_LIBRARY_PATH="$deps/lib/x86_64-linux-gnu")
fi
export NCCL_NVLS_ENABLE=0  # NVLink multicast stays off on the lent machines

spw_build() {
  local build=$1 log=$2
  shift 2
  # shellcheck disable=SC2086  # SPW_CMAKE_FLAGS is a list of flags
  cmake -S . -B "$build" -G Ninja "${cmake_deps[@]}" ${SPW_CMAKE_FLAGS:-} >"$log" 2>&1 ||
    { tail -20 "$log"; return 1; }
  cmake --build "$build" --target "$@" >>"$log" 2>&1 ||
    { grep -E "error|FAILED" "$log" | head -20; return 1; }
}
