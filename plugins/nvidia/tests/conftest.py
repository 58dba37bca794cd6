"""Fixtures for the NVIDIA backend's tests: the fake libnvidia-ml.so.1 and its device configurations.

The fake (``native/fakes/nvml``, built by ``make fakenvml``) is loaded once per test process by
absolute path, so the real nvidia-ml-py binding's ``CDLL("libnvidia-ml.so.1")`` finds it by its
soname whatever the machine has installed; subprocess tests use ``LD_LIBRARY_PATH`` instead. Each
test points ``FAKE_NVML_CONFIG`` at its own device file, read by the fake at NVML init.
"""

from __future__ import annotations

import ctypes
import json
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
FAKE_DIR = REPO / "native" / "fakes" / "nvml"
LIBRARY = FAKE_DIR / "build" / "libnvidia-ml.so.1"
PRESETS = FAKE_DIR / "presets"
PRESET_NAMES = ("a100-8-nvlink", "t4-4", "h100-mig")

#: Writes (or picks) a fake NVML configuration and points the fake at it; returns its path.
UseNvml = Callable[[str | dict[str, object]], Path]


@pytest.fixture(scope="session")
def fake_library() -> ctypes.CDLL:
    """The fake NVML, loaded into this process; fails with the remedy when it was not built."""
    if not LIBRARY.exists():
        pytest.fail(f"{LIBRARY} is missing: run `make fakenvml` (make test builds it)")
    return ctypes.CDLL(str(LIBRARY), mode=ctypes.RTLD_GLOBAL)


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    """The file the fake polls for XID events (lines ``<uuid-or-index> <xid>``)."""
    path = tmp_path / "xid-events"
    path.write_text("")
    return path


@pytest.fixture
def use_nvml(
    fake_library: ctypes.CDLL, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, events_file: Path
) -> Iterator[UseNvml]:
    """Point the fake at a preset name or a configuration dict."""

    def use(config: str | dict[str, object]) -> Path:
        if isinstance(config, str):
            path = PRESETS / f"{config}.json"
        else:
            path = tmp_path / "fake-nvml.json"
            path.write_text(json.dumps(config))
        monkeypatch.setenv("FAKE_NVML_CONFIG", str(path))
        monkeypatch.setenv("FAKE_NVML_EVENTS", str(events_file))
        return path

    return use


@pytest.fixture(params=PRESET_NAMES)
def preset_name(request: pytest.FixtureRequest) -> str:
    """Each preset of the fake in turn: 8 x A100 NVLink, 4 x T4, 1 x H100 with MIG enabled."""
    name: str = request.param
    return name


@pytest.fixture
def load_preset() -> Callable[[str], dict[str, object]]:
    """Reads a preset's configuration as a dict (to derive variants from it)."""

    def load(name: str) -> dict[str, object]:
        loaded: dict[str, object] = json.loads((PRESETS / f"{name}.json").read_text())
        return loaded

    return load


def eventually(check: Callable[[], object], *, timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``check`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
