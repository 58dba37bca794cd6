"""``MockBackend``: the reference :class:`~hami_core.sdk.DeviceBackend`.

It supplies the abstract members (names, keys, discovery, allocate) and overrides admission and
isolation the way a vendor with a HAMi-core shim would; request parsing, node devices and fit
are the core's defaults, driven by the mock's request rules. Copy this file's shape when writing
a backend. Nothing here touches hardware: devices come from :mod:`hami_backend_mock.discovery`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from collections.abc import Sequence
from typing import ClassVar

from hami_backend_mock import discovery
from hami_backend_mock import isolation
from hami_backend_mock import resources
from hami_backend_mock.settings import MockSettings
from hami_backend_mock.settings import parse_settings
from hami_core.sdk import BackendError
from hami_core.sdk import ContainerAllocation
from hami_core.sdk import ContainerDevices
from hami_core.sdk import ContainerView
from hami_core.sdk import DeviceBackend
from hami_core.sdk import DeviceInfo
from hami_core.sdk import HamiConfig
from hami_core.sdk import MutationResult
from hami_core.sdk import PodView
from hami_core.sdk import RequestRules
from hami_core.sdk import echo
from hami_core.sdk import whole_quantity

#: What the webhook adds as the count when a container asks only memory or cores (HAMi's
#: ``defaultGPUNum``).
DEFAULT_COUNT = 1


class MockBackend(DeviceBackend):
    """Simulated devices of any vendor shape, for demos, tests and backend authors.

    Args:
        settings: device groups and request rules; :meth:`from_config` reads them from config.
    """

    contract_version: ClassVar[str] = "3.0"
    #: Always ``mock``.
    name = resources.NAME
    #: ``mock.hami.io/gpu``, ``/gpumem``, ``/gpumem-percentage``, ``/gpucores``, ``/priority``.
    resource_names = resources.RESOURCE_NAMES
    #: ``hami.io/node-mock-register``, ``hami.io/node-handshake-mock``, ``hami.io/mock-devices-*``.
    keys = resources.KEYS
    #: ``MOCK``; simulated models such as ``MOCK-A100`` contain it.
    device_type = resources.DEVICE_TYPE

    def __init__(self, settings: MockSettings | None = None) -> None:
        self.settings = settings if settings is not None else MockSettings()
        self._health_lock = threading.Lock()
        self._injected_health: dict[str, bool] = {}

    @classmethod
    def from_config(cls, config: HamiConfig) -> MockBackend:
        """The backend configured by ``config``'s ``backends.mock`` section.

        Raises:
            ConfigError: the section is invalid.
        """
        return cls(parse_settings(config))

    # --- identity ---------------------------------------------------------------------------

    @property
    def request_rules(self) -> RequestRules:
        """The memory factor and defaults from the settings."""
        return RequestRules(
            memory_factor=self.settings.memory_factor,
            default_memory=self.settings.default_memory,
            default_cores=self.settings.default_cores,
        )

    # --- admission --------------------------------------------------------------------------

    def mutate_container(self, container: ContainerView, pod: PodView) -> MutationResult:
        """HAMi's NVIDIA admission rules, reduced to what the mock needs.

        A container asking memory, a percentage or cores without a count gets a count of
        :data:`DEFAULT_COUNT`; a priority limit becomes ``CUDA_TASK_PRIORITY`` in its env.

        Raises:
            BackendError: the memory percentage is not between 0 and 100, or the container is
                malformed.
        """
        names = self.resource_names
        percentage = container.limit(names.memory_percentage)
        if (
            percentage is not None
            and not 0 <= whole_quantity(container, names.memory_percentage, percentage) <= 100
        ):
            raise BackendError(
                f"invalid {names.memory_percentage} value {echo(percentage)} in container "
                f"{container.label}: must be an integer between 0 and 100"
            )
        has_count = container.limit(names.count) is not None
        asks_share = any(container.limit(name) is not None for name in (names.memory, names.cores))
        if not has_count and not asks_share and percentage is None:
            return MutationResult()
        mutated = dict(container.spec)
        if not has_count:
            mutated["resources"] = _with_limit(container.spec, names.count, str(DEFAULT_COUNT))
        priority = container.limit(names.priority)
        if priority is not None:
            level = whole_quantity(container, names.priority, priority)
            mutated["env"] = [
                *_env_list(container.spec),
                {"name": isolation.TASK_PRIORITY, "value": str(level)},
            ]
        changed = not has_count or priority is not None
        return MutationResult(has_resource=True, container=mutated if changed else None)

    # --- node -------------------------------------------------------------------------------

    def discover(self, node_name: str) -> list[DeviceInfo]:
        """The simulated devices of ``node_name`` (stable ids derived from the node name)."""
        return discovery.simulate(self.settings.groups_for(node_name), node_name)

    def set_health(self, device_id: str, healthy: bool) -> None:
        """Inject a health change, as an XID error or its repair would on a real device.

        The device plugin picks it up on its next health poll; it overrides the configured health
        until set again.
        """
        with self._health_lock:
            self._injected_health[device_id] = healthy

    def health(self, devices: Sequence[DeviceInfo]) -> Mapping[str, bool]:
        """The configured health of each device, overridden by :meth:`set_health`."""
        with self._health_lock:
            return {device.id: self._injected_health.get(device.id, device.health) for device in devices}

    def allocate(
        self, devices: ContainerDevices, container: ContainerView, pod: PodView
    ) -> ContainerAllocation:
        """The visible-devices variable plus the shim's environment; no mounts or device nodes.

        Takes ``allocate_delay`` seconds when the settings ask for a slow driver.

        Raises:
            BackendError: ``devices`` is empty or holds devices of another backend, or the
                container's priority is malformed.
        """
        if not devices:
            raise BackendError(f"container {container.label}: no mock device to allocate")
        foreign = [device.uuid for device in devices if device.type != self.device_type]
        if foreign:
            raise BackendError(
                f"container {container.label}: devices {', '.join(foreign)} are not {self.device_type} devices"
            )
        if self.settings.allocate_delay:
            time.sleep(self.settings.allocate_delay)
        return ContainerAllocation(
            envs={**isolation.visible_devices_env(devices), **self._limits_env(devices, container)}
        )

    def _limits_env(self, devices: ContainerDevices, container: ContainerView) -> Mapping[str, str]:
        """HAMi-core's ``CUDA_DEVICE_MEMORY_LIMIT_<i>``, ``CUDA_DEVICE_SM_LIMIT`` and, when the
        container has a priority limit, ``CUDA_TASK_PRIORITY`` (the same value admission wrote).

        Raises:
            BackendError: the priority limit is not a whole number.
        """
        priority = container.limit(self.resource_names.priority)
        level = (
            None if priority is None else whole_quantity(container, self.resource_names.priority, priority)
        )
        return isolation.limits_env(devices, task_priority=level)


def _with_limit(container: Mapping[str, object], name: str, value: str) -> dict[str, object]:
    """The container's ``resources`` with limit ``name`` set, leaving the input untouched."""
    current = container.get("resources")
    resources_field: dict[str, object] = dict(current) if isinstance(current, Mapping) else {}
    limits = resources_field.get("limits")
    resources_field["limits"] = {**(dict(limits) if isinstance(limits, Mapping) else {}), name: value}
    return resources_field


def _env_list(container: Mapping[str, object]) -> list[object]:
    """The container's ``env`` entries (the pod view has checked that it is a list)."""
    env = container.get("env")
    return list(env) if isinstance(env, list) else []
