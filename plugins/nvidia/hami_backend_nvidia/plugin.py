"""The NVIDIA backend's hook implementations: the entry point ``nvidia`` of group ``hami.backends``."""

from __future__ import annotations

from hami_backend_nvidia.backend import NvidiaBackend
from hami_core.sdk import DeviceBackend
from hami_core.sdk import HamiConfig
from hami_core.sdk import hookimpl


@hookimpl
def hami_register_backends(config: HamiConfig) -> list[DeviceBackend]:
    """The NVIDIA backend, configured from ``backends.nvidia`` (HAMi's device-config keys)."""
    return [NvidiaBackend.from_config(config)]
