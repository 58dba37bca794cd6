#!/bin/sh
# Run every C test of the shim with the fake driver and print "N passed, N failed".
# Environment from the Makefile: B (build dir), NVML_DIR (fake NVML), CUDART (real libcudart.so.13).
set -u
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export LD_LIBRARY_PATH="$B/fakecuda:$NVML_DIR"
export LIBCUDA_LOG_LEVEL=0
# The shared fake NVML reads its devices from JSON (fakes/nvml/README.md); the stand-in ignores it.
export FAKE_NVML_CONFIG="${FAKE_NVML_CONFIG:-$(cd "$(dirname "$0")/.." && pwd)/fakes/nvml/presets/t4-4.json}"
SHIM="$B/libvgpu.so"
passed=0; failed=0
# run NAME ENV... : run build/tests/NAME with the shim preloaded and a fresh region.
run() {
    name=$1; shift
    out="$T/$name.out"
    env LD_PRELOAD="$SHIM" CUDA_DEVICE_MEMORY_SHARED_CACHE="$T/$name.cache" FAKECUDA_STATE="$T/$name.fake" \
        TEST_TMP="$T" SHIM="$SHIM" CUDART="$CUDART" "$@" timeout 300 "$B/tests/$name" >"$out" 2>&1
    rc=$?
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
    p=$(echo "$line" | sed -E 's/.* ([0-9]+) passed.*/\1/'); f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    [ -z "$line" ] && { p=0; f=1; }
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" -ne 0 ]; then echo "FAILED $name (exit $rc):"; cat "$out"; else cat "$out" | grep -v '^FAIL'; fi
}
for t in "$B"/tests/test_*; do
    case "$(basename "$t")" in
    test_parse) run test_parse ;;
    test_memory) run test_memory CUDA_DEVICE_MEMORY_LIMIT_0=1g ;;
    test_accounting) run test_accounting CUDA_DEVICE_MEMORY_LIMIT=2g ;;
    test_processes) run test_processes CUDA_DEVICE_MEMORY_LIMIT=1g ;;
    test_aliases) run test_aliases FAKECUDA_PROC_ALIASES=1 CUDA_DEVICE_MEMORY_LIMIT=1g ;;
    test_devices) run test_devices FAKECUDA_DEVICES=2 CUDA_DEVICE_MEMORY_LIMIT_0=1g CUDA_DEVICE_MEMORY_LIMIT_1=512m ;;
    test_nvml) run test_nvml CUDA_DEVICE_MEMORY_LIMIT_0=2g FAKECUDA_DEVICES=2 ;;
    test_limiter_shared) run test_limiter_shared CUDA_DEVICE_SM_LIMIT=30 ;;
    test_limiter)
        run test_limiter FAKECUDA_VIRTUAL_CLOCK=1 CUDA_DEVICE_SM_LIMIT=30
        run test_limiter FAKECUDA_VIRTUAL_CLOCK=1 CUDA_DEVICE_SM_LIMIT=30 GPU_CORE_UTILIZATION_POLICY=disable LIMITER_EXPECT=100 ;;
    *) run "$(basename "$t")" ;;
    esac
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
