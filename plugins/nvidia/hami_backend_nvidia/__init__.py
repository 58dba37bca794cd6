"""hami backend for NVIDIA GPUs (imports nothing heavy: NVML is loaded only by the device plugin)."""
