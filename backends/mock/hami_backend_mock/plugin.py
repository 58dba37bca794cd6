"""The mock's hook implementations: the entry point ``mock`` of group ``hami.backends``."""

from __future__ import annotations

from hami_backend_mock.backend import MockBackend
from hami_core.sdk import DeviceBackend
from hami_core.sdk import HamiConfig
from hami_core.sdk import hookimpl


@hookimpl
def hami_register_backends(config: HamiConfig) -> list[DeviceBackend]:
    """The mock backend, configured from ``backends.mock``."""
    return [MockBackend.from_config(config)]
