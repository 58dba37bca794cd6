"""The MLU backend's hook implementation: the entry point ``mlu`` of group ``hami.backends``."""

from __future__ import annotations

from hami_backend_mlu.backend import MluBackend
from hami_core.sdk import DeviceBackend
from hami_core.sdk import HamiConfig
from hami_core.sdk import hookimpl


@hookimpl
def hami_register_backends(config: HamiConfig) -> list[DeviceBackend]:
    """The MLU backend, configured from ``backends.mlu``."""
    return [MluBackend.from_config(config)]
