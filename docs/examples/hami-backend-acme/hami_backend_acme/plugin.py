"""The entry point ``hami.backends: acme``: hands hami the configured backend."""

from __future__ import annotations

from hami_backend_acme.backend import AcmeBackend
from hami_core.sdk import DeviceBackend
from hami_core.sdk import HamiConfig
from hami_core.sdk import hookimpl


@hookimpl
def hami_register_backends(config: HamiConfig) -> list[DeviceBackend]:
    """The Acme backend, built from the ``backends.acme`` section (cheap: no hardware access)."""
    return [AcmeBackend.from_config(config)]
