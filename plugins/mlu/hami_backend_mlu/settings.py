"""The ``backends.mlu`` config section, validated into :class:`MluSettings`.

HAMi's MLU section (``cambricon:`` in ``device-config.yaml``) only renames resources (chart
defaults ``cambricon.com/vmlu``, ``cambricon.com/mlu.smlu.vmemory``, ``cambricon.com/mlu.smlu.vcore``);
the node side adds where discovery reads the cards. Problems are reported with
:class:`hami_core.sdk.BackendSection`, naming the file and the dotted key.
"""

from __future__ import annotations

from typing import Any

import attrs

from hami_backend_mlu import resources
from hami_core.sdk import BackendSection
from hami_core.sdk import HamiConfig
from hami_core.sdk import ResourceNames


@attrs.frozen
class MluSettings:
    """The MLU backend's settings.

    Args:
        resource_names: ``resourceCountName``, ``resourceMemoryName``, ``resourceCoreName``.
        cnmon: the ``cnmon`` command the device plugin runs to discover MLUs.
        cnmon_output: a file holding ``cnmon info``'s output, read instead of running it.
        fake: the name of a ``cnmon info`` output shipped with this package (``hami_backend_mlu/
            fakes/cnmon-<fake>.txt``), read instead of running it: nodes without MLUs.
    """

    resource_names: ResourceNames = resources.RESOURCE_NAMES
    cnmon: str = "cnmon"
    cnmon_output: str = ""
    fake: str = ""


_STRINGS = ("cnmon", "cnmon_output", "fake")
_NAMES = {"resourceCountName": "count", "resourceMemoryName": "memory", "resourceCoreName": "cores"}


def parse_settings(config: HamiConfig) -> MluSettings:
    """The MLU settings from ``config.backend("mlu")``, validated.

    Raises:
        ConfigError: a key is unknown or a value has the wrong type or range.
    """
    section = BackendSection.read(config, resources.NAME, (*_NAMES, *_STRINGS))
    defaults = MluSettings()
    strings: dict[str, Any] = {
        key: section.string(key, section[key], empty=key in ("cnmon_output", "fake"))
        for key in _STRINGS
        if key in section
    }
    return attrs.evolve(
        defaults, resource_names=section.resource_names(defaults.resource_names, _NAMES), **strings
    )
