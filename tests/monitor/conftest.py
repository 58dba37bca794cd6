"""Processes over the fake CUDA driver with the real shim preloaded, writing real regions."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "native"
SCRIPT = Path(__file__).with_name("shim_process.py")


class ShimProcess:
    """A running :mod:`shim_process`; :meth:`do` sends one command and returns its answer."""

    def __init__(self, cache: Path, env: dict[str, str]) -> None:
        full = {
            **os.environ,
            "LD_PRELOAD": str(NATIVE / "build" / "libvgpu.so"),
            "LD_LIBRARY_PATH": str(NATIVE / "build" / "fakecuda"),
            "CUDA_DEVICE_MEMORY_SHARED_CACHE": str(cache),
            "FAKECUDA_MEMORY": str(16 << 30),
            "LIBCUDA_LOG_LEVEL": "1",
            **env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=full,
            text=True,
        )

    def do(self, command: str) -> str:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line.startswith("ok"), f"{command!r} answered {line!r}"
        return line[2:].strip()

    def exit(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("exit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()


@pytest.fixture(scope="session")
def native_build() -> Path:
    """The shim and fake driver, built by ``make -C native`` when missing or stale."""
    subprocess.run(
        ["make", "-s", "-C", str(NATIVE), "build/libvgpu.so", "build/fakecuda/libcuda.so.1"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return NATIVE / "build"


@pytest.fixture
def shim_processes(native_build: Path) -> Iterator[list[ShimProcess]]:
    """Start processes with ``spawn(cache, **env)``; all are ended after the test."""
    started: list[ShimProcess] = []
    yield started
    for process in started:
        process.exit()


def spawn(started: list[ShimProcess], cache: Path, **env: str) -> ShimProcess:
    process = ShimProcess(cache, env)
    started.append(process)
    return process
