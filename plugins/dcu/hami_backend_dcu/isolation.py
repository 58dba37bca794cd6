"""Virtual DCUs: the per-container configuration the DCU driver reads to split a card.

A container given one share of a DCU (less than the whole card's memory) gets a virtual device:
a ``vdev<n>.conf`` file in its own host directory, mounted at ``/etc/vdev/docker/``, that tells
the driver which card (PCI bus), how much memory and which compute units (a CU bit mask) the
container may use. This is what HAMi's dcu-vgpu-device-plugin writes. :func:`plan_vdev` is the
pure part (free vDCU number, free CUs on the card given the virtual devices already configured);
:class:`VdevStore` reads and writes the directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import attrs

from hami_core.sdk import BackendError

#: Where the container sees its virtual device configuration.
CONTAINER_VDEV_DIR = "/etc/vdev/docker/"
#: Where the container sees the DCU driver (DTK) and the hyhal runtime.
CONTAINER_DRIVER_DIR = "/opt/hygondriver"
CONTAINER_HYHAL_DIR = "/opt/hyhal"
#: The device nodes every DCU container needs, whatever cards it gets.
KFD_DEVICES = ("/dev/kfd", "/dev/mkfd")
#: DRM render nodes are numbered from this minor (card 0 -> renderD128).
RENDER_MINOR_BASE = 128

_FIELD = re.compile(r"^(?P<key>[A-Za-z_]+):\s*(?P<value>.*?)\s*$", re.MULTILINE)


@attrs.frozen
class VirtualDevice:
    """One virtual DCU.

    Args:
        vdev_index: the node-wide vDCU number (the file is ``vdev<vdev_index>.conf``).
        device_index: the card it lives on.
        pci_bus: that card's PCI bus id.
        memory_mib: device memory the container may use.
        cu_count: compute units it may use.
        cu_mask: which compute units (bit i = CU i).
    """

    vdev_index: int
    device_index: int
    pci_bus: str
    memory_mib: int
    cu_count: int
    cu_mask: int

    @property
    def file_name(self) -> str:
        return f"vdev{self.vdev_index}.conf"

    def render(self) -> str:
        """The configuration file's text, in the driver's ``key: value`` lines."""
        return (
            f"PciBusId: {self.pci_bus}\n"
            f"cu_mask: 0x{self.cu_mask:x}\n"
            f"cu_count: {self.cu_count}\n"
            f"mem: {self.memory_mib} MiB\n"
            f"device_id: {self.device_index}\n"
            f"vdev_id: {self.vdev_index}\n"
            "enable: 1\n"
        )


def parse_vdev(text: str) -> VirtualDevice:
    """A configuration written by :meth:`VirtualDevice.render`.

    Raises:
        BackendError: a field is missing or malformed.
    """
    fields = {found["key"]: found["value"] for found in _FIELD.finditer(text)}
    try:
        return VirtualDevice(
            vdev_index=int(fields["vdev_id"]),
            device_index=int(fields["device_id"]),
            pci_bus=fields.get("PciBusId", ""),
            memory_mib=int(fields["mem"].removesuffix("MiB").strip()),
            cu_count=int(fields["cu_count"]),
            cu_mask=int(fields["cu_mask"], 16),
        )
    except (KeyError, ValueError) as err:
        raise BackendError(f"malformed virtual DCU configuration ({err!r}): {text!r}") from err


def _lowest_free_bits(used: int, wanted: int, width: int) -> int:
    """``wanted`` bits among the lowest ``width`` not set in ``used``; reused ones if too few are free."""
    mask = 0
    for bit in (*(b for b in range(width) if not used >> b & 1), *(b for b in range(width) if used >> b & 1)):
        if wanted == 0:
            break
        mask |= 1 << bit
        wanted -= 1
    return mask


def plan_vdev(
    existing: Sequence[VirtualDevice],
    *,
    device_index: int,
    pci_bus: str,
    memory_mib: int,
    cores_percent: int,
    compute_units: int,
) -> VirtualDevice:
    """The next virtual device on card ``device_index``.

    It takes the lowest vDCU number no configuration uses, and compute units no other virtual
    device of the card holds (the scheduler never books more than 100 % of a card, so they are
    normally free; configurations left behind by ended containers may force reuse). A share of
    0 % cores means no compute limit: every CU.
    """
    taken = {vdev.vdev_index for vdev in existing}
    vdev_index = next(index for index in range(len(taken) + 1) if index not in taken)
    used = 0
    for vdev in existing:
        if vdev.device_index == device_index:
            used |= vdev.cu_mask
    cores = min(max(cores_percent, 0), 100)
    cu_count = compute_units * cores // 100 if cores else compute_units
    cu_count = max(cu_count, 1)
    return VirtualDevice(
        vdev_index=vdev_index,
        device_index=device_index,
        pci_bus=pci_bus,
        memory_mib=memory_mib,
        cu_count=cu_count,
        cu_mask=_lowest_free_bits(used, cu_count, compute_units),
    )


@attrs.frozen
class VdevStore:
    """The host directory of virtual DCU configurations, one sub-directory per container."""

    root: Path

    def existing(self) -> list[VirtualDevice]:
        """Every configuration under the root (unreadable ones are errors, not skipped).

        Raises:
            BackendError: a configuration cannot be read or parsed.
        """
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.glob("*/vdev*.conf")):
            try:
                found.append(parse_vdev(path.read_text()))
            except OSError as err:
                raise BackendError(f"cannot read virtual DCU configuration {path}: {err}") from err
        return found

    def directory(self, pod_uid: str, container: str, vdev: VirtualDevice) -> Path:
        """The container's host directory (``<pod uid>_<container>_<card>_<vdev>``)."""
        return self.root / f"{pod_uid}_{container}_{vdev.device_index}_{vdev.vdev_index}"

    def write(self, pod_uid: str, container: str, vdev: VirtualDevice) -> Path:
        """Write ``vdev``'s configuration; returns its directory, mounted into the container.

        Raises:
            BackendError: the directory or file cannot be written.
        """
        directory = self.directory(pod_uid, container, vdev)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o777)
            (directory / vdev.file_name).write_text(vdev.render())
        except OSError as err:
            raise BackendError(f"cannot write virtual DCU configuration in {directory}: {err}") from err
        return directory
