"""The ``backends.dcu`` config section, validated into :class:`DcuSettings`.

HAMi's DCU section (``hygon:`` in ``device-config.yaml``) only renames resources; the node side
(HAMi's separate dcu-vgpu-device-plugin) is configured by its DaemonSet. Both live here, under
the names of ``specs/hami-wire.md`` 2.1 where HAMi has one. Problems are reported with
:class:`hami_core.sdk.BackendSection`, naming the file and the dotted key.
"""

from __future__ import annotations

from typing import Any

import attrs

from hami_backend_dcu import resources
from hami_core.sdk import BackendSection
from hami_core.sdk import HamiConfig
from hami_core.sdk import ResourceNames


@attrs.frozen
class DcuSettings:
    """The DCU backend's settings.

    Args:
        resource_names: ``resourceCountName``, ``resourceMemoryName``, ``resourceCoreName``.
        memory_factor: MiB per unit of the memory resource (HAMi's ``memoryFactor``).
        split: how many containers may share one DCU (HAMi's DCU plugin registers 4).
        hy_smi: the ``hy-smi`` command the device plugin runs to discover DCUs.
        hy_smi_output: a file holding ``hy-smi``'s JSON output, read instead of running it.
        fake: the name of an ``hy-smi`` output shipped with this package (``hami_backend_dcu/fakes/
            hy-smi-<fake>.json``), read instead of running it: nodes without DCUs (demos, tests).
        vdev_dir: host directory of the per-container virtual device (vDCU) configurations.
        driver_path: host directory of the DCU driver (DTK) mounted at ``/opt/hygondriver``.
        hyhal_path: host directory of the hyhal runtime mounted at ``/opt/hyhal``.
        compute_units: compute units of one DCU; a core percentage becomes a CU count of it.
    """

    resource_names: ResourceNames = resources.RESOURCE_NAMES
    memory_factor: int = 1
    split: int = 4
    hy_smi: str = "hy-smi"
    hy_smi_output: str = ""
    fake: str = ""
    vdev_dir: str = "/usr/local/vgpu/dcu"
    driver_path: str = "/opt/hygondriver"
    hyhal_path: str = "/opt/hyhal"
    compute_units: int = 60


_STRINGS = ("hy_smi", "hy_smi_output", "fake", "vdev_dir", "driver_path", "hyhal_path")
_INTEGERS = {
    "memoryFactor": ("memory_factor", 1),
    "split": ("split", 1),
    "compute_units": ("compute_units", 1),
}
_NAMES = {"resourceCountName": "count", "resourceMemoryName": "memory", "resourceCoreName": "cores"}


def parse_settings(config: HamiConfig) -> DcuSettings:
    """The DCU settings from ``config.backend("dcu")``, validated.

    Raises:
        ConfigError: a key is unknown or a value has the wrong type or range.
    """
    section = BackendSection.read(config, resources.NAME, (*_NAMES, *_INTEGERS, *_STRINGS))
    defaults = DcuSettings()
    integers: dict[str, Any] = {
        field: section.integer(key, section[key], low=low)
        for key, (field, low) in _INTEGERS.items()
        if key in section
    }
    strings: dict[str, Any] = {
        key: section.string(key, section[key], empty=key in ("hy_smi_output", "fake"))
        for key in _STRINGS
        if key in section
    }
    return attrs.evolve(
        defaults,
        resource_names=section.resource_names(defaults.resource_names, _NAMES),
        **integers,
        **strings,
    )
