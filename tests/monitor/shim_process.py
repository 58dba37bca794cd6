"""A process over the fake CUDA driver with the real shim preloaded, driven line by line on stdin.

Run as a script (``python shim_process.py``) with ``LD_PRELOAD=.../libvgpu.so`` and the fake
``libcuda.so.1`` on ``LD_LIBRARY_PATH``. Commands, each answered with one ``ok ...`` line:
``alloc MIB`` (answer: the CUDA result), ``free`` (frees everything allocated), ``launch N``
(N launches), ``start`` (launch in a background thread until ``stop``), ``count`` (launches so far),
``exit``.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading


def main() -> None:
    cuda = ctypes.CDLL("libcuda.so.1")
    assert cuda.cuInit(0) == 0
    dev = ctypes.c_int()
    assert cuda.cuDeviceGet(ctypes.byref(dev), 0) == 0
    ctx = ctypes.c_void_p()
    assert cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev) == 0
    assert cuda.cuCtxSetCurrent(ctx) == 0
    module, func = ctypes.c_void_p(), ctypes.c_void_p()
    assert cuda.cuModuleLoadData(ctypes.byref(module), ctypes.c_char_p(b"x")) == 0
    kernel = os.environ.get("SHIM_PROCESS_KERNEL", "k_1").encode()
    assert cuda.cuModuleGetFunction(ctypes.byref(func), module, kernel) == 0
    cuda.cuLaunchKernel.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p] * 3
    pointers: list[ctypes.c_uint64] = []
    launched = [0]
    running = threading.Event()

    def launch() -> int:
        rc = int(cuda.cuLaunchKernel(func, 1, 1, 1, 1, 1, 1, 0, None, None, None))
        launched[0] += 1
        return rc

    def loop() -> None:
        while running.is_set():
            launch()

    worker: threading.Thread | None = None
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        answer = ""
        if words[0] == "alloc":
            ptr = ctypes.c_uint64()
            rc = cuda.cuMemAlloc_v2(ctypes.byref(ptr), ctypes.c_size_t(int(words[1]) << 20))
            if rc == 0:
                pointers.append(ptr)
            answer = str(rc)
        elif words[0] == "free":
            for ptr in pointers:
                cuda.cuMemFree_v2(ptr)
            pointers.clear()
        elif words[0] == "launch":
            answer = str(max(launch() for _ in range(int(words[1]))))
        elif words[0] == "start":
            running.set()
            worker = threading.Thread(target=loop, daemon=True)
            worker.start()
        elif words[0] == "stop":
            running.clear()
            if worker is not None:
                worker.join()
        elif words[0] == "count":
            answer = str(launched[0])
        elif words[0] == "exit":
            break
        print("ok", answer, flush=True)


if __name__ == "__main__":
    main()
