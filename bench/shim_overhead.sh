#!/bin/sh
# Instructions the shim adds per cuLaunchKernel and per cuMemAlloc + cuMemFree pair, counted by
# valgrind callgrind (deterministic) over 20,000 calls resolved through cuGetProcAddress_v2, on
# the fake driver, with and without libvgpu.so preloaded, memory and SM limits set.
# Usage: make native && bench/shim_overhead.sh      (targets: <= 100 and <= 800 instructions)
set -eu
cd "$(dirname "$0")/.."
B=native/build
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)"; exit 2; }
make -s -C native build/bench/shim_overhead >/dev/null
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
N=20000
count() { # count LOOP PRELOAD EXTRA_ENV...: instructions inside LOOP
    loop=$1; pre=$2; shift 2
    env LD_LIBRARY_PATH="$B/fakecuda" LD_PRELOAD="$pre" CUDA_DEVICE_MEMORY_SHARED_CACHE="$T/region" \
        LIBCUDA_LOG_LEVEL=0 "$@" valgrind --tool=callgrind --toggle-collect="$loop" \
        --callgrind-out-file="$T/cg.out" "$B/bench/shim_overhead" >/dev/null 2>&1
    rm -f "$T/region"
    awk '/^summary:/ {print $2}' "$T/cg.out"
}
report() { # report NAME LOOP EXTRA_ENV...
    name=$1; loop=$2; shift 2
    base=$(count "$loop" "" "$@")
    shim=$(count "$loop" "$B/libvgpu.so" "$@")
    echo "$name: $(( (shim - base) / N )) instructions added per call (without shim $(( base / N )), with $(( shim / N )))"
}
echo "shim overhead, callgrind, $N calls each, fake driver"
report "cuLaunchKernel, SM limit 50% (limiter active, budget available)" launch_loop CUDA_DEVICE_MEMORY_LIMIT=64g CUDA_DEVICE_SM_LIMIT=50
report "cuLaunchKernel, no SM limit" launch_loop CUDA_DEVICE_MEMORY_LIMIT=64g
report "cuMemAlloc + cuMemFree pair, 64 GiB limit" alloc_loop CUDA_DEVICE_MEMORY_LIMIT=64g CUDA_DEVICE_SM_LIMIT=50
