"""Properties of the wire codecs: encodings round-trip, JSON matches Go's escaping, decoders fail cleanly."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from hami_core import codec
from hami_core.devices import ContainerDevice
from hami_core.devices import DeviceInfo
from hami_core.devices import MigPlacement
from hami_core.devices import MigProfile
from hami_core.devices import ScoringWeights
from hami_core.errors import CodecError

# Modest counts: the whole file must run in seconds on a shared CI machine.
examples = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
fuzz_examples = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

INT32 = st.integers(-(2**31), 2**31 - 1)
UINT32 = st.integers(0, 2**32 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
UINT64 = st.integers(0, 2**64 - 1)


def text_without(separators: str = "", min_size: int = 0) -> st.SearchStrategy[str]:
    """Any text Go can hold as valid UTF-8 (no lone surrogates), minus the given separators."""
    return st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters=separators),
        min_size=min_size,
        max_size=12,
    )


# Characters that stress Go's escaping: HTML-unsafe ASCII, controls, JS line separators, non-BMP.
TRICKY = st.text(
    st.sampled_from('<>&"\\\n\r\t\b\f\x00\x01\x1f\x7f\u2028\u2029\u00e9\u4e2d\U0001f600 aZ'), max_size=12
)
JSON_TEXT = text_without() | TRICKY

placements = st.builds(MigPlacement, start=UINT32, size=UINT32)
profiles = st.builds(
    MigProfile,
    name=JSON_TEXT,
    memory_mb=INT32,
    core=INT32,
    slice_count=UINT32,
    placements=st.lists(placements, max_size=3).map(tuple),
)
json_devices = st.lists(
    st.builds(
        DeviceInfo,
        id=JSON_TEXT,
        index=UINT64,
        count=INT32,
        devmem=INT32,
        devcore=INT32,
        type=JSON_TEXT,
        numa=INT64,
        mode=JSON_TEXT,
        health=st.booleans(),
        mig_profiles=st.lists(profiles, max_size=2).map(tuple),
    ),
    max_size=4,
)
legacy_devices = st.lists(
    st.builds(
        DeviceInfo,
        id=text_without(",:"),
        index=st.integers(0, 2**63 - 1),
        count=INT32,
        devmem=INT32,
        devcore=INT32,
        type=text_without(",:"),
        numa=INT64,
        mode=text_without(",:"),
        health=st.booleans(),
    ),
    min_size=1,
    max_size=4,
).filter(
    # A value that starts with "[" is read as the JSON form (by HAMi too), so no legacy value does.
    lambda devices: not devices[0].id.lstrip(" \t\n\r").startswith("[")
)
pod_containers = st.lists(
    st.lists(
        st.builds(
            ContainerDevice,
            uuid=text_without(",:;"),
            type=text_without(",:;"),
            usedmem=INT32,
            usedcores=INT32,
        ),
        max_size=3,
    ),
    max_size=4,
)


aware_seconds = st.builds(
    lambda when, minutes: when.replace(microsecond=0, tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30)),
    st.integers(-(24 * 60 - 1), 24 * 60 - 1),
)
reason_keys = st.text(
    st.characters(exclude_categories=["Cs", "Cc", "Zs", "Zl", "Zp"], exclude_characters=","),
    min_size=1,
    max_size=12,
)


# --- round trips ----------------------------------------------------------------------------------


@examples
@given(json_devices)
def test_json_registration_round_trips(devices: list[DeviceInfo]) -> None:
    assert codec.decode_node_devices(codec.encode_node_devices(devices)) == devices


def go_shape(device: DeviceInfo) -> dict[str, object]:
    """The object Go marshals for a device: struct order, zero values left out."""
    members: dict[str, object] = {
        "id": device.id,
        "index": device.index,
        "count": device.count,
        "devmem": device.devmem,
        "devcore": device.devcore,
        "type": device.type,
        "numa": device.numa,
        "mode": device.mode,
        "migProfiles": [
            {
                "name": p.name,
                "memoryMB": p.memory_mb,
                "core": p.core,
                "sliceCount": p.slice_count,
                "placements": [{"start": x.start, "size": x.size} for x in p.placements] or None,
            }
            for p in device.mig_profiles
        ],
        "health": device.health,
    }
    return {key: value for key, value in members.items() if value}


def go_marshal_oracle(value: object) -> str:
    """Go's json.Marshal for surrogate-free text: compact json.dumps plus Go's five HTML-safe escapes."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


@examples
@given(json_devices)
def test_json_registration_matches_an_independent_go_marshal_oracle(devices: list[DeviceInfo]) -> None:
    assert codec.encode_node_devices(devices) == go_marshal_oracle([go_shape(d) for d in devices])


@examples
@given(legacy_devices)
def test_legacy_registration_round_trips(devices: list[DeviceInfo]) -> None:
    assert codec.decode_node_devices(codec.encode_node_devices_legacy(devices)) == devices


@examples
@given(pod_containers)
def test_pod_devices_round_trip_plus_the_trailing_empty_container(
    containers: list[list[ContainerDevice]],
) -> None:
    assert codec.decode_pod_devices(codec.encode_pod_devices(containers)) == [*containers, []]


@examples
@given(aware_seconds, text_without(","), text_without(","))
def test_node_lock_round_trips(when: datetime, namespace: str, name: str) -> None:
    value = codec.format_node_lock(when, namespace, name)
    lock = codec.parse_node_lock(value)
    assert (lock.taken, lock.taken.utcoffset(), lock.namespace, lock.name) == (
        when,
        when.utcoffset(),
        namespace,
        name,
    )
    assert codec.node_lock_owned_by(value, namespace, name)


@examples
@given(st.datetimes(min_value=datetime(1000, 1, 1)))
def test_handshake_requesting_round_trips_to_the_second(when: datetime) -> None:
    parsed = codec.parse_handshake(codec.format_handshake_requesting(when), UTC)
    assert parsed == codec.Handshake("Requesting", when.replace(microsecond=0, tzinfo=UTC))


@examples
@given(st.dictionaries(reason_keys, st.integers(0, 10**6), max_size=6), st.integers(0, 10**6))
def test_reasons_round_trip(counts: dict[str, int], total: int) -> None:
    assert codec.parse_reasons(codec.format_reasons(counts, total)) == counts


@examples
@given(
    st.tuples(*(st.integers(0, 2**63 - 1) for _ in range(3))).filter(any),
    st.permutations(["slot", "core", "memory"]),
    st.sampled_from(["", " ", "\t", " \u3000"]),
)
def test_scoring_weights_round_trip_in_any_order_and_spacing(
    weights: tuple[int, int, int], order: list[str], pad: str
) -> None:
    by_key = dict(zip(("slot", "core", "memory"), weights, strict=True))
    value = ",".join(f"{pad}{key}{pad}={pad}{by_key[key]}{pad}" for key in order)
    assert codec.parse_device_scoring_weights(value) == ScoringWeights(*weights)


# --- decoders fail only with CodecError -----------------------------------------------------------

Decoder = Callable[[str], object]
DECODERS: list[tuple[str, Decoder, st.SearchStrategy[str]]] = [
    ("node-devices-json", codec.decode_node_devices, json_devices.map(codec.encode_node_devices)),
    ("node-devices-legacy", codec.decode_node_devices, legacy_devices.map(codec.encode_node_devices_legacy)),
    ("pod-devices", codec.decode_pod_devices, pod_containers.map(codec.encode_pod_devices)),
    (
        "node-lock",
        codec.parse_node_lock,
        st.builds(codec.format_node_lock, aware_seconds, text_without(","), text_without(",")),
    ),
    ("handshake", codec.parse_handshake, st.datetimes().map(codec.format_handshake_requesting)),
    (
        "scoring-weights",
        codec.parse_device_scoring_weights,
        st.builds(lambda s, c, m: f"slot={s},core={c},memory={m}", *[st.integers(1, 2**63 - 1)] * 3),
    ),
    (
        "reasons",
        codec.parse_reasons,
        st.builds(codec.format_reasons, st.dictionaries(reason_keys, INT64), INT64),
    ),
    ("bool", codec.parse_bool_go, st.sampled_from(["true", "false", "1", "0"])),
    ("cordon", codec.parse_cordon, st.lists(text_without(",")).map(",".join)),
]
ids = [name for name, _, _ in DECODERS]
# Fragments of every format, so that random text reaches past the first check.
FORMAT_ALPHABET = st.sampled_from(
    [*'[]{}",:;=/_ -.eE0123456789+tfnulraesTZ\\\n', "null", "true", '"id"', "1e9"]
)
MUTATION_CHARS = FORMAT_ALPHABET | st.characters()


@st.composite
def mutations_of(draw: st.DrawFn, valid: st.SearchStrategy[str]) -> str:
    """A valid encoding with a few characters inserted, deleted or replaced."""
    text = draw(valid)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        cut = at + 1 if op != "insert" else at
        text = text[:at] + ("" if op == "delete" else draw(MUTATION_CHARS)) + text[cut:]
    return text


@pytest.mark.parametrize(("name", "decoder", "valid"), DECODERS, ids=ids)
@fuzz_examples
@given(data=st.data())
def test_decoders_raise_only_codec_error_on_arbitrary_or_mutated_text(
    name: str, decoder: Decoder, valid: st.SearchStrategy[str], data: st.DataObject
) -> None:
    arbitrary = st.text() | st.lists(FORMAT_ALPHABET, max_size=30).map("".join)
    value = data.draw(arbitrary | mutations_of(valid), label=name)
    with contextlib.suppress(CodecError):
        decoder(value)


list_items = text_without(",", min_size=1).filter(lambda item: item.strip(GO_SPACE) == item)
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


@examples
@given(list_items, st.sampled_from(["", " ", "\t", "\u3000"]))
def test_a_listed_uuid_is_used_and_an_excluded_one_is_not(uuid: str, pad: str) -> None:
    assert codec.check_uuid({"use": f"other,{pad}{uuid}{pad}"}, uuid, "use", "nouse")
    assert not codec.check_uuid({"nouse": f"{pad}{uuid}{pad},other"}, uuid, "use", "nouse")


@examples
@given(list_items, text_without(), text_without())
def test_a_device_type_containing_a_listed_type_is_used(item: str, before: str, after: str) -> None:
    device_type = before + item + after
    assert codec.check_type({"use": f" {item} ,"}, device_type, "use", "nouse")
    assert not codec.check_type({"nouse": item}, device_type, "use", "nouse")
