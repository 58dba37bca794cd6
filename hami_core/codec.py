"""Every core annotation key and its encoding, wire-compatible with HAMi v2.10.

codec.py owns every core ``hami.io/...`` annotation and label key, the helpers backends use to
build their own keys (in their ``resources.py``), and every annotation format of
``specs/hami-wire.md`` section 1.4: node registration (JSON and legacy colon forms), the pod
device codec, node lock, handshake, filter reasons and device scoring weights. Backends with JSON
annotations of their own (a vendor's pair scores or MIG reservations) build their codecs from the
Go ``encoding/json`` building blocks at the end of this module. Encoders write what HAMi's Go code writes, byte for byte (``encoding/json`` key
order, ``omitempty`` and HTML-safe escaping); decoders accept what Go accepts, use Go's error
texts where HAMi shows them, and raise nothing but :class:`~hami_core.errors.CodecError`.

It does no I/O: callers read annotations from and patch them onto Kubernetes objects.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from datetime import tzinfo
from typing import Literal

import attrs

from hami_core.devices import MODE_HAMI_CORE
from hami_core.devices import ContainerDevice
from hami_core.devices import DeviceInfo
from hami_core.devices import MigPlacement
from hami_core.devices import MigProfile
from hami_core.devices import ScoringWeights
from hami_core.errors import CodecError

# --- keys -----------------------------------------------------------------------------------------

_PREFIX = "hami.io/"

#: Pod annotation (and pod label): the node the scheduler chose.
VGPU_NODE = "hami.io/vgpu-node"
#: Pod annotation: Unix seconds when the scheduler chose the node.
VGPU_TIME = "hami.io/vgpu-time"
#: Pod annotation: where the pod is in bind/allocate (``BIND_PHASE_*``).
BIND_PHASE = "hami.io/bind-phase"
#: Pod annotation: Unix seconds when ``/bind`` ran.
BIND_TIME = "hami.io/bind-time"
BIND_PHASE_ALLOCATING = "allocating"
BIND_PHASE_FAILED = "failed"
BIND_PHASE_SUCCESS = "success"
#: Node annotation: the node lock shared by every vendor but MLU (:func:`format_node_lock`).
NODE_LOCK = "hami.io/mutex.lock"
#: Node annotation: the handshake of a backend whose key has no vendor suffix (as HAMi's first one).
NODE_HANDSHAKE = "hami.io/node-handshake"
#: Node annotation: comma list of device UUIDs the admin took out of scheduling (:func:`parse_cordon`).
DEVICE_CORDON = "hami.io/device-cordon"
#: Pod annotation: node policy, ``binpack`` or ``spread``.
NODE_SCHEDULER_POLICY = "hami.io/node-scheduler-policy"
#: Pod annotation: device policy chain such as ``binpack,numa``.
GPU_SCHEDULER_POLICY = "hami.io/gpu-scheduler-policy"
#: Pod annotation: ``slot=<n>,core=<n>,memory=<n>`` (:func:`parse_device_scoring_weights`).
DEVICE_SCORING_WEIGHTS = "hami.io/device-scoring-weights"
#: Pod and namespace label: ``ignore`` keeps the object away from the mutating webhook.
WEBHOOK_LABEL = "hami.io/webhook"
WEBHOOK_IGNORE = "ignore"
#: Scheduler pod label: ``leader`` or ``follower``; the chart Service selects the leader.
SCHEDULER_ROLE_LABEL = "hami.io/scheduler-role"
SCHEDULER_ROLE_LEADER = "leader"
SCHEDULER_ROLE_FOLLOWER = "follower"


def annotation_key(name: str) -> str:
    """A ``hami.io/<name>`` annotation key, for a backend's own keys (e.g. a node score)."""
    return f"{_PREFIX}{name}"


def node_register_key(word: str) -> str:
    """The node annotation a backend registers its devices under, e.g. ``hami.io/node-nvidia-register``."""
    return f"{_PREFIX}node-{word}-register"


def node_handshake_key(suffix: str = "") -> str:
    """A backend's handshake node annotation: ``hami.io/node-handshake`` or ``hami.io/node-handshake-<suffix>``."""
    return f"{_PREFIX}node-handshake-{suffix}" if suffix else NODE_HANDSHAKE


def devices_to_allocate_key(word: str) -> str:
    """The pod annotation the device plugin consumes, e.g. ``hami.io/vgpu-devices-to-allocate``."""
    return f"{_PREFIX}{word}-devices-to-allocate"


def devices_allocated_key(word: str) -> str:
    """The pod annotation the scheduler's usage cache reads, e.g. ``hami.io/vgpu-devices-allocated``."""
    return f"{_PREFIX}{word}-devices-allocated"


@attrs.frozen
class VendorKeys:
    """The four annotation keys one backend reads and writes."""

    register: str
    handshake: str
    to_allocate: str
    allocated: str


def vendor_keys(*, register_word: str, devices_word: str, handshake_suffix: str = "") -> VendorKeys:
    """A backend's keys; NVIDIA's are ``vendor_keys(register_word="nvidia", devices_word="vgpu")``.

    Args:
        register_word: the word inside ``hami.io/node-<word>-register``.
        devices_word: the word inside ``hami.io/<word>-devices-to-allocate`` / ``-allocated``.
        handshake_suffix: the handshake key's suffix, empty for the bare ``hami.io/node-handshake``.
    """
    return VendorKeys(
        register=node_register_key(register_word),
        handshake=node_handshake_key(handshake_suffix),
        to_allocate=devices_to_allocate_key(devices_word),
        allocated=devices_allocated_key(devices_word),
    )


# --- Go primitives: strconv, strings --------------------------------------------------------------

_INT32 = (-(1 << 31), (1 << 31) - 1)
_INT64 = (-(1 << 63), (1 << 63) - 1)
_UINT32 = (0, (1 << 32) - 1)
_UINT64 = (0, (1 << 64) - 1)

# unicode.IsSpace: what Go's strings.TrimSpace trims and fmt's scanner skips.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_QUOTE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` (``%q``), as HAMi's error messages quote values."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():  # the same categories as Go's unicode.IsPrint
            out.append(ch)
        elif ch in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xDC80 <= code <= 0xDCFF:  # an undecodable byte kept by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _go_trim_space(text: str) -> str:
    return text.strip(_GO_SPACE)


def _go_upper(text: str) -> str:
    """Go's ``strings.ToUpper``: rune by rune, so no ``ß`` -> ``SS`` expansion."""
    if text.isascii():
        return text.upper()
    return "".join(up if len(up := ch.upper()) == 1 else ch for ch in text)


def _parse_int(text: str, bits: int, fn: str = "ParseInt") -> int:
    """Go's ``strconv.ParseInt(text, 10, bits)``; ``fn="Atoi"`` gives ``strconv.Atoi``'s errors.

    Raises:
        CodecError: with Go's ``*strconv.NumError`` text.
    """
    negative = text[:1] == "-"
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits:
        raise CodecError(f"strconv.{fn}: parsing {_go_quote(text)}: invalid syntax")
    limit = (1 << bits) - 1
    value = 0
    for ch in digits:
        if not "0" <= ch <= "9":
            raise CodecError(f"strconv.{fn}: parsing {_go_quote(text)}: invalid syntax")
        value = value * 10 + ord(ch) - 48
        if value > limit:  # ParseUint stops at the first digit that overflows, before any bad one
            break
    cutoff = 1 << (bits - 1)  # an int of `bits` bits holds -cutoff..cutoff-1
    if value > cutoff or (value == cutoff and not negative):
        raise CodecError(f"strconv.{fn}: parsing {_go_quote(text)}: value out of range")
    return -value if negative else value


_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool_go(value: str) -> bool:
    """Go's ``strconv.ParseBool``: ``1 t T TRUE true True`` and ``0 f F FALSE false False``.

    Raises:
        CodecError: any other spelling, with Go's error text.
    """
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise CodecError(f"strconv.ParseBool: parsing {_go_quote(value)}: invalid syntax")


def _format_bool(value: bool) -> str:
    return "true" if value else "false"


# --- Go encoding/json: writing --------------------------------------------------------------------

# json.Marshal's escapes (Go 1.22+ writes \b and \f short; HAMi v2.10 builds with Go 1.26).
_JSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_JSON_NEEDS_ESCAPE = re.compile('["\\\\<>&\u2028\u2029\x00-\x1f\ud800-\udfff]')


def _json_escape_char(match: re.Match[str]) -> str:
    ch = match.group()
    escaped = _JSON_ESCAPES.get(ch)
    if escaped is not None:
        return escaped
    if ch < " ":
        return f"\\u{ord(ch):04x}"
    return "\\ufffd"  # a lone surrogate is invalid UTF-8 to Go, written as the escaped U+FFFD


def _json_string(text: str) -> str:
    """A JSON string exactly as Go's ``json.Marshal`` writes it (HTML-safe, raw non-ASCII)."""
    return '"' + _JSON_NEEDS_ESCAPE.sub(_json_escape_char, text) + '"'


def _int_text(value: int, bounds: tuple[int, int], what: str) -> str:
    if not bounds[0] <= value <= bounds[1]:
        raise CodecError(f"{what} {value} does not fit Go's type (range {bounds[0]}..{bounds[1]})")
    return str(value)


# --- Go encoding/json: reading --------------------------------------------------------------------

_JSON_SPACE = " \t\n\r"


@attrs.frozen
class _Number:
    """A JSON number literal, kept as text so Go's integer rules can be applied to it."""

    text: str


class _Object(list[tuple[str, object]]):
    """A JSON object's members in document order (Go assigns repeated keys in order)."""


def _reject_constant(name: str) -> object:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def _load_json(value: str) -> object:
    try:
        return json.loads(
            value,
            object_pairs_hook=_Object,
            parse_int=_Number,
            parse_float=_Number,
            parse_constant=_reject_constant,
        )
    except RecursionError as err:
        raise CodecError("invalid JSON: nested too deeply") from err
    except ValueError as err:
        raise CodecError(f"invalid JSON: {err}") from err


def _kind(value: object) -> str:
    if isinstance(value, _Object):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, _Number):
        return "number"
    return "null"


@attrs.frozen
class _Where:
    """Where a JSON value lands, for Go-style ``UnmarshalTypeError`` messages."""

    struct: str = ""
    path: str = ""

    def field(self, struct: str, name: str) -> _Where:
        return _Where(struct, f"{self.path}.{name}" if self.path else name)

    def error(self, found: str, go_type: str) -> CodecError:
        place = f"struct field {self.struct}.{self.path}" if self.struct else "value"
        return CodecError(f"json: cannot unmarshal {found} into Go {place} of type {go_type}")


_TOP = _Where()


_NON_ASCII_FOLDS = {"\u017f": "S", "\u212a": "K"}  # the only runes that fold onto ASCII letters


def _fold(key: str) -> str:
    """Go's case folding of a key, for matching ASCII field names."""
    if key.isascii():
        return key.upper()
    return "".join(ch.upper() if ch.isascii() else _NON_ASCII_FOLDS.get(ch, ch) for ch in key)


def _members(
    value: object, where: _Where, go_type: str, fields: Collection[str], nullable: Collection[str] = ()
) -> dict[str, object]:
    """The members of a JSON object that land in a Go struct with the given JSON field names.

    Like Go: keys match case-insensitively, unknown keys are skipped, a repeated key overwrites,
    and ``null`` clears only slices, maps and pointers (``nullable``); elsewhere it is a no-op.
    """
    if not isinstance(value, _Object):
        raise where.error(_kind(value), go_type)
    by_fold = {_fold(name): name for name in fields}
    found: dict[str, object] = {}
    for key, member in value:
        name = by_fold.get(_fold(key))
        if name is not None and (member is not None or name in nullable):
            found[name] = member
    return found


def _clean(text: str) -> str:
    """Lone surrogates (invalid UTF-8 to Go) become U+FFFD, as Go's decoder does."""
    if text.isascii():
        return text
    return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)


def _str(value: object, where: _Where) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise where.error(_kind(value), "string")
    return _clean(value)


def _bool(value: object, where: _Where) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise where.error(_kind(value), "bool")
    return value


def _int(value: object, where: _Where, go_type: str, bounds: tuple[int, int]) -> int:
    """A Go integer field: an integer literal within the type's range, ``-0`` refused for uints."""
    if value is None:
        return 0
    if not isinstance(value, _Number):
        raise where.error(_kind(value), go_type)
    text = value.text
    unsigned = bounds[0] == 0
    if any(ch in text for ch in ".eE") or len(text) > 21 or (unsigned and text.startswith("-")):
        raise where.error(f"number {text}", go_type)
    number = int(text)
    if not bounds[0] <= number <= bounds[1]:
        raise where.error(f"number {text}", go_type)
    return number


def _array(value: object, where: _Where, go_type: str) -> list[object]:
    if value is None:
        return []
    if not isinstance(value, list) or isinstance(value, _Object):
        raise where.error(_kind(value), go_type)
    return value


def _any_members(value: _Object) -> dict[str, object]:
    return {_clean(key): _any(member) for key, member in value}


def _any(value: object) -> object:
    """A JSON value as Go's ``interface{}`` holds it: numbers become floats."""
    if isinstance(value, _Object):
        return _any_members(value)
    if isinstance(value, list):
        return [_any(item) for item in value]
    if isinstance(value, _Number):
        number = float(value.text)
        if not math.isfinite(number):
            raise _TOP.error(f"number {value.text}", "float64")
        return number
    if isinstance(value, str):
        return _clean(value)
    return value


# --- node registration: JSON form (1.4.1) ---------------------------------------------------------

_DEVICE_FIELDS = (
    "id",
    "index",
    "count",
    "devmem",
    "devcore",
    "type",
    "numa",
    "mode",
    "migProfiles",
    "migtemplate",
    "health",
    "devicevendor",
    "custominfo",
)
_PROFILE_FIELDS = ("name", "memoryMB", "core", "sliceCount", "placements")
_PLACEMENT_FIELDS = ("start", "size")
_TEMPLATE_FIELDS = ("Name", "Core", "Memory", "Count")


def _decode_placement(value: object, where: _Where) -> MigPlacement:
    if value is None:  # a null element of a []MigPlacement is a zero value in Go
        return MigPlacement(start=0, size=0)
    found = _members(value, where, "device.MigPlacement", _PLACEMENT_FIELDS)
    return MigPlacement(
        start=_int(found.get("start"), where.field("MigPlacement", "start"), "uint32", _UINT32),
        size=_int(found.get("size"), where.field("MigPlacement", "size"), "uint32", _UINT32),
    )


def _decode_profile(value: object, where: _Where) -> MigProfile:
    if value is None:
        return MigProfile(name="")
    found = _members(value, where, "device.MigProfile", _PROFILE_FIELDS, nullable=("placements",))
    placements = where.field("MigProfile", "placements")
    return MigProfile(
        name=_str(found.get("name"), where.field("MigProfile", "name")),
        memory_mb=_int(found.get("memoryMB"), where.field("MigProfile", "memoryMB"), "int32", _INT32),
        core=_int(found.get("core"), where.field("MigProfile", "core"), "int32", _INT32),
        slice_count=_int(found.get("sliceCount"), where.field("MigProfile", "sliceCount"), "uint32", _UINT32),
        placements=tuple(
            _decode_placement(item, placements)
            for item in _array(found.get("placements"), placements, "[]device.MigPlacement")
        ),
    )


def _check_mig_templates(value: object, where: _Where) -> None:
    """Type-checks the deprecated ``migtemplate`` list, which v2.10 never uses."""
    for geometry in _array(value, where, "[]device.Geometry"):
        for template in _array(geometry, where, "device.Geometry"):
            if template is None:
                continue
            found = _members(template, where, "device.MigTemplate", _TEMPLATE_FIELDS)
            _str(found.get("Name"), where.field("MigTemplate", "Name"))
            for name in ("Core", "Memory", "Count"):
                _int(found.get(name), where.field("MigTemplate", name), "int32", _INT32)


def _custom_info(value: object, where: _Where) -> dict[str, object]:
    if value is None:
        return {}
    if not isinstance(value, _Object):
        raise where.error(_kind(value), "map[string]interface {}")
    return _any_members(value)


def _decode_device(value: object, position: int) -> DeviceInfo:
    if value is None:
        raise CodecError(f"device entry {position} is null")
    found = _members(
        value, _TOP, "device.DeviceInfo", _DEVICE_FIELDS, ("migProfiles", "migtemplate", "custominfo")
    )

    def at(name: str) -> _Where:
        return _TOP.field("DeviceInfo", name)

    _check_mig_templates(found.get("migtemplate"), at("migtemplate"))
    return DeviceInfo(
        id=_str(found.get("id"), at("id")),
        index=_int(found.get("index"), at("index"), "uint", _UINT64),
        count=_int(found.get("count"), at("count"), "int32", _INT32),
        devmem=_int(found.get("devmem"), at("devmem"), "int32", _INT32),
        devcore=_int(found.get("devcore"), at("devcore"), "int32", _INT32),
        type=_str(found.get("type"), at("type")),
        numa=_int(found.get("numa"), at("numa"), "int", _INT64),
        mode=_str(found.get("mode"), at("mode")),
        health=_bool(found.get("health"), at("health")),
        mig_profiles=tuple(
            _decode_profile(item, at("migProfiles"))
            for item in _array(found.get("migProfiles"), at("migProfiles"), "[]device.MigProfile")
        ),
        custom_info=_custom_info(found.get("custominfo"), at("custominfo")),
        device_vendor=_str(found.get("devicevendor"), at("devicevendor")),
    )


def decode_node_devices_json(value: str) -> list[DeviceInfo]:
    """The v2.8+ JSON registration (``UnMarshalNodeDevices``); ``[]`` and ``null`` give no devices.

    Raises:
        CodecError: invalid JSON, a value of the wrong JSON type or out of its Go type's range,
            or a ``null`` device entry.
    """
    items = _array(_load_json(value), _TOP, "[]*device.DeviceInfo")
    return [_decode_device(item, position) for position, item in enumerate(items)]


def _placements_json(placements: Sequence[MigPlacement]) -> str:
    if not placements:
        return "null"  # the plugin appends to a nil slice, which Go marshals as null
    items = (
        f'{{"start":{_int_text(p.start, _UINT32, "MIG placement start")},'
        f'"size":{_int_text(p.size, _UINT32, "MIG placement size")}}}'
        for p in placements
    )
    return "[" + ",".join(items) + "]"


def _profile_json(profile: MigProfile) -> str:
    return (
        f'{{"name":{_json_string(profile.name)},'
        f'"memoryMB":{_int_text(profile.memory_mb, _INT32, "MIG profile memoryMB")},'
        f'"core":{_int_text(profile.core, _INT32, "MIG profile core")},'
        f'"sliceCount":{_int_text(profile.slice_count, _UINT32, "MIG profile sliceCount")},'
        f'"placements":{_placements_json(profile.placements)}}}'
    )


def _device_json(device: DeviceInfo) -> str:
    members = []
    if device.id:
        members.append(f'"id":{_json_string(device.id)}')
    if device.index:
        members.append(f'"index":{_int_text(device.index, _UINT64, "device index")}')
    if device.count:
        members.append(f'"count":{_int_text(device.count, _INT32, "device count")}')
    if device.devmem:
        members.append(f'"devmem":{_int_text(device.devmem, _INT32, "device devmem")}')
    if device.devcore:
        members.append(f'"devcore":{_int_text(device.devcore, _INT32, "device devcore")}')
    if device.type:
        members.append(f'"type":{_json_string(device.type)}')
    if device.numa:
        members.append(f'"numa":{_int_text(device.numa, _INT64, "device numa")}')
    if device.mode:
        members.append(f'"mode":{_json_string(device.mode)}')
    if device.mig_profiles:
        members.append('"migProfiles":[' + ",".join(_profile_json(p) for p in device.mig_profiles) + "]")
    if device.health:
        members.append('"health":true')
    return "{" + ",".join(members) + "}"


def encode_node_devices(devices: Sequence[DeviceInfo]) -> str:
    """The JSON registration exactly as HAMi's ``MarshalNodeDevices`` writes it.

    Keys in Go struct order, zero values omitted, compact, Go's escaping. ``custom_info`` and
    ``device_vendor`` are never written, as in HAMi.

    Raises:
        CodecError: a number does not fit its Go type (e.g. a negative index).
    """
    return "[" + ",".join(_device_json(device) for device in devices) + "]"


# --- node registration: legacy colon form (1.4.2) -------------------------------------------------


def _legacy_int(text: str, field: str, bits: int, fn: str = "ParseInt") -> int:
    try:
        return _parse_int(text, bits, fn)
    except CodecError as err:
        raise CodecError(f"invalid {field} field: {err}") from err


def _decode_legacy_segment(segment: str) -> DeviceInfo:
    items = segment.split(",")
    if len(items) not in (7, 9):
        raise CodecError(f"unexpected field count {len(items)} in node annotation")
    count = _legacy_int(items[1], "count", 32)
    devmem = _legacy_int(items[2], "memory", 32)
    devcore = _legacy_int(items[3], "core", 32)
    try:
        health = parse_bool_go(items[6])
    except CodecError as err:
        raise CodecError(f"invalid health field: {err}") from err
    numa = _legacy_int(items[5], "numa", 64, "Atoi")
    index, mode = 0, MODE_HAMI_CORE
    if len(items) == 9:
        index = _legacy_int(items[7], "index", 64, "Atoi")
        if index < 0:
            raise CodecError(f"index field must not be negative: {index}")
        mode = items[8]
    return DeviceInfo(
        id=items[0],
        index=index,
        count=count,
        devmem=devmem,
        devcore=devcore,
        type=items[4],
        numa=numa,
        mode=mode,
        health=health,
    )


def decode_node_devices_legacy(value: str) -> list[DeviceInfo]:
    """The colon form (``DecodeNodeDevices``), still used by DCU and Iluvatar.

    Raises:
        CodecError: with HAMi's messages; any bad segment fails the whole annotation.
    """
    if ":" not in value:
        raise CodecError("node annotation missing device separator")
    devices = []
    for segment in value.split(":"):
        if not segment:
            continue
        if "," not in segment:
            raise CodecError(f"malformed node annotation segment: {_go_quote(segment)}")
        devices.append(_decode_legacy_segment(segment))
    return devices


def decode_node_devices(value: str) -> list[DeviceInfo]:
    """A node registration in either form: JSON when it starts with ``[`` (or is ``null``), else legacy.

    An empty list is not an error here; "no gpu found on node" is the backend's to raise.

    Raises:
        CodecError: the value is in neither format (see the two decoders).
    """
    stripped = value.strip(_JSON_SPACE)
    if stripped.startswith("[") or stripped == "null":
        return decode_node_devices_json(value)
    return decode_node_devices_legacy(value)


def _plain_field(text: str, what: str, separators: str) -> str:
    """Refuses text that would split a colon-form annotation HAMi could then not read back."""
    if any(sep in text for sep in separators):
        raise CodecError(f"{what} {text!r} contains one of the separators {separators!r}")
    return text


def encode_node_devices_legacy(devices: Sequence[DeviceInfo]) -> str:
    """The 9-field colon form (``EncodeNodeDevices``): ``id,count,devmem,devcore,type,numa,health,index,mode:``.

    No devices encode to ``""``, which the decoder (like HAMi's) refuses.

    Raises:
        CodecError: an id, type or mode contains ``,`` or ``:``, or a number does not fit its Go type.
    """
    out = []
    for device in devices:
        fields = (
            _plain_field(device.id, "device id", ",:"),
            _int_text(device.count, _INT32, "device count"),
            _int_text(device.devmem, _INT32, "device devmem"),
            _int_text(device.devcore, _INT32, "device devcore"),
            _plain_field(device.type, "device type", ",:"),
            _int_text(device.numa, _INT64, "device numa"),
            _format_bool(device.health),
            _int_text(device.index, (0, _INT64[1]), "device index"),  # read back with Atoi
            _plain_field(device.mode, "device mode", ",:"),
        )
        out.append(",".join(fields) + ":")
    return "".join(out)


# --- pod devices (1.4.3) --------------------------------------------------------------------------

_MISSING_FIELDS = "pod annotation format error, missing fields, do not use nodeName in task spec"


def encode_container_devices(devices: Sequence[ContainerDevice]) -> str:
    """One container's devices: ``<uuid>,<type>,<usedmem>,<usedcores>:`` per device.

    Raises:
        CodecError: a uuid or type contains ``,``, ``:`` or ``;``, or a number is not an int32.
    """
    return "".join(
        f"{_plain_field(d.uuid, 'device uuid', ',:;')},{_plain_field(d.type, 'device type', ',:;')},"
        f"{_int_text(d.usedmem, _INT32, 'usedmem')},{_int_text(d.usedcores, _INT32, 'usedcores')}:"
        for d in devices
    )


def encode_pod_devices(containers: Sequence[Sequence[ContainerDevice]]) -> str:
    """One backend's devices of a pod (``EncodePodSingleDevice``): each container then ``;``.

    Containers go init containers first; an empty container is a bare ``;``, no containers ``""``.

    Raises:
        CodecError: as :func:`encode_container_devices`.
    """
    return "".join(encode_container_devices(devices) + ";" for devices in containers)


def _pod_int(text: str, field: str) -> int:
    try:
        return _parse_int(text, 32)
    except CodecError as err:
        raise CodecError(f"invalid {field} field: {err}") from err


def decode_container_devices(value: str) -> list[ContainerDevice]:
    """One container's piece (``DecodeContainerDevices``); pieces without ``,`` are skipped.

    Raises:
        CodecError: a device with fewer than 4 fields, or a memory/core field that is no int32.
    """
    devices = []
    for piece in value.split(":") if value else ():
        if "," not in piece:
            continue
        fields = piece.split(",")
        if len(fields) < 4:
            raise CodecError(_MISSING_FIELDS)
        devices.append(
            ContainerDevice(
                uuid=fields[0],
                type=fields[1],
                usedmem=_pod_int(fields[2], "memory"),
                usedcores=_pod_int(fields[3], "core"),
            )
        )
    return devices


def decode_pod_devices(value: str) -> list[list[ContainerDevice]]:
    """One backend's devices per container (``DecodePodDevices``).

    Every ``;``-separated piece is a container, the empty one after the final ``;`` included, so
    ``a:;`` gives two containers, the second empty (HAMi keeps it for index alignment).

    Raises:
        CodecError: any container fails, so the whole value does.
    """
    return [decode_container_devices(piece) for piece in value.split(";")]


# --- time layouts ---------------------------------------------------------------------------------

_RFC3339_LAYOUT = "2006-01-02T15:04:05Z07:00"
# Go's parser takes a 1-2 digit hour and an optional fraction after the seconds in any layout.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{1,2}):([0-9]{2}):([0-9]{2})(?:[.,]([0-9]+))?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})"
)
_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{1,2}):([0-9]{2}):([0-9]{2})(?:[.,]([0-9]+))?"
)
# Go's time.Time.String(): "2006-01-02 15:04:05.999999999 -0700 MST", maybe with " m=+<monotonic>".
_GO_TIME_STRING = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{1,2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r" ([+-][0-9]{2})([0-9]{2}) \S+(?: m=[+-][0-9]+\.[0-9]+)?"
)


def _wall_clock(groups: Sequence[str | None], tz: tzinfo | None) -> datetime:
    """Builds a datetime from regex groups: year..second, optional fraction (truncated to µs)."""
    year, month, day, hour, minute, second = (int(str(g)) for g in groups[:6])
    fraction = groups[6] or ""
    micro = int((fraction + "000000")[:6])
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)


def _offset(sign_hours: str, minutes: str) -> timezone:
    hours = int(sign_hours)
    delta = timedelta(hours=abs(hours), minutes=int(minutes))
    return timezone(-delta if sign_hours.startswith("-") else delta)


def _format_offset(when: datetime, utc_as_z: bool, colon: bool) -> str:
    offset = when.utcoffset() or timedelta(0)
    seconds = int(offset.total_seconds())
    if seconds == 0 and utc_as_z:
        return "Z"
    minutes = abs(seconds) // 60  # Go drops the seconds of an offset
    sign = "-" if seconds < 0 and minutes else "+"
    return f"{sign}{minutes // 60:02d}{':' if colon else ''}{minutes % 60:02d}"


def _date_time(when: datetime, sep: str) -> str:
    return (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}{sep}"
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}"
    )


def _aware(when: datetime) -> datetime:
    """A naive datetime is local time, as Go's ``time.Now()`` is."""
    return when if when.tzinfo is not None and when.utcoffset() is not None else when.astimezone()


def _parse_rfc3339(value: str) -> datetime:
    match = _RFC3339.fullmatch(value)
    error = f"parsing time {_go_quote(value)} as {_go_quote(_RFC3339_LAYOUT)}"
    if match is None:
        raise CodecError(f"{error}: not an RFC 3339 time")
    zone = match.group(8)
    try:
        tz = UTC if zone == "Z" else _offset(zone[:3], zone[4:])
        return _wall_clock(match.groups(), tz)
    except ValueError as err:
        raise CodecError(f"{error}: {err}") from err


# --- node lock (1.4.4) ----------------------------------------------------------------------------


def format_node_lock(when: datetime, namespace: str, name: str) -> str:
    """The ``hami.io/mutex.lock`` value ``<RFC 3339 time>,<namespace>,<name>``.

    Seconds precision and the datetime's own offset (``Z`` for UTC), like Go's ``time.RFC3339``;
    a naive ``when`` is taken as local time.
    """
    when = _aware(when)
    return f"{_date_time(when, 'T')}{_format_offset(when, utc_as_z=True, colon=True)},{namespace},{name}"


@attrs.frozen
class NodeLockState:
    """A parsed ``hami.io/mutex.lock``: when it was taken and by which pod (no pod for a legacy lock)."""

    taken: datetime
    namespace: str = ""
    name: str = ""

    @property
    def owner(self) -> tuple[str, str] | None:
        """``(namespace, name)`` of the pod holding the lock; ``None`` for a legacy timestamp-only lock."""
        return (self.namespace, self.name) if self.name else None

    def owned_by(self, namespace: str, name: str) -> bool:
        return self.owner == (namespace, name)


def parse_node_lock(value: str) -> NodeLockState:
    """The lock time and owner (``ParseNodeLock``); a legacy timestamp-only lock has ``""`` owner.

    Raises:
        CodecError: not three ``,``-separated parts, or the time is not RFC 3339.
    """
    if "," not in value:
        return NodeLockState(_parse_rfc3339(value))
    parts = value.split(",")
    if len(parts) != 3:
        raise CodecError(f"malformed lock annotation: expected 3 parts, got {len(parts)} from {value}")
    return NodeLockState(_parse_rfc3339(parts[0]), parts[1], parts[2])


def node_lock_owned_by(value: str, namespace: str, name: str) -> bool:
    """Whether a lock value names this pod (HAMi's suffix test; a legacy lock has no owner)."""
    return "," in value and value.endswith(f",{namespace},{name}")


# --- handshake (1.4.5) ----------------------------------------------------------------------------

HandshakeState = Literal["Requesting", "Reported", "Deleted", ""]


@attrs.frozen
class Handshake:
    """A parsed handshake annotation.

    ``state`` is ``""`` for an absent or unknown value; ``time`` is ``None`` when the value
    carries no time or one that does not parse (HAMi then treats a ``Requesting`` node as healthy).
    """

    state: HandshakeState
    time: datetime | None = None


def format_handshake_requesting(when: datetime) -> str:
    """``Requesting_<YYYY-MM-DD HH:MM:SS>`` in local time, as the v2.10 scheduler writes it.

    A naive ``when`` is written as is; an aware one is converted to local time first, so that
    :func:`parse_handshake` (which reads local time) gets the same instant back.
    """
    if when.tzinfo is not None and when.utcoffset() is not None:
        when = when.astimezone()
    return f"Requesting_{_date_time(when, ' ')}"


def format_handshake_reported(when: datetime) -> str:
    """The legacy device-plugin form ``Reported <Go time.String()>``, e.g.
    ``Reported 2024-01-23 04:30:04.434037 +0000 UTC`` (a naive ``when`` is local time)."""
    when = _aware(when)
    fraction = f".{when.microsecond:06d}".rstrip("0").rstrip(".")
    numeric = _format_offset(when, utc_as_z=False, colon=False)
    zone = when.tzname()
    if not zone or (zone.startswith("UTC") and zone != "UTC"):
        zone = numeric  # Go prints the numeric offset for a zone without an abbreviation
    return f"Reported {_date_time(when, ' ')}{fraction} {numeric} {zone}"


def _parse_date_time(text: str, tz: tzinfo | None) -> datetime | None:
    match = _DATETIME.fullmatch(text)
    if match is None:
        return None
    try:
        wall = _wall_clock(match.groups(), tz)
    except ValueError:
        return None
    return wall if tz is not None else wall.astimezone()  # naive: local time, as Go's time.Local


def _parse_go_time_string(text: str) -> datetime | None:
    match = _GO_TIME_STRING.fullmatch(text)
    if match is None:
        return None
    try:
        return _wall_clock(match.groups(), _offset(match.group(8), match.group(9)))
    except ValueError:
        return None


def parse_handshake(value: str | None, tz: tzinfo | None = None) -> Handshake:
    """Reads a handshake value in any generation's form; never raises.

    Args:
        value: the annotation value, ``None`` when absent.
        tz: the zone of ``Requesting_``/``Deleted_`` times; ``None`` is local time, as in HAMi.
    """
    if not value:
        return Handshake("")
    if "Requesting" in value:  # v2.10 tests containment, then cuts at the first "_"
        _, found, stamp = value.partition("_")
        return Handshake("Requesting", _parse_date_time(stamp, tz) if found else None)
    if value.startswith("Reported"):
        return Handshake("Reported", _parse_go_time_string(value.removeprefix("Reported").lstrip(" ")))
    if value.startswith("Deleted"):
        _, found, stamp = value.partition("_")
        return Handshake("Deleted", _parse_date_time(stamp, tz) if found else None)
    return Handshake("")


# --- filter reasons (1.4.8) -----------------------------------------------------------------------

CARD_TYPE_MISMATCH = "CardTypeMismatch"
CARD_UUID_MISMATCH = "CardUuidMismatch"
CARD_TIME_SLICING_EXHAUSTED = "CardTimeSlicingExhausted"
CARD_COMPUTE_UNITS_EXHAUSTED = "CardComputeUnitsExhausted"
CARD_INSUFFICIENT_MEMORY = "CardInsufficientMemory"
CARD_INSUFFICIENT_CORE = "CardInsufficientCore"
CARD_NOT_HEALTH = "CardNotHealth"
CARD_CORDONED = "CardCordoned"
NUMA_NOT_FIT = "NumaNotFit"
EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT = "ExclusiveDeviceAllocateConflict"
CARD_NOT_FOUND_CUSTOM_FILTER_RULE = "CardNotFoundCustomFilterRule"
CARD_MIG_TOPOLOGY_INFEASIBLE = "CardMigTopologyInfeasible"
NODE_INSUFFICIENT_DEVICE = "NodeInsufficientDevice"
ALLOCATED_CARDS_INSUFFICIENT_REQUEST = "AllocatedCardsInsufficientRequest"
RESOURCE_QUOTA_NOT_FIT = "ResourceQuotaNotFit"
MODE_NOT_FIT = "ModeNotFit"
#: Log tags, not per-device reasons.
NODE_UNFIT_POD = "NodeUnfitPod"
NODE_FIT_POD = "NodeFitPod"
#: Whole-node failure strings of the filter.
NODE_UNREGISTERED = "node unregistered"
NODE_USAGE_UNAVAILABLE = "node usage unavailable"
DEVICE_TYPE_NOT_FOUND = "Device type not found"


def format_reasons(counts: Mapping[str, int], total: int) -> str:
    """HAMi's ``GenReason``: ``"<count>/<total> <Reason>"`` items, sorted as strings, joined by ``", "``."""
    return ", ".join(sorted(f"{count}/{total} {reason}" for reason, count in counts.items()))


_SCAN_SPACE = _GO_SPACE.replace("\n", "")
# fmt.Sscanf(item, "%d/%d %s"): the format's space needs at least one space in the input, and a
# newline where a space may be skipped is an error.
_REASON_ITEM = re.compile(
    f"[{_SCAN_SPACE}]*([+-]?[0-9]+)/[{_SCAN_SPACE}]*([+-]?[0-9]+)[{_SCAN_SPACE}]+([^{_GO_SPACE}]+)"
)


def parse_reasons(text: str) -> dict[str, int]:
    """HAMi's ``ParseReason``: reason key to count, items in any order; unreadable items are skipped."""
    reasons: dict[str, int] = {}
    for item in text.split(", "):
        match = _REASON_ITEM.match(item)
        if match is None or len(match.group(1)) > 21 or len(match.group(2)) > 21:
            continue
        count, total = int(match.group(1)), int(match.group(2))
        if _INT64[0] <= count <= _INT64[1] and _INT64[0] <= total <= _INT64[1]:
            reasons[match.group(3)] = count
    return reasons


# --- device scoring weights (1.4.9) ---------------------------------------------------------------


def parse_device_scoring_weights(value: str | None) -> ScoringWeights:
    """``hami.io/device-scoring-weights`` (``ParseDeviceScoringWeights``); ``None`` (absent) is 1,1,1.

    Raises:
        CodecError: ``invalid hami.io/device-scoring-weights annotation "<value>": <detail>``, with
            HAMi's details; note that ``""`` is invalid.
    """
    if value is None:
        return ScoringWeights()
    prefix = f"invalid {DEVICE_SCORING_WEIGHTS} annotation {_go_quote(value)}"
    parts = value.split(",")
    if len(parts) != 3:
        raise CodecError(f"{prefix}: expected slot, core, and memory weights")
    weights: dict[str, int] = {}
    for part in parts:
        key, found, number = _go_trim_space(part).partition("=")
        if not found:
            raise CodecError(f"{prefix}: expected key=value entries")
        key = _go_trim_space(key)
        if key in weights:
            raise CodecError(f"{prefix}: duplicate {_go_quote(key)} weight")
        try:
            weight = _parse_int(_go_trim_space(number), 64)
        except CodecError as err:
            raise CodecError(f"{prefix}: {_go_quote(key)} weight must be an integer") from err
        if weight < 0:
            raise CodecError(f"{prefix}: {_go_quote(key)} weight must not be negative")
        if key not in ("slot", "core", "memory"):
            raise CodecError(f"{prefix}: unknown weight {_go_quote(key)}")
        weights[key] = weight
    if not any(weights.values()):
        raise CodecError(f"{prefix}: at least one weight must be positive")
    return ScoringWeights(slot=weights["slot"], core=weights["core"], memory=weights["memory"])


# --- comma lists: device filters and cordon -------------------------------------------------------


def parse_uuid_list(value: str | None) -> tuple[str, ...]:
    """A comma list of UUIDs: items trimmed (Go's ``TrimSpace``), empty items skipped."""
    if value is None:
        return ()
    return tuple(item for raw in value.split(",") if (item := _go_trim_space(raw)))


def parse_cordon(value: str | None) -> frozenset[str]:
    """The UUIDs in ``hami.io/device-cordon``; absent or empty means none."""
    return frozenset(parse_uuid_list(value))


def _constraint(annotations: Mapping[str, str], key: str) -> str | None:
    """An include/exclude list, or ``None`` when absent or blank ("no constraint")."""
    value = annotations.get(key)
    return value if value is not None and _go_trim_space(value) else None


def check_uuid(annotations: Mapping[str, str], uuid: str, use_key: str, nouse_key: str) -> bool:
    """HAMi's ``CheckUUID``: the device passes the pod's use/no-use UUID lists (exact match)."""

    def listed(value: str) -> bool:
        return any(_go_trim_space(item) == uuid for item in value.split(","))

    use, nouse = _constraint(annotations, use_key), _constraint(annotations, nouse_key)
    return (use is None or listed(use)) and (nouse is None or not listed(nouse))


def check_type(annotations: Mapping[str, str], device_type: str, use_key: str, nouse_key: str) -> bool:
    """HAMi's ``CheckType``: the device model passes the pod's use/no-use lists, where an item
    matches when the upper-cased model contains it upper-cased; empty items never match."""
    model = _go_upper(device_type)

    def listed(value: str) -> bool:
        return any((item := _go_trim_space(raw)) and _go_upper(item) in model for raw in value.split(","))

    use, nouse = _constraint(annotations, use_key), _constraint(annotations, nouse_key)
    return (use is None or listed(use)) and (nouse is None or not listed(nouse))


# --- scheduling retries (a hami extension, not in HAMi v2.10) ------------------------------------

#: Pod annotation the scheduler sets on a pending pod it rejected for lack of device capacity once
#: capacity is freed (a pod ended, a bind failed, a device turned healthy): the value is the Unix
#: time of the request with milliseconds, so every touch is a change and kube-scheduler requeues the
#: pod at once instead of after its 5-minute unschedulable flush.
SCHEDULING_RETRY = "hami.io/scheduling-retry"


# --- Go encoding/json building blocks for backends' own annotation codecs -------------------------

#: Where a decoded JSON value lands (Go struct and field path), for Go's ``UnmarshalTypeError`` text.
JsonPlace = _Where
#: The top-level place of a document.
JSON_TOP = _TOP
#: Go integer ranges for :func:`go_int` and :func:`go_int_text`.
INT32 = _INT32
INT64 = _INT64
UINT32 = _UINT32
#: Parse JSON as Go's decoder sees it (objects keep member order, numbers stay text); CodecError on bad JSON.
load_go_json = _load_json
#: A JSON string exactly as Go's ``json.Marshal`` writes it.
go_json_string = _json_string
#: An integer as Go writes it, CodecError when outside the Go type's range.
go_int_text = _int_text
#: The members of a JSON object landing in a Go struct (case-insensitive keys, unknown ones skipped).
go_members = _members
#: A JSON array landing in a Go slice (``null`` is empty).
go_array = _array
#: A JSON string landing in a Go string field (``null`` is ``""``).
go_str = _str
#: A JSON number landing in a Go integer field of the given range.
go_int = _int
#: A Go map key or string as Go's decoder cleans it (invalid UTF-16 becomes U+FFFD).
go_clean = _clean
#: The JSON kind of a parsed value, as Go names it in errors.
go_kind = _kind
#: A parsed JSON object (a list of members in document order).
GoObject = _Object
#: A MIG placement object as Go decodes it.
decode_mig_placement = _decode_placement
