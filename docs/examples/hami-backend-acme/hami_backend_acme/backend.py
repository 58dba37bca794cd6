"""``AcmeBackend``: Acme accelerators, shared by memory and compute through the HAMi-core shim.

Everything but identity, discovery and ``allocate`` is the core's default: requests follow HAMi's
rules, the register annotation is HAMi's JSON, and the shared fit books memory, cores and slots.
Acme's devices are simulated from settings here; a real backend asks its vendor SDK in
:meth:`AcmeBackend.discover`, the only method that runs on the node.
"""

from __future__ import annotations

from typing import ClassVar

from hami_core.sdk import BackendError
from hami_core.sdk import BackendSection
from hami_core.sdk import ContainerAllocation
from hami_core.sdk import ContainerDevices
from hami_core.sdk import ContainerView
from hami_core.sdk import DeviceBackend
from hami_core.sdk import DeviceInfo
from hami_core.sdk import HamiConfig
from hami_core.sdk import PodView
from hami_core.sdk import ResourceNames
from hami_core.sdk import shim_env
from hami_core.sdk import vendor_keys

#: Lists the devices a container was given, as ``NVIDIA_VISIBLE_DEVICES`` does for GPUs.
VISIBLE_DEVICES = "ACME_VISIBLE_DEVICES"


class AcmeBackend(DeviceBackend):
    """Acme accelerators: ``acme.example.com/gpu``, ``/gpumem`` (MiB) and ``/gpucores`` (percent).

    Args:
        devices: how many devices each node has.
        memory_mib: memory of each device.
        split: how many containers may share one device.
    """

    # The contract this backend was written against: hami refuses another major version.
    contract_version: ClassVar[str] = "3.0"
    # Identity: the same word everywhere (entry point, distribution, Helm key).
    name = "acme"
    resource_names = ResourceNames(
        count="acme.example.com/gpu", memory="acme.example.com/gpumem", cores="acme.example.com/gpucores"
    )
    # hami.io/node-acme-register, hami.io/node-handshake-acme, hami.io/acme-devices-to-allocate, ...
    keys = vendor_keys(register_word="acme", devices_word="acme", handshake_suffix="acme")

    def __init__(self, devices: int = 2, memory_mib: int = 16384, split: int = 4) -> None:
        self.devices = devices
        self.memory_mib = memory_mib
        self.split = split

    @classmethod
    def from_config(cls, config: HamiConfig) -> AcmeBackend:
        """The backend configured by ``backends.acme`` (keys ``devices``, ``memory_mib``, ``split``).

        Raises:
            ConfigError: an unknown key or a bad value, naming the file and the key.
        """
        section = BackendSection.read(config, "acme", ("devices", "memory_mib", "split"))
        return cls(
            devices=section.integer("devices", section.get("devices", 2)),
            memory_mib=section.integer("memory_mib", section.get("memory_mib", 16384), low=1),
            split=section.integer("split", section.get("split", 4), low=1),
        )

    def discover(self, node_name: str) -> list[DeviceInfo]:
        """The node's devices; ``type`` must contain the device type (``ACME``)."""
        return [
            DeviceInfo(
                id=f"ACME-{node_name}-{index}",
                index=index,
                count=self.split,
                devmem=self.memory_mib,
                devcore=100,
                type="ACME-X1",
                health=True,
            )
            for index in range(self.devices)
        ]

    def allocate(
        self, devices: ContainerDevices, container: ContainerView, pod: PodView
    ) -> ContainerAllocation:
        """The visible devices and the shim's memory and compute limits for the container.

        Raises:
            BackendError: the scheduler gave the container no Acme device.
        """
        if not devices:
            raise BackendError(f"container {container.label}: no acme device to allocate")
        visible = ",".join(dict.fromkeys(device.uuid for device in devices))
        return ContainerAllocation(envs={VISIBLE_DEVICES: visible, **shim_env(devices)})
