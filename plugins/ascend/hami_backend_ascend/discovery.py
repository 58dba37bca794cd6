"""NPU discovery and vNPU creation behind one adapter: ``npu-smi``.

``npu-smi info -m`` maps each chip to its logic id (one row per chip: NPU id, chip id, logic id,
chip name; MCU rows have no logic id). :class:`NpuSmi` runs the tool and creates vNPUs with
``npu-smi set -t create-vnpu``, only in the device-plugin process; :class:`FakeNpuSmi` reads a
saved ``info -m`` output and numbers vNPUs in memory the way the driver does
(``100 + 16 * logic id + n``), for nodes without NPUs (demos, tests). :func:`register_devices`
turns chips into HAMi register entries: id ``<CommonWord>-<logic id>``, type the CommonWord,
``memoryAllocatable`` MiB, ``aiCore`` cores, and as many slots as the smallest template fits.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import attrs

from hami_backend_ascend import resources
from hami_backend_ascend.resources import Chip
from hami_core.sdk import MODE_HAMI_CORE
from hami_core.sdk import BackendError
from hami_core.sdk import DeviceInfo

_TIMEOUT_SECONDS = 60
_ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\d+|-)\s+(\S.*?)\s*$", re.MULTILINE)
_VNPU_ID = re.compile(r"vnpu[ _]?id\D{0,8}?(\d+)", re.IGNORECASE)
#: vNPU ids of logic id ``l`` are ``100 + 16 * l + n`` (the driver's numbering).
VNPU_BASE = 100
VNPU_PER_CHIP = 16

#: The ``npu-smi info -m`` outputs shipped with the package (``fake`` setting).
FAKES = Path(__file__).parent / "fakes"


@attrs.frozen
class NpuChip:
    """One NPU chip as ``npu-smi info -m`` lists it."""

    npu_id: int
    chip_id: int
    logic_id: int
    name: str


class NpuInventory(Protocol):
    """Where the device plugin learns the node's NPUs and creates vNPUs."""

    def chips(self) -> list[NpuChip]:
        """The node's NPU chips, by logic id.

        Raises:
            BackendError: the tool failed or its output cannot be read.
        """
        ...

    def create_vnpu(self, chip: NpuChip, template: str) -> int:
        """Create a vNPU of ``template`` on ``chip``; returns its id.

        Raises:
            BackendError: the driver refused.
        """
        ...


def parse_info_m(text: str) -> list[NpuChip]:
    """The chips of ``npu-smi info -m`` output; MCU rows (no logic id) are skipped.

    Raises:
        BackendError: the output lists no chip.
    """
    chips = [
        NpuChip(int(npu), int(chip), int(logic), name)
        for npu, chip, logic, name in _ROW.findall(text)
        if logic != "-"
    ]
    if not chips:
        raise BackendError("npu-smi info -m lists no NPU chip")
    return sorted(chips, key=lambda chip: chip.logic_id)


def _run(command: Sequence[str]) -> str:
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, timeout=_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise BackendError(f"cannot run {command[0]}: {err}") from err
    if done.returncode != 0:
        raise BackendError(
            f"{' '.join(command)} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}"
        )
    return done.stdout


@attrs.frozen
class NpuSmi:
    """Runs ``npu-smi`` on the node."""

    command: str = "npu-smi"

    def chips(self) -> list[NpuChip]:
        return parse_info_m(_run([self.command, "info", "-m"]))

    def create_vnpu(self, chip: NpuChip, template: str) -> int:
        out = _run(
            [
                self.command,
                "set",
                "-t",
                "create-vnpu",
                "-i",
                str(chip.npu_id),
                "-c",
                str(chip.chip_id),
                "-f",
                template,
            ]
        )
        found = _VNPU_ID.search(out)
        if found is None:
            raise BackendError(f"npu-smi created a vNPU but printed no vnpu id: {out.strip()!r}")
        return int(found.group(1))


@attrs.define
class FakeNpuSmi:
    """A saved ``npu-smi info -m`` output; vNPUs are numbered in memory and never destroyed."""

    path: Path
    created: list[tuple[int, str, int]] = attrs.field(factory=list)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def chips(self) -> list[NpuChip]:
        try:
            return parse_info_m(self.path.read_text())
        except OSError as err:
            raise BackendError(f"cannot read saved npu-smi output {self.path}: {err}") from err

    def create_vnpu(self, chip: NpuChip, template: str) -> int:
        with self._lock:
            used = sum(1 for logic, _, _ in self.created if logic == chip.logic_id)
            if used >= VNPU_PER_CHIP:
                raise BackendError(f"no free vNPU id on NPU {chip.logic_id}")
            vnpu = VNPU_BASE + VNPU_PER_CHIP * chip.logic_id + used
            self.created.append((chip.logic_id, template, vnpu))
            return vnpu


def fake_output(name: str) -> Path:
    """The shipped output called ``name`` (``fakes/npu-smi-<name>.txt``).

    Raises:
        BackendError: no such output is shipped.
    """
    path = FAKES / f"npu-smi-{name}.txt"
    if not path.is_file():
        shipped = sorted(p.stem.removeprefix("npu-smi-") for p in FAKES.glob("npu-smi-*.txt"))
        raise BackendError(f"no fake npu-smi output {name!r} (shipped: {', '.join(shipped)})")
    return path


def device_id(chip: Chip, logic_id: int) -> str:
    """``<CommonWord>-<logic id>``, the id an NPU is registered under."""
    return f"{chip.common_word}-{logic_id}"


def logic_id_of(chip: Chip, uuid: str) -> int:
    """The logic id in ``<CommonWord>-<logic id>``.

    Raises:
        BackendError: the id is not of that form.
    """
    prefix = f"{chip.common_word}-"
    digits = uuid.removeprefix(prefix)
    if digits == uuid or not digits.isdigit():
        raise BackendError(f"invalid {chip.common_word} device id {uuid!r} (expected {prefix}<logic id>)")
    return int(digits)


def slots(chip: Chip) -> int:
    """How many vNPUs of the smallest template one chip holds (at least 1)."""
    cores = [template.ai_core for template in chip.templates if template.ai_core > 0]
    return max(1, chip.ai_core // min(cores)) if cores else 1


def register_devices(chip: Chip, npus: Sequence[NpuChip], network_group_size: int = 0) -> list[DeviceInfo]:
    """The register entries of ``npus``; with ``network_group_size`` each carries its ``NetworkID``."""
    return [
        DeviceInfo(
            id=device_id(chip, npu.logic_id),
            index=npu.logic_id,
            count=slots(chip),
            devmem=chip.memory_allocatable,
            devcore=chip.ai_core,
            type=chip.common_word,
            mode=MODE_HAMI_CORE,
            health=True,
            custom_info={resources.NETWORK_ID: float(npu.logic_id // network_group_size)}
            if network_group_size
            else {},
            device_vendor=chip.backend_name,
        )
        for npu in npus
    ]
