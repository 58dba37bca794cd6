#!/bin/bash
# Real-GPU checks of libvgpu.so (specs/shim.md 7.6): one NVIDIA GPU, PyTorch with CUDA, nvidia-ml-py.
# Usage: native/gpu-check.sh OUTDIR     (about 3-4 minutes; prints one figure per line, writes
# OUTDIR/<case>.json). Every case runs in a fresh process with the shim preloaded and its own region.
set -u
OUT=${1:?usage: native/gpu-check.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
make -s -C "$HERE" build/libvgpu.so >/dev/null || { echo "build failed"; exit 1; }
SHIM="$HERE/build/libvgpu.so"
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cat >"$WORK/cases.py" <<'PYEOF'
"""One gpu-check case per invocation: python cases.py CASE OUT_JSON."""
import ctypes, ctypes.util, glob, json, os, subprocess, sys, time

case, out = sys.argv[1], sys.argv[2]
MiB = 1 << 20
result = {"case": case}


def save():
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


def smi_used_mib():
    """Device memory in use per nvidia-smi (ground truth, not hooked: a separate process without the shim)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    q = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
                       capture_output=True, text=True, env=env)
    return int(q.stdout.strip().splitlines()[0]) if q.returncode == 0 else None


def fill(torch, step_mib=64):
    """Allocate step_mib tensors until a clean OutOfMemoryError; returns (MiB held, error type)."""
    held, err = [], None
    try:
        while len(held) * step_mib < 200 * 1024:
            held.append(torch.empty(step_mib * MiB, dtype=torch.uint8, device="cuda"))
    except torch.OutOfMemoryError as e:
        err = "OutOfMemoryError"
    except Exception as e:  # anything else is a failure of the shim
        err = f"{type(e).__name__}: {e}"
    return held, err


if case == "nvml_processes":
    import pynvml
    pynvml.nvmlInit()
    import torch
    torch.zeros(1, device="cuda")
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    pids = [p.pid for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h)]
    result.update(own_pid=os.getpid(), nvml_pids=pids, nvml_sees_own_pid=os.getpid() in pids)

elif case.startswith("mem_"):
    import torch
    free, total = torch.cuda.mem_get_info()
    result.update(limit_mib=1024, mem_get_info_total_mib=total / MiB, mem_get_info_free_mib=free / MiB,
                  props_total_mib=torch.cuda.get_device_properties(0).total_memory / MiB)
    smi_before = smi_used_mib()
    held, err = fill(torch)
    result.update(allocated_mib=len(held) * 64, failure=err, clean_oom=err == "OutOfMemoryError",
                  smi_used_at_oom_mib=smi_used_mib(), smi_used_before_mib=smi_before)
    free2, _ = torch.cuda.mem_get_info()
    result["free_at_oom_mib"] = free2 / MiB
    del held
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    try:
        x = torch.empty(512 * MiB, dtype=torch.uint8, device="cuda")
        result["allocates_again_after_free"] = True
        del x
    except Exception as e:
        result["allocates_again_after_free"] = f"{type(e).__name__}: {e}"
    result["ok"] = (result["clean_oom"] and abs(total / MiB - 1024) < 1 and result["allocates_again_after_free"] is True
                    and result["allocated_mib"] <= 1024)

elif case == "share_hold":  # hold 600 MiB, report, wait for the file named in argv[3] to vanish
    import torch
    try:
        x = torch.empty(600 * MiB, dtype=torch.uint8, device="cuda")
        result["got_600_mib"] = True
    except torch.OutOfMemoryError:
        result["got_600_mib"] = False
    save()
    while os.path.exists(sys.argv[3]):
        time.sleep(0.1)

elif case == "nvml_inside":
    import pynvml
    pynvml.nvmlInit()
    import torch
    x = torch.empty(256 * MiB, dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
    m = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0))
    result.update(total_mib=m.total / MiB, used_mib=m.used / MiB, free_mib=m.free / MiB, ok=abs(m.total / MiB - 1024) < 1)

elif case.startswith("sm_"):
    import torch
    seconds = float(os.environ.get("SM_SECONDS", "10"))
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    c = torch.empty_like(a)
    if case == "sm_graph":
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                torch.matmul(a, b, out=c)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(10):
                torch.matmul(a, b, out=c)
        step, per = g.replay, 10
    else:
        step, per = (lambda: torch.matmul(a, b, out=c)), 1
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    n, t0 = 0, time.time()
    while time.time() - t0 < seconds:
        step()
        n += per
        if n % (50 * per) == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    dt = time.time() - t0
    result.update(matmuls=n, seconds=dt, tflops=2 * 8192**3 * n / dt / 1e12)

elif case == "overhead":
    import torch
    x = torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(100_000):
        x.add_(1)
    torch.cuda.synchronize()
    result["launch_us"] = (time.perf_counter() - t0) / 100_000 * 1e6
    libs = glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "libcudart*.so*"))
    libs += glob.glob(os.path.join(sys.prefix, "lib", "python3*", "site-packages", "nvidia", "cu*", "lib", "libcudart.so*"))
    libs += glob.glob(os.path.join(sys.prefix, "lib", "python3*", "site-packages", "nvidia", "cuda_runtime", "lib", "libcudart.so*"))
    rt = ctypes.CDLL(libs[0]) if libs else None
    if rt:
        p = ctypes.c_void_p()
        rt.cudaMalloc(ctypes.byref(p), 1 << 20)
        rt.cudaFree(p)
        t0 = time.perf_counter()
        for _ in range(10_000):
            rt.cudaMalloc(ctypes.byref(p), 1 << 20)
            rt.cudaFree(p)
        result["malloc_free_pair_us"] = (time.perf_counter() - t0) / 10_000 * 1e6
        result["cudart"] = libs[0]

elif case == "cuinit":
    t0 = time.perf_counter()
    cuda = ctypes.CDLL("libcuda.so.1")
    rc = cuda.cuInit(0)
    result.update(cuinit_ms=(time.perf_counter() - t0) * 1e3, rc=rc)

save()
PYEOF

# run CASE [ENV=VALUE...] : the case in a fresh process with the shim and its own region.
run() {
    local name=$1; shift
    env LD_PRELOAD="$SHIM" CUDA_DEVICE_MEMORY_SHARED_CACHE="$WORK/$name.cache" LIBCUDA_LOG_LEVEL=1 "$@" \
        timeout 120 "$PY" "$WORK/cases.py" "${name%%@*}" "$OUT/$name.json" >"$OUT/$name.log" 2>&1
    echo "$name: exit $? $(tr -d '\n ' <"$OUT/$name.json" 2>/dev/null | cut -c1-400)"
}
plain() { # run a case without the shim
    local name=$1; shift
    env "$@" timeout 120 "$PY" "$WORK/cases.py" "${name%%@*}" "$OUT/$name.json" >"$OUT/$name.log" 2>&1
    echo "$name: exit $? $(tr -d '\n ' <"$OUT/$name.json" 2>/dev/null | cut -c1-400)"
}
figure() { # figure NAME JSON_FILE KEY
    "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2]+':', d.get(sys.argv[3]))" "$OUT/$2.json" "$1" "$3" 2>/dev/null || echo "$1: missing"
}

start=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/gpu: /'
plain nvml_processes
figure nvml_sees_own_pid nvml_processes nvml_sees_own_pid

run mem_default CUDA_DEVICE_MEMORY_LIMIT=1g
run mem_per_device CUDA_DEVICE_MEMORY_LIMIT_0=1g
run mem_expandable CUDA_DEVICE_MEMORY_LIMIT=1g PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
run mem_async CUDA_DEVICE_MEMORY_LIMIT=1g PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync
for c in mem_default mem_per_device mem_expandable mem_async; do
    figure "$c allocated MiB (limit 1024, context charged 256)" "$c" allocated_mib
    figure "$c clean OOM" "$c" clean_oom
    figure "$c mem_get_info total MiB" "$c" mem_get_info_total_mib
    figure "$c nvidia-smi used at OOM MiB (before: see json)" "$c" smi_used_at_oom_mib
    figure "$c allocates again after free" "$c" allocates_again_after_free
done

# Two processes share one region: 600 MiB each under 1 GiB.
touch "$WORK/hold"
env LD_PRELOAD="$SHIM" CUDA_DEVICE_MEMORY_SHARED_CACHE="$WORK/shared.cache" CUDA_DEVICE_MEMORY_LIMIT=1g LIBCUDA_LOG_LEVEL=1 \
    "$PY" "$WORK/cases.py" share_hold "$OUT/share_first.json" "$WORK/hold" >"$OUT/share_first.log" 2>&1 &
first=$!
for _ in $(seq 1 300); do [ -s "$OUT/share_first.json" ] && break; sleep 0.1; done
env LD_PRELOAD="$SHIM" CUDA_DEVICE_MEMORY_SHARED_CACHE="$WORK/shared.cache" CUDA_DEVICE_MEMORY_LIMIT=1g LIBCUDA_LOG_LEVEL=1 \
    "$PY" "$WORK/cases.py" share_hold "$OUT/share_second.json" "$WORK/none" >"$OUT/share_second.log" 2>&1
rm -f "$WORK/hold"
wait $first
figure "share: first process got 600 MiB" share_first got_600_mib
figure "share: second process got 600 MiB (expect False)" share_second got_600_mib

run nvml_inside CUDA_DEVICE_MEMORY_LIMIT=1g
figure "nvml inside: total MiB (expect 1024)" nvml_inside total_mib
figure "nvml inside: used MiB" nvml_inside used_mib

plain sm_matmul@base SM_SECONDS=10
run sm_matmul@30 CUDA_DEVICE_SM_LIMIT=30 SM_SECONDS=10
run sm_matmul@100 CUDA_DEVICE_SM_LIMIT=100 SM_SECONDS=10
plain sm_graph@base SM_SECONDS=10
run sm_graph@30 CUDA_DEVICE_SM_LIMIT=30 SM_SECONDS=10
"$PY" - "$OUT" <<'PYEOF'
import json, os, sys
out = sys.argv[1]
def tf(n):
    try:
        return json.load(open(os.path.join(out, n + ".json")))["tflops"]
    except Exception:
        return None
r = {}
for kind in ("sm_matmul", "sm_graph"):
    base, lim = tf(kind + "@base"), tf(kind + "@30")
    r[kind + "_ratio_30"] = lim / base if base and lim else None
    print(f"{kind} throughput ratio at 30% (accept 0.20-0.45): {r[kind + '_ratio_30']}")
base, full = tf("sm_matmul@base"), tf("sm_matmul@100")
r["sm_matmul_ratio_100"] = full / base if base and full else None
print(f"sm_matmul throughput ratio at limit 100 (expect within 3% of 1): {r['sm_matmul_ratio_100']}")
json.dump(r, open(os.path.join(out, "sm_summary.json"), "w"), indent=1)
PYEOF

plain overhead@base
run overhead@shim CUDA_DEVICE_MEMORY_LIMIT=64g CUDA_DEVICE_SM_LIMIT=100
plain cuinit@base
run cuinit@shim CUDA_DEVICE_MEMORY_LIMIT=64g
for k in launch_us malloc_free_pair_us; do
    figure "overhead $k without shim" overhead@base $k
    figure "overhead $k with shim" overhead@shim $k
done
figure "cuInit ms without shim" cuinit@base cuinit_ms
figure "cuInit ms with shim" cuinit@shim cuinit_ms
echo "gpu-check: $(( $(date +%s) - start )) s; JSON in $OUT"
