"""MLU discovery behind one adapter: what ``cnmon info`` reports, turned into register entries.

``cnmon info`` prints one block per card (``Card <n>``) of ``Field : value`` lines, with the total
memory under ``Physical Memory Usage``. :class:`Cnmon` runs the tool (only in the device-plugin
process, never in the scheduler); :class:`SavedCnmon` reads a saved output instead, which nodes
without MLUs (demos, tests) use. :func:`register_devices` turns cards into devices shaped exactly
like the ones HAMi's scheduler synthesizes from node capacity (:func:`capacity_devices`), so a pod
placed by either scheduler names the same ids: ``<node>-cambricon-mlu-<i>``, type ``MLU``, 100
cores, 100 slots.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import attrs

from hami_backend_mlu import resources
from hami_core.sdk import MODE_HAMI_CORE
from hami_core.sdk import BackendError
from hami_core.sdk import DeviceInfo
from hami_core.sdk import parse_quantity

_TIMEOUT_SECONDS = 30
_CARD = re.compile(r"^Card\s+(\d+)\s*$", re.MULTILINE)
_FIELD = re.compile(r"^\s*(?P<key>[A-Za-z][A-Za-z ]*?)\s*:\s*(?P<value>.*?)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"Physical Memory Usage\s*:\s*\n\s*Total\s*:\s*(\d+)\s*MiB")

#: The ``cnmon info`` outputs shipped with the package, for nodes without MLUs (``fake`` setting).
FAKES = Path(__file__).parent / "fakes"


@attrs.frozen
class MluCard:
    """One physical MLU as ``cnmon`` reports it."""

    index: int
    product: str
    memory_mib: int
    uuid: str = ""


class MluInventory(Protocol):
    """Where the device plugin learns which MLUs the node has."""

    def cards(self) -> list[MluCard]:
        """The node's MLUs, by card number.

        Raises:
            BackendError: the tool failed or its output cannot be read.
        """
        ...


def parse_cnmon(text: str) -> list[MluCard]:
    """The cards in ``cnmon info`` output.

    Raises:
        BackendError: no card block, or a block without its product name or total memory.
    """
    starts = list(_CARD.finditer(text))
    if not starts:
        raise BackendError("cnmon output lists no 'Card <n>' block")
    cards = []
    for position, start in enumerate(starts):
        end = starts[position + 1].start() if position + 1 < len(starts) else len(text)
        block = text[start.end() : end]
        index = int(start.group(1))
        fields = {found["key"]: found["value"] for found in _FIELD.finditer(block)}
        product = fields.get("Product Name", "")
        total = _TOTAL.search(block)
        if not product or total is None:
            raise BackendError(f"cnmon output: card {index} has no product name or total memory")
        cards.append(
            MluCard(index=index, product=product, memory_mib=int(total.group(1)), uuid=fields.get("UUID", ""))
        )
    return sorted(cards, key=lambda card: card.index)


@attrs.frozen
class Cnmon:
    """Runs ``cnmon info`` on the node."""

    command: str = "cnmon"

    def cards(self) -> list[MluCard]:
        try:
            done = subprocess.run(
                [self.command, "info"], capture_output=True, text=True, timeout=_TIMEOUT_SECONDS, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise BackendError(f"cannot run {self.command}: {err}") from err
        if done.returncode != 0:
            raise BackendError(f"{self.command} failed ({done.returncode}): {done.stderr.strip()}")
        return parse_cnmon(done.stdout)


@attrs.frozen
class SavedCnmon:
    """A saved ``cnmon info`` output, read as if the tool had printed it."""

    path: Path

    def cards(self) -> list[MluCard]:
        try:
            return parse_cnmon(self.path.read_text())
        except OSError as err:
            raise BackendError(f"cannot read saved cnmon output {self.path}: {err}") from err


def fake_output(name: str) -> Path:
    """The shipped output called ``name`` (``fakes/cnmon-<name>.txt``).

    Raises:
        BackendError: no such output is shipped.
    """
    path = FAKES / f"cnmon-{name}.txt"
    if not path.is_file():
        shipped = sorted(p.stem.removeprefix("cnmon-") for p in FAKES.glob("cnmon-*.txt"))
        raise BackendError(f"no fake cnmon output {name!r} (shipped: {', '.join(shipped)})")
    return path


def _device(node_name: str, index: int, memory_mib: int) -> DeviceInfo:
    return DeviceInfo(
        id=resources.device_id(node_name, index),
        index=index,
        count=resources.SLOTS_PER_CARD,
        devmem=memory_mib,
        devcore=resources.CORES_PER_CARD,
        type=resources.DEVICE_TYPE,
        numa=0,
        mode=MODE_HAMI_CORE,
        health=True,
        device_vendor=resources.NAME,
    )


def register_devices(node_name: str, cards: Sequence[MluCard]) -> list[DeviceInfo]:
    """The devices of ``cards`` on ``node_name``, numbered 0.. in card order like HAMi's synthesis."""
    return [_device(node_name, position, card.memory_mib) for position, card in enumerate(cards)]


def _whole(capacity: Mapping[str, str], name: str) -> int:
    raw = capacity.get(name)
    if raw is None:
        return 0
    try:
        value = parse_quantity(raw)
    except BackendError as err:
        raise BackendError(f"node capacity {name}: {err}") from err
    return max(int(value), 0)


def capacity_devices(
    node_name: str, capacity: Mapping[str, str], cores_resource: str, memory_resource: str
) -> list[DeviceInfo]:
    """HAMi's MLU devices of a node, synthesized from its capacity (``specs/hami-wire.md`` 6.2).

    ``cards = capacity[cores]`` (100 per physical MLU) and ``mem = capacity[memory]`` (256 MiB
    units): one device per started 100 cores, each with ``mem * 256 * 100 // cards`` MiB.

    Raises:
        BackendError: the node has no MLU cores (HAMi's ``device not found``), or a quantity
            is malformed.
    """
    cards = _whole(capacity, cores_resource)
    if cards == 0:
        raise BackendError(f"device not found {cores_resource}")
    memory = _whole(capacity, memory_resource) * resources.MEMORY_UNIT_MIB * resources.CORES_PER_CARD // cards
    count = -(-cards // resources.CORES_PER_CARD)
    return [_device(node_name, index, memory) for index in range(count)]
