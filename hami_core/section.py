"""One backend's ``backends.<name>`` config section, read with the core's error messages.

Every backend validates its own section; :class:`BackendSection` holds what they all repeat: the
unknown-key check, integers within Go's ``int32`` (HAMi's settings are ``int32``), strings,
booleans, positive numbers, choices and renamed resources, each error naming the file and the
dotted key through :meth:`~hami_core.config.HamiConfig.error`. Backends build their settings value
from what it returns. It does no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence

import attrs

from hami_core.backend import INT32_MAX
from hami_core.backend import ResourceNames
from hami_core.config import HamiConfig
from hami_core.errors import ConfigError


@attrs.frozen
class BackendSection:
    """The settings of backend ``name`` in ``config``, checked key by key.

    Build it with :meth:`read`. Keys are relative to ``backends.<name>``; nested values are
    checked under their dotted path (``devices[0].count``). A backend checking a file of its own
    with the same rules (NVIDIA's per-node ``config.json``) subclasses it and overrides
    :meth:`error` to name that file.
    """

    config: HamiConfig
    name: str
    values: Mapping[str, object] = attrs.field(hash=False)

    @classmethod
    def read(cls, config: HamiConfig, name: str, keys: Iterable[str]) -> BackendSection:
        """``config.backend(name)``, refusing any key other than ``enabled`` and ``keys``.

        Raises:
            ConfigError: ``unknown key (known keys: enabled, <keys>)``.
        """
        section = cls(config, name, config.backend(name))
        known = ("enabled", *(key for key in keys if key != "enabled"))
        for key in section.values:
            if key not in known:
                raise section.error(key, f"unknown key (known keys: {', '.join(known)})")
        return section

    def __contains__(self, key: object) -> bool:
        return key in self.values

    def __getitem__(self, key: str) -> object:
        return self.values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def get(self, key: str, default: object) -> object:
        """The raw value of ``key``, or ``default`` when the section does not set it."""
        return self.values.get(key, default)

    def error(self, key: str, problem: str) -> ConfigError:
        """A ConfigError naming the file and ``backends.<name>.<key>``."""
        return self.config.error(f"backends.{self.name}.{key}", problem)

    def integer(self, key: str, value: object, *, low: int = 0, high: int = INT32_MAX) -> int:
        """``value`` (found at ``key``) as an integer from ``low`` to ``high``.

        Raises:
            ConfigError: not an integer (booleans are not), or out of range.
        """
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {value!r}")
        if not low <= value <= high:
            raise self.error(key, f"must be between {low} and {high}, got {value}")
        return value

    def string(self, key: str, value: object, *, empty: bool = True) -> str:
        """``value`` (found at ``key``) as a string; empty or blank only when ``empty``.

        Raises:
            ConfigError: not a string, or empty or blank where it may not be.
        """
        if not isinstance(value, str) or (not empty and not value.strip()):
            raise self.error(key, f"expected a{'' if empty else ' non-empty'} string, got {value!r}")
        return value

    def positive_number(self, key: str, value: object) -> float:
        """``value`` (found at ``key``) as a finite number above 0 (a scaling factor, seconds).

        Raises:
            ConfigError: not a number (booleans are not), not finite, or not above 0.
        """
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.error(key, f"expected a number, got {value!r}")
        if value <= 0:
            raise self.error(key, f"must be greater than 0, got {value}")
        return float(value)

    def choice(self, key: str, value: object, options: Sequence[str]) -> str:
        """``value`` (found at ``key``) if it is one of ``options``.

        Raises:
            ConfigError: anything else, listing the options.
        """
        if not isinstance(value, str) or value not in options:
            raise self.error(key, f"expected one of {', '.join(options)}, got {value!r}")
        return value

    def boolean(self, key: str, value: object) -> bool:
        """``value`` (found at ``key``) as ``true`` or ``false``.

        Raises:
            ConfigError: anything but a YAML boolean.
        """
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value

    def resource_names(self, defaults: ResourceNames, keys: Mapping[str, str]) -> ResourceNames:
        """``defaults`` renamed by the section: ``keys`` maps a setting (HAMi's
        ``resourceCountName``) to its :class:`~hami_core.backend.ResourceNames` field (``count``).

        Raises:
            ConfigError: a set name is not a non-empty string.
        """
        renamed = {
            field: self.string(key, self.values[key], empty=False)
            for key, field in keys.items()
            if key in self.values
        }
        return attrs.evolve(defaults, **renamed)
