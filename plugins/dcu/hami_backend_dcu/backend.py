"""``DcuBackend``: Hygon DCUs, wire-compatible with HAMi v2.10's DCU support (``specs/hami-wire.md`` 6.3).

Scheduler side: devices come from ``hami.io/node-dcu-register`` in HAMi's legacy colon format;
requests follow HAMi's DCU rules (cores default to 100, memory in MiB times ``memoryFactor``,
the whole card when no memory is asked); fit is the shared HAMi fit with the DCU type and UUID
filters. Node side: cards come from ``hy-smi`` through :mod:`hami_backend_dcu.discovery` (only
the device-plugin process runs it), and ``allocate`` hands out the card's device nodes plus, for
a share of one card, a virtual DCU (:mod:`hami_backend_dcu.isolation`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import attrs

from hami_backend_dcu import discovery
from hami_backend_dcu import isolation
from hami_backend_dcu import resources
from hami_backend_dcu.discovery import DcuCard
from hami_backend_dcu.discovery import DcuInventory
from hami_backend_dcu.settings import DcuSettings
from hami_backend_dcu.settings import parse_settings
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
from hami_core.sdk import Mount
from hami_core.sdk import PodView
from hami_core.sdk import RequestRules
from hami_core.sdk import ResourceNames
from hami_core.sdk import check_type
from hami_core.sdk import check_uuid
from hami_core.sdk import decode_node_devices_legacy
from hami_core.sdk import encode_node_devices_legacy

#: HAMi's DCU default when ``hygon.com/dcucores`` is absent: the whole card's compute.
DEFAULT_CORES = 100


def inventory_for(settings: DcuSettings) -> DcuInventory:
    """The discovery adapter the settings ask for: a shipped fake, a saved output, else ``hy-smi``.

    Raises:
        BackendError: the named fake is not shipped.
    """
    if settings.fake:
        return discovery.SavedHySmi(discovery.fake_output(settings.fake))
    if settings.hy_smi_output:
        return discovery.SavedHySmi(Path(settings.hy_smi_output))
    return discovery.HySmi(settings.hy_smi)


class DcuBackend(DeviceBackend):
    """Hygon DCUs (``hygon.com/dcunum``, ``hygon.com/dcumem``, ``hygon.com/dcucores``).

    Args:
        settings: resource names, memory factor and node-side paths.
        inventory: where discovery reads the cards; by default what the settings name.
    """

    contract_version: ClassVar[str] = "3.0"
    #: Always ``dcu``.
    name = resources.NAME
    #: ``hami.io/node-dcu-register``, ``hami.io/node-handshake-dcu``, ``hami.io/dcu-devices-*``.
    keys = resources.KEYS
    #: ``DCU``; registered models are ``DCU-<series>``.
    device_type = resources.DEVICE_TYPE

    def __init__(self, settings: DcuSettings | None = None, inventory: DcuInventory | None = None) -> None:
        self.settings = settings if settings is not None else DcuSettings()
        self._inventory = inventory
        self._store = isolation.VdevStore(Path(self.settings.vdev_dir))
        self._cards: dict[int, DcuCard] = {}
        self._allocating = threading.Lock()

    @classmethod
    def from_config(cls, config: HamiConfig) -> DcuBackend:
        """The backend configured by ``config``'s ``backends.dcu`` section.

        Raises:
            ConfigError: the section is invalid.
        """
        return cls(parse_settings(config))

    # --- identity ---------------------------------------------------------------------------

    @property
    def resource_names(self) -> ResourceNames:
        """``hygon.com/dcunum``, ``hygon.com/dcumem``, ``hygon.com/dcucores`` unless renamed."""
        return self.settings.resource_names

    @property
    def request_rules(self) -> RequestRules:
        """The memory factor from the settings; cores default to 100 (HAMi's DCU rule)."""
        return RequestRules(memory_factor=self.settings.memory_factor, default_cores=DEFAULT_CORES)

    # --- scheduling -------------------------------------------------------------------------

    def parse_request(self, container: ContainerView) -> DeviceRequest | None:
        """HAMi's DCU request: the generic rules, with the memory percentage 100 when no memory is
        asked and 0 otherwise (HAMi's DCU ``MemPercentagereq``).

        Raises:
            BackendError: a resource is not a whole, non-negative quantity within int32 range.
        """
        request = super().parse_request(container)
        if request is None:
            return None
        return attrs.evolve(request, mem_percentage_req=100 if request.memreq == 0 else 0)

    def node_devices(self, node_annotations: Mapping[str, str]) -> list[DeviceInfo]:
        """The devices in ``hami.io/node-dcu-register`` (legacy colon format only, as HAMi reads it).

        Raises:
            CodecError: the annotation is not in the colon format.
            BackendError: it lists no device (HAMi's "no gpu found on node").
        """
        value = node_annotations.get(self.keys.register)
        if value is None:
            return []
        devices = decode_node_devices_legacy(value)
        if not devices:
            raise BackendError(f"no DCU found on node ({self.keys.register} lists no device)")
        return [attrs.evolve(device, device_vendor=self.name) for device in devices]

    def fit_rules(self, context: FitContext) -> FitRules:
        """The DCU type filters (``hygon.com/use-dcutype`` / ``nouse-dcutype``, model substrings)
        and UUID filters (``hygon.com/use-gpuuuid`` / ``nouse-gpuuuid``) of the pod."""
        annotations = context.pod_annotations
        return FitRules(
            request_type=self.device_type,
            type_ok=lambda device: check_type(
                annotations, device.type, resources.USE_TYPE, resources.NOUSE_TYPE
            ),
            uuid_ok=lambda uuid: check_uuid(
                annotations, uuid, resources.USE_UUID, resources.NOUSE_UUID
            ),
        )

    # --- node -------------------------------------------------------------------------------

    def _cards_now(self) -> list[DcuCard]:
        """The cards the inventory reports; the inventory is made on first use (node side only)."""
        if self._inventory is None:
            self._inventory = inventory_for(self.settings)
        cards = self._inventory.cards()
        self._cards = {card.index: card for card in cards}
        return cards

    def discover(self, node_name: str) -> list[DeviceInfo]:
        """The node's DCUs from ``hy-smi`` (or its saved output).

        Raises:
            BackendError: the tool failed or its output cannot be read.
        """
        return discovery.register_devices(self._cards_now(), self.settings.split)

    def encode_node_devices(self, devices: Sequence[DeviceInfo]) -> str:
        """The legacy colon format HAMi's scheduler decodes for DCUs (9 fields per device)."""
        return encode_node_devices_legacy(devices)

    def _card(self, index: int) -> DcuCard:
        if index not in self._cards:
            self._cards_now()
        try:
            return self._cards[index]
        except KeyError:
            raise BackendError(f"DCU {index} is not on this node (cards: {sorted(self._cards)})") from None

    def allocate(
        self, devices: ContainerDevices, container: ContainerView, pod: PodView
    ) -> ContainerAllocation:
        """The DCU device nodes and, for a share of one card, a virtual DCU.

        Every container gets ``/dev/kfd`` and ``/dev/mkfd`` and each card's DRM nodes
        (``/dev/dri/card<i>``, ``/dev/dri/renderD<128+i>``). One device with less than the card's
        memory also gets a virtual device configuration mounted at ``/etc/vdev/docker/``, with
        the driver and hyhal directories (HAMi's dcu-vgpu-device-plugin does the same).

        Raises:
            BackendError: no device, a device of another backend or not on this node, or the
                virtual device configuration cannot be written.
        """
        if not devices:
            raise BackendError(f"container {container.label}: no DCU to allocate")
        specs = [DeviceSpec(path, path, "rwm") for path in isolation.KFD_DEVICES]
        cards = []
        for device in devices:
            if device.type != self.device_type:
                raise BackendError(f"container {container.label}: {device.uuid} is not a DCU device")
            card = self._card(discovery.card_index(device.uuid))
            cards.append(card)
            for path in (
                f"/dev/dri/card{card.index}",
                f"/dev/dri/renderD{isolation.RENDER_MINOR_BASE + card.index}",
            ):
                specs.append(DeviceSpec(path, path, "rw"))
        mounts: tuple[Mount, ...] = ()
        if len(devices) == 1 and devices[0].usedmem < cards[0].memory_mib:
            directory = self._virtual_device(devices, cards[0], container, pod)
            mounts = (
                Mount(isolation.CONTAINER_VDEV_DIR, str(directory), read_only=False),
                Mount(isolation.CONTAINER_DRIVER_DIR, self.settings.driver_path, read_only=False),
                Mount(isolation.CONTAINER_HYHAL_DIR, self.settings.hyhal_path, read_only=False),
            )
        return ContainerAllocation(mounts=mounts, devices=tuple(specs))

    def _virtual_device(
        self, devices: ContainerDevices, card: DcuCard, container: ContainerView, pod: PodView
    ) -> Path:
        with self._allocating:
            vdev = isolation.plan_vdev(
                self._store.existing(),
                device_index=card.index,
                pci_bus=card.pci_bus,
                memory_mib=devices[0].usedmem,
                cores_percent=devices[0].usedcores,
                compute_units=self.settings.compute_units,
            )
            return self._store.write(pod.uid or f"{pod.namespace}_{pod.name}", container.name, vdev)
