"""The pluggy markers of hami and every ``hami_*`` hook specification.

This module is the reference manual of the plugin surface: each hook has one docstring (summary,
Args, Returns, "Called by"), and ``docs/hooks.md`` has one heading per hook spelled as its call.
Hooks stay few on purpose: per-vendor behaviour lives on :class:`hami_core.backend.DeviceBackend`,
so the core dispatches by resource name instead of asking every plugin "is this yours?".
Hooks are always called with keyword arguments. The only value type defined here is
:class:`ScoringPolicy`, the answer of :func:`hami_scoring_policies`; nothing here loads plugins
(that is :mod:`hami_core.plugins`).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Literal

import attrs
import pluggy

if TYPE_CHECKING:
    from hami_core.backend import DeviceBackend
    from hami_core.config import HamiConfig
    from hami_core.devices import DeviceUsage
    from hami_core.placement import Placement

#: The project name every hami marker is bound to (pluggy requires the host's name).
PROJECT_NAME = "hami"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@attrs.frozen
class ScoringPolicy:
    """A named way of preferring one candidate over another.

    ``score`` receives the devices of one candidate and returns a number; **higher is
    preferred**. What a candidate is depends on ``kind``:

    - ``"node"``: a whole node; ``score`` gets every device on it (all backends), with the usage
      booked *before* the pod being scheduled, and ranks the nodes that fit (HAMi's
      ``--node-scheduler-policy``: ``binpack`` prefers the fullest node, ``spread`` the emptiest).
    - ``"device"``: one device inside a node; ``score`` gets a one-element sequence and its
      result orders the devices a backend's fit tries first (HAMi's ``--gpu-scheduler-policy``).

    Policies are looked up by ``name``, the word users write in config and in the pod
    annotations ``hami.io/node-scheduler-policy`` / ``hami.io/gpu-scheduler-policy``.

    Args:
        name: the policy's name, unique across all plugins.
        kind: whether it ranks nodes or devices.
        score: the scoring function; must be pure and must not raise on empty input.
        placement: for a ``node`` policy whose score depends on the pod and the devices it would
            take (FGD and the like, :mod:`hami_core.placement`); the filter then fits
            every candidate and ranks them by it, and ``score`` only orders the walk.
    """

    name: str
    kind: Literal["node", "device"]
    score: Callable[[Sequence[DeviceUsage]], float] = attrs.field(eq=False)
    placement: Placement | None = attrs.field(default=None, eq=False)


# --- Registration: called once per process at startup ----------------------------------------


@hookspec
def hami_register_backends(config: HamiConfig) -> list[DeviceBackend]:
    """Return the device backends this plugin provides.

    Every plugin contributes; the lists are flattened, backends with the same ``name`` or
    overlapping resource names are refused with :class:`hami_core.errors.BackendLoadError`, and
    the survivors are indexed by resource name. A backend reads its own settings with
    ``config.backend(name)``; it must not touch hardware or the network here (discovery happens
    later, and only in the device-plugin process).

    Args:
        config: the loaded configuration file.

    Returns:
        The backends, usually exactly one whose ``name`` equals the plugin's entry-point name.

    Called by:
        every process (scheduler, device plugin, monitor, CLI) once, right after the enabled
        entry points of the ``hami.backends`` group are loaded.
    """
    raise AssertionError("hook specifications are never called directly")  # pragma: no cover


# --- Collected answers: every plugin may add named items -------------------------------------


@hookspec
def hami_scoring_policies() -> list[ScoringPolicy]:
    """Return extra node or device scoring policies, each under its own name.

    The core contributes the built-in ``binpack`` and ``spread`` policies the same way; names
    must be unique across all plugins or loading fails with
    :class:`hami_core.errors.BackendLoadError`.

    Returns:
        The policies this plugin provides (may be empty).

    Called by:
        the scheduler process once at startup, after ``hami_register_backends``; the policies
        are then chosen by name per pod (annotation) or per cluster (config).
    """
    raise AssertionError("hook specifications are never called directly")  # pragma: no cover
