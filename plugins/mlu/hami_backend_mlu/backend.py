"""``MluBackend``: Cambricon MLUs in dynamic-sMLU mode, wire-compatible with HAMi v2.10 (``specs/hami-wire.md`` 6.2).

Scheduler side: a node's MLUs come from hami's register annotation when its device plugin wrote
one, else from the node's ``cambricon.com/mlu.smlu.*`` capacity exactly as HAMi synthesizes them
(nodes served by Cambricon's own plugin). Requests follow HAMi's MLU rules (vmemory in 256 MiB
units, cores default to 100); fit is the shared HAMi fit with the MLU UUID filters; the pod also
gets the ``CAMBRICON_DSMLU_*`` annotations Cambricon's plugin reads. Node side: cards come from
``cnmon`` through :mod:`hami_backend_mlu.discovery`, only in the device-plugin process.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

import attrs

from hami_backend_mlu import discovery
from hami_backend_mlu import resources
from hami_backend_mlu.discovery import MluCard
from hami_backend_mlu.discovery import MluInventory
from hami_backend_mlu.settings import MluSettings
from hami_backend_mlu.settings import parse_settings
from hami_core.sdk import BackendError
from hami_core.sdk import ContainerAllocation
from hami_core.sdk import ContainerDevices
from hami_core.sdk import ContainerView
from hami_core.sdk import DeviceBackend
from hami_core.sdk import DeviceInfo
from hami_core.sdk import DeviceRequest
from hami_core.sdk import DeviceSpec
from hami_core.sdk import FitContext
from hami_core.sdk import FitRules
from hami_core.sdk import HamiConfig
from hami_core.sdk import LockError
from hami_core.sdk import PodSingleDevice
from hami_core.sdk import PodView
from hami_core.sdk import RequestRules
from hami_core.sdk import ResourceNames
from hami_core.sdk import check_uuid

#: How long HAMi's ``cambricon.com/dsmlu.lock`` keeps other MLU binds off a node.
DSMLU_LOCK_EXPIRY = timedelta(minutes=2)
#: HAMi's MLU default when the cores resource is absent: the whole card.
DEFAULT_CORES = 100
#: The environment a container's MLU shares are described in (HAMi's sMLU variable names).
SPLIT_ENABLE = "CAMBRICON_SPLIT_ENABLE"
SPLIT_VISIBLE_DEVICES = "CAMBRICON_SPLIT_VISIBLE_DEVICES"
SPLIT_MEMS = "CAMBRICON_SPLIT_MEMS"
#: Device nodes: the control node, and one per card.
CONTROL_DEVICE = "/dev/cambricon_ctl"
CARD_DEVICE_PREFIX = "/dev/cambricon_dev"


def inventory_for(settings: MluSettings) -> MluInventory:
    """The discovery adapter the settings ask for: a shipped fake, a saved output, else ``cnmon``.

    Raises:
        BackendError: the named fake is not shipped.
    """
    if settings.fake:
        return discovery.SavedCnmon(discovery.fake_output(settings.fake))
    if settings.cnmon_output:
        return discovery.SavedCnmon(Path(settings.cnmon_output))
    return discovery.Cnmon(settings.cnmon)


class MluBackend(DeviceBackend):
    """Cambricon MLUs (``cambricon.com/vmlu``, ``cambricon.com/mlu.smlu.vmemory``, ``cambricon.com/mlu.smlu.vcore``).

    Args:
        settings: resource names and where discovery reads the cards.
        inventory: where discovery reads the cards; by default what the settings name.
    """

    contract_version: ClassVar[str] = "3.0"
    #: Always ``mlu``.
    name = resources.NAME
    #: ``hami.io/node-mlu-register``, ``hami.io/node-handshake-mlu``, ``hami.io/cambricon-mlu-devices-*``.
    keys = resources.KEYS
    #: ``MLU``.
    device_type = resources.DEVICE_TYPE

    def __init__(self, settings: MluSettings | None = None, inventory: MluInventory | None = None) -> None:
        self.settings = settings if settings is not None else MluSettings()
        self._inventory = inventory
        self._cards: list[MluCard] = []

    @classmethod
    def from_config(cls, config: HamiConfig) -> MluBackend:
        """The backend configured by ``config``'s ``backends.mlu`` section.

        Raises:
            ConfigError: the section is invalid.
        """
        return cls(parse_settings(config))

    # --- identity ---------------------------------------------------------------------------

    @property
    def resource_names(self) -> ResourceNames:
        """``cambricon.com/vmlu``, ``cambricon.com/mlu.smlu.vmemory``, ``cambricon.com/mlu.smlu.vcore`` unless renamed."""
        return self.settings.resource_names

    @property
    def request_rules(self) -> RequestRules:
        """vmemory is in 256 MiB units; cores default to 100 (HAMi's MLU rules)."""
        return RequestRules(memory_factor=resources.MEMORY_UNIT_MIB, default_cores=DEFAULT_CORES)

    # --- scheduling -------------------------------------------------------------------------

    def parse_request(self, container: ContainerView) -> DeviceRequest | None:
        """HAMi's MLU request: the generic rules, with the memory percentage 100 when no memory
        is asked and 0 otherwise.

        Raises:
            BackendError: a resource is not a whole, non-negative quantity within int32 range.
        """
        request = super().parse_request(container)
        if request is None:
            return None
        return attrs.evolve(request, mem_percentage_req=100 if request.memreq == 0 else 0)

    def capacity_devices(self, node_name: str, capacity: Mapping[str, str]) -> list[DeviceInfo]:
        """HAMi's MLUs of a node without hami's register annotation, from its sMLU capacity.

        Raises:
            BackendError: the node has no MLU cores, or a capacity is malformed.
        """
        names = self.resource_names
        return discovery.capacity_devices(node_name, capacity, names.cores, names.memory)

    def fit_rules(self, context: FitContext) -> FitRules:
        """The MLU UUID filters (``cambricon.com/use-gpuuuid`` / ``nouse-gpuuuid``); HAMi declares
        but does not evaluate the MLU type annotations, and neither does this backend."""
        annotations = context.pod_annotations
        return FitRules(
            request_type=self.device_type,
            uuid_ok=lambda uuid: check_uuid(
                annotations, uuid, resources.USE_UUID, resources.NOUSE_UUID
            ),
        )

    def filter_annotations(self, devices: PodSingleDevice, pod: PodView, now: datetime) -> Mapping[str, str]:
        """``CAMBRICON_DSMLU_ASSIGNED: "false"`` and ``CAMBRICON_DSMLU_PROFILE``
        ``<index>_<cores>_<memory / 256 MiB>`` of the first device of the first container that has
        one (HAMi's ``PatchAnnotations``); nothing when the pod got no MLU."""
        first = next((container[0] for container in devices if container), None)
        if first is None:
            return {}
        index = first.idx if first.idx is not None else _index_of(first.uuid)
        profile = f"{index}_{first.usedcores}_{first.usedmem // resources.MEMORY_UNIT_MIB}"
        return {resources.DSMLU_ASSIGNED: "false", resources.DSMLU_PROFILE: profile}

    def bind_node_annotations(self, node_annotations: Mapping[str, str], now: datetime) -> Mapping[str, str]:
        """HAMi's MLU ``LockNode``: ``cambricon.com/dsmlu.lock`` = the bind time (RFC 3339), for
        Cambricon's dynamic-sMLU device plugin. A lock younger than 2 minutes refuses the bind; an
        older or unreadable one is taken over. hami's own MLU device plugin removes it when the
        pod's allocation ends (:attr:`released_node_annotations`).

        Raises:
            LockError: the lock is younger than 2 minutes.
        """
        held = node_annotations.get(resources.DSMLU_LOCK)
        since = _parse_time(held) if held else None
        if since is not None and now - since < DSMLU_LOCK_EXPIRY:
            raise LockError(
                f"node has been locked within 2 minutes ({resources.DSMLU_LOCK}: {held}); "
                "another MLU pod is being allocated there"
            )
        return {resources.DSMLU_LOCK: now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}

    @property
    def released_node_annotations(self) -> tuple[str, ...]:
        """``cambricon.com/dsmlu.lock``."""
        return (resources.DSMLU_LOCK,)

    # --- node -------------------------------------------------------------------------------

    def _cards_now(self) -> list[MluCard]:
        """The cards the inventory reports; the inventory is made on first use (node side only)."""
        if self._inventory is None:
            self._inventory = inventory_for(self.settings)
        self._cards = self._inventory.cards()
        return self._cards

    def discover(self, node_name: str) -> list[DeviceInfo]:
        """The node's MLUs from ``cnmon`` (or its saved output), with HAMi's synthesized ids.

        Raises:
            BackendError: the tool failed or its output cannot be read.
        """
        return discovery.register_devices(node_name, self._cards_now())

    def allocate(
        self, devices: ContainerDevices, container: ContainerView, pod: PodView
    ) -> ContainerAllocation:
        """The cards' device nodes and the sMLU split environment.

        ``CAMBRICON_SPLIT_ENABLE=1``, ``CAMBRICON_SPLIT_VISIBLE_DEVICES`` (the cards, comma-separated)
        and ``CAMBRICON_SPLIT_MEMS`` (MiB per card, same order); ``/dev/cambricon_ctl`` and
        ``/dev/cambricon_dev<card>`` for each card.

        Raises:
            BackendError: no device, a device of another backend, or one not on this node.
        """
        if not devices:
            raise BackendError(f"container {container.label}: no MLU to allocate")
        if not self._cards:
            self._cards_now()
        cards = []
        for device in devices:
            if device.type != self.device_type:
                raise BackendError(f"container {container.label}: {device.uuid} is not an MLU device")
            position = _index_of(device.uuid)
            if position >= len(self._cards):
                raise BackendError(f"MLU {position} is not on this node ({len(self._cards)} cards)")
            cards.append(self._cards[position].index)
        specs = [DeviceSpec(CONTROL_DEVICE, CONTROL_DEVICE, "rw")]
        specs += [
            DeviceSpec(f"{CARD_DEVICE_PREFIX}{card}", f"{CARD_DEVICE_PREFIX}{card}", "rw") for card in cards
        ]
        return ContainerAllocation(
            envs={
                SPLIT_ENABLE: "1",
                SPLIT_VISIBLE_DEVICES: ",".join(str(card) for card in cards),
                SPLIT_MEMS: ",".join(str(device.usedmem) for device in devices),
            },
            devices=tuple(specs),
        )


def _parse_time(value: str) -> datetime | None:
    """An RFC 3339 time; ``None`` when unreadable (such a lock counts as expired)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _index_of(uuid: str) -> int:
    """The device number at the end of ``<node>-cambricon-mlu-<i>``.

    Raises:
        BackendError: the id is not of that form.
    """
    head, _, digits = uuid.rpartition("-cambricon-mlu-")
    if not head or not digits.isdigit():
        raise BackendError(f"invalid MLU device id {uuid!r} (expected <node>-cambricon-mlu-<index>)")
    return int(digits)
