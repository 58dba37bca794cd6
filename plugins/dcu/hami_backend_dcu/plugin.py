"""The DCU backend's hook implementation: the entry point ``dcu`` of group ``hami.backends``."""

from __future__ import annotations

from hami_backend_dcu.backend import DcuBackend
from hami_core.sdk import DeviceBackend
from hami_core.sdk import HamiConfig
from hami_core.sdk import hookimpl


@hookimpl
def hami_register_backends(config: HamiConfig) -> list[DeviceBackend]:
    """The DCU backend, configured from ``backends.dcu``."""
    return [DcuBackend.from_config(config)]
