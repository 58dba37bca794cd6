"""The Ascend hook implementations: one entry point per chip of HAMi's table (``ascend910b3`` ...).

Each entry point names one :class:`ChipPlugin` object below, so enabling ``backends.ascend910b3``
loads exactly that chip's backend, configured from its own section.
"""

from __future__ import annotations

from hami_backend_ascend import resources
from hami_backend_ascend.backend import AscendBackend
from hami_backend_ascend.resources import Chip
from hami_core.sdk import DeviceBackend
from hami_core.sdk import HamiConfig
from hami_core.sdk import hookimpl


class ChipPlugin:
    """The plugin of one chip: registers that chip's backend."""

    def __init__(self, chip: Chip) -> None:
        self.chip = chip

    @hookimpl
    def hami_register_backends(self, config: HamiConfig) -> list[DeviceBackend]:
        """The chip's backend, configured from ``backends.<chip backend name>``."""
        return [AscendBackend.from_config(config, self.chip)]


ascend910a = ChipPlugin(resources.CHIPS_BY_NAME["ascend910a"])
ascend910b2 = ChipPlugin(resources.CHIPS_BY_NAME["ascend910b2"])
ascend910b3 = ChipPlugin(resources.CHIPS_BY_NAME["ascend910b3"])
ascend910b4 = ChipPlugin(resources.CHIPS_BY_NAME["ascend910b4"])
ascend910b41 = ChipPlugin(resources.CHIPS_BY_NAME["ascend910b41"])
ascend310p = ChipPlugin(resources.CHIPS_BY_NAME["ascend310p"])
ascend910c = ChipPlugin(resources.CHIPS_BY_NAME["ascend910c"])
