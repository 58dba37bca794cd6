"""DCU discovery behind one adapter: what ``hy-smi`` reports, turned into register entries.

``hy-smi`` is Hygon's fork of ``rocm-smi`` and keeps its JSON layout: one object per card
(``card0``, ``card1``, ...) with string fields such as ``Card series``, ``VRAM Total Memory (B)``,
``PCI Bus`` and ``Serial Number``. :class:`HySmi` runs the tool (only in the device-plugin
process, never in the scheduler); :class:`SavedHySmi` reads a saved output instead, which is
what nodes without DCUs (demos, tests) use. Both give :class:`DcuCard` values, and
:func:`register_devices` turns cards into the devices HAMi's DCU plugin registers: id
``DCU-<index>``, type ``DCU-<series>``, memory in MiB, 100 cores, ``split`` slots.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import attrs

from hami_backend_dcu import resources
from hami_core.sdk import MODE_HAMI_CORE
from hami_core.sdk import BackendError
from hami_core.sdk import DeviceInfo

#: What the device plugin asks ``hy-smi`` for.
HY_SMI_ARGS = ("--showproductname", "--showmeminfo", "vram", "--showbus", "--showserial", "--json")
_TIMEOUT_SECONDS = 30
_MIB = 1024 * 1024


@attrs.frozen
class DcuCard:
    """One physical DCU as ``hy-smi`` reports it.

    Args:
        index: the card number (``card<index>``), also the DRM minor the driver gives it.
        series: the model, e.g. ``Z100L`` or ``K100_AI``.
        memory_mib: total VRAM in MiB.
        pci_bus: PCI bus id, written into virtual device configurations.
        serial: the card's serial number (empty when not reported).
    """

    index: int
    series: str
    memory_mib: int
    pci_bus: str = ""
    serial: str = ""


class DcuInventory(Protocol):
    """Where the device plugin learns which DCUs the node has."""

    def cards(self) -> list[DcuCard]:
        """The node's DCUs, by card number.

        Raises:
            BackendError: the tool failed or its output cannot be read.
        """
        ...


def parse_hy_smi(text: str) -> list[DcuCard]:
    """The cards in ``hy-smi --json`` output; non-card entries (``system``) are skipped.

    Raises:
        BackendError: the text is not such output; the message names the card and field.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise BackendError(f"hy-smi output is not JSON: {err}") from err
    if not isinstance(document, dict):
        raise BackendError("hy-smi output must be a JSON object of cards")
    cards = []
    for key, fields in document.items():
        if not key.startswith("card"):
            continue
        try:
            index = int(key[len("card") :])
        except ValueError:
            raise BackendError(f"hy-smi output: {key!r} is not card<number>") from None
        if not isinstance(fields, dict):
            raise BackendError(f"hy-smi output: {key} must be an object")
        cards.append(_card(key, index, fields))
    return sorted(cards, key=lambda card: card.index)


def _card(key: str, index: int, fields: Mapping[str, object]) -> DcuCard:
    def text(name: str, *, required: bool) -> str:
        value = fields.get(name)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            raise BackendError(f"hy-smi output: {key}: {name!r} missing or not a string")
        return value.strip()

    series = text("Card series", required=True)
    if any(separator in series for separator in ",:;"):
        raise BackendError(f"hy-smi output: {key}: card series {series!r} contains a separator")
    try:
        memory = int(text("VRAM Total Memory (B)", required=True)) // _MIB
    except ValueError:
        raise BackendError(f"hy-smi output: {key}: 'VRAM Total Memory (B)' is not a number") from None
    return DcuCard(
        index=index,
        series=series.replace(" ", "_"),
        memory_mib=memory,
        pci_bus=text("PCI Bus", required=False),
        serial=text("Serial Number", required=False),
    )


@attrs.frozen
class HySmi:
    """Runs ``hy-smi`` on the node."""

    command: str = "hy-smi"

    def cards(self) -> list[DcuCard]:
        try:
            done = subprocess.run(
                [self.command, *HY_SMI_ARGS],
                capture_output=True,
                text=True,
                timeout=_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise BackendError(f"cannot run {self.command}: {err}") from err
        if done.returncode != 0:
            raise BackendError(f"{self.command} failed ({done.returncode}): {done.stderr.strip()}")
        return parse_hy_smi(done.stdout)


#: The ``hy-smi`` outputs shipped with the package, for nodes without DCUs (``fake`` setting).
FAKES = Path(__file__).parent / "fakes"


def fake_output(name: str) -> Path:
    """The shipped output called ``name`` (``fakes/hy-smi-<name>.json``).

    Raises:
        BackendError: no such output is shipped.
    """
    path = FAKES / f"hy-smi-{name}.json"
    if not path.is_file():
        shipped = sorted(p.stem.removeprefix("hy-smi-") for p in FAKES.glob("hy-smi-*.json"))
        raise BackendError(f"no fake hy-smi output {name!r} (shipped: {', '.join(shipped)})")
    return path


@attrs.frozen
class SavedHySmi:
    """A saved ``hy-smi --json`` output, read as if the tool had printed it."""

    path: Path

    def cards(self) -> list[DcuCard]:
        try:
            return parse_hy_smi(self.path.read_text())
        except OSError as err:
            raise BackendError(f"cannot read saved hy-smi output {self.path}: {err}") from err


def device_id(index: int) -> str:
    """``DCU-<index>``: the id HAMi's DCU plugin registers and parses back in Allocate."""
    return f"{resources.ID_PREFIX}{index}"


def card_index(uuid: str) -> int:
    """The card number of device id ``DCU-<index>``.

    Raises:
        BackendError: the id is not of that form.
    """
    digits = uuid.removeprefix(resources.ID_PREFIX)
    if uuid == digits or not digits.isdigit():
        raise BackendError(f"invalid DCU device id {uuid!r} (expected {resources.ID_PREFIX}<index>)")
    return int(digits)


def register_devices(cards: Sequence[DcuCard], split: int) -> list[DeviceInfo]:
    """The register entries of ``cards``: cards without memory are left out, as HAMi's plugin does."""
    return [
        DeviceInfo(
            id=device_id(card.index),
            index=card.index,
            count=split,
            devmem=card.memory_mib,
            devcore=100,
            type=f"{resources.DEVICE_TYPE}-{card.series}",
            numa=0,
            mode=MODE_HAMI_CORE,
            health=True,
            device_vendor=resources.NAME,
        )
        for card in cards
        if card.memory_mib > 0
    ]
