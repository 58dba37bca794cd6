"""The NVIDIA backend's own annotation formats: GPU pair scores and MIG reservations.

``hami.io/node-nvidia-score`` (``specs/hami-wire.md`` 1.4.6) and ``hami.io/vgpu-mig-allocations``
(1.4.7), written byte for byte as HAMi's Go code marshals them and read as Go's decoder reads them,
with the core's Go ``encoding/json`` building blocks (:mod:`hami_core.sdk`). Decoders raise
nothing but :class:`~hami_core.sdk.CodecError`. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence

import attrs

from hami_core.sdk import GO_INT64
from hami_core.sdk import GO_UINT32
from hami_core.sdk import JSON_TOP
from hami_core.sdk import CodecError
from hami_core.sdk import GoObject
from hami_core.sdk import JsonPlace
from hami_core.sdk import MigPlacement
from hami_core.sdk import decode_mig_placement
from hami_core.sdk import go_array
from hami_core.sdk import go_clean
from hami_core.sdk import go_int
from hami_core.sdk import go_int_text
from hami_core.sdk import go_json_string
from hami_core.sdk import go_kind
from hami_core.sdk import go_members
from hami_core.sdk import go_str
from hami_core.sdk import load_go_json

# --- GPU pair scores (1.4.6) ----------------------------------------------------------------------


def _scores(value: object, where: JsonPlace) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, GoObject):
        raise where.error(go_kind(value), "map[string]int")
    return {go_clean(other): go_int(score, where, "int", GO_INT64) for other, score in value}


def decode_pair_scores(value: str) -> dict[str, dict[str, int]]:
    """``hami.io/node-nvidia-score`` as {uuid: {other uuid: score}}; the first entry of a uuid wins.

    Raises:
        CodecError: invalid JSON or values of the wrong type (HAMi then drops the node's GPUs).
    """
    scores: dict[str, dict[str, int]] = {}
    for item in go_array(load_go_json(value), JSON_TOP, "device.DevicePairScores"):
        if item is None:
            uuid, pairs = "", {}
        else:
            found = go_members(
                item, JSON_TOP, "device.DevicePairScore", ("uuid", "score"), nullable=("score",)
            )
            uuid = go_str(found.get("uuid"), JSON_TOP.field("DevicePairScore", "uuid"))
            pairs = _scores(found.get("score"), JSON_TOP.field("DevicePairScore", "score"))
        scores.setdefault(uuid, pairs)
    return scores


def encode_pair_scores(scores: Mapping[str, Mapping[str, int]]) -> str:
    """The pair-score JSON as the NVIDIA plugin marshals it (map keys sorted, empty members omitted).

    Raises:
        CodecError: a score does not fit Go's int.
    """
    items = []
    for uuid, pairs in scores.items():
        members = []
        if uuid:
            members.append(f'"uuid":{go_json_string(uuid)}')
        if pairs:
            inner = ",".join(
                f"{go_json_string(other)}:{go_int_text(pairs[other], GO_INT64, 'pair score')}"
                for other in sorted(pairs)
            )
            members.append(f'"score":{{{inner}}}')
        items.append("{" + ",".join(members) + "}")
    return "[" + ",".join(items) + "]"


# --- MIG allocations (1.4.7) ----------------------------------------------------------------------


@attrs.frozen
class MigAllocation:
    """One MIG instance the scheduler reserved, plus the identity the device plugin filled in.

    ``container_index`` counts init containers first; ``device_index`` is the position inside
    that container's device list. The runtime fields are all set or all unset.
    """

    container_index: int
    device_index: int
    gpu_uuid: str
    profile: str
    placement: MigPlacement
    mig_uuid: str = ""
    gpu_instance_id: int | None = None
    compute_instance_id: int | None = None


_ALLOCATION_FIELDS = (
    "containerIndex",
    "deviceIndex",
    "gpuUUID",
    "profile",
    "placement",
    "migUUID",
    "gpuInstanceID",
    "computeInstanceID",
)


def _check_mig_allocations(allocations: Sequence[MigAllocation]) -> None:
    seen: set[tuple[int, int]] = set()
    for position, allocation in enumerate(allocations):
        if (
            allocation.container_index < 0
            or allocation.device_index < 0
            or not allocation.gpu_uuid
            or not allocation.profile
            or allocation.placement.size == 0
        ):
            raise CodecError(f"MIG allocation {position} is incomplete")
        runtime = (
            allocation.mig_uuid != "",
            allocation.gpu_instance_id is not None,
            allocation.compute_instance_id is not None,
        )
        if any(runtime) and not all(runtime):
            raise CodecError(f"MIG allocation {position} has partial runtime identity")
        key = (allocation.container_index, allocation.device_index)
        if key in seen:
            raise CodecError(f"duplicate MIG allocation for container {key[0]} device {key[1]}")
        seen.add(key)


def _decode_mig_allocation(value: object) -> MigAllocation:
    found = (
        go_members(
            value,
            JSON_TOP,
            "nvidia.MigAllocation",
            _ALLOCATION_FIELDS,
            ("gpuInstanceID", "computeInstanceID"),
        )
        if value is not None
        else {}
    )

    def at(name: str) -> JsonPlace:
        return JSON_TOP.field("MigAllocation", name)

    def instance_id(name: str) -> int | None:
        raw = found.get(name)
        return None if raw is None else go_int(raw, at(name), "uint32", GO_UINT32)

    placement = found.get("placement")
    return MigAllocation(
        container_index=go_int(found.get("containerIndex"), at("containerIndex"), "int", GO_INT64),
        device_index=go_int(found.get("deviceIndex"), at("deviceIndex"), "int", GO_INT64),
        gpu_uuid=go_str(found.get("gpuUUID"), at("gpuUUID")),
        profile=go_str(found.get("profile"), at("profile")),
        placement=decode_mig_placement(placement, at("placement")),
        mig_uuid=go_str(found.get("migUUID"), at("migUUID")),
        gpu_instance_id=instance_id("gpuInstanceID"),
        compute_instance_id=instance_id("computeInstanceID"),
    )


def decode_mig_allocations(value: str) -> list[MigAllocation]:
    """``hami.io/vgpu-mig-allocations`` (``DecodeMigAllocations``); ``""`` means none.

    Raises:
        CodecError: invalid JSON, an incomplete entry, partial runtime identity or a duplicate
            (container, device) pair, with HAMi's messages.
    """
    if value == "":
        return []
    allocations = [
        _decode_mig_allocation(item)
        for item in go_array(load_go_json(value), JSON_TOP, "[]nvidia.MigAllocation")
    ]
    _check_mig_allocations(allocations)
    return allocations


def encode_mig_allocations(allocations: Sequence[MigAllocation]) -> str:
    """The MIG allocation JSON as Go marshals it; no allocations give ``""`` (HAMi writes nothing).

    Raises:
        CodecError: an allocation the decoder would refuse, or a number out of its Go type's range.
    """
    if not allocations:
        return ""
    _check_mig_allocations(allocations)
    items = []
    for a in allocations:
        members = [
            f'"containerIndex":{go_int_text(a.container_index, GO_INT64, "containerIndex")}',
            f'"deviceIndex":{go_int_text(a.device_index, GO_INT64, "deviceIndex")}',
            f'"gpuUUID":{go_json_string(a.gpu_uuid)}',
            f'"profile":{go_json_string(a.profile)}',
            f'"placement":{{"start":{go_int_text(a.placement.start, GO_UINT32, "placement start")},'
            f'"size":{go_int_text(a.placement.size, GO_UINT32, "placement size")}}}',
        ]
        if a.mig_uuid:
            members.append(f'"migUUID":{go_json_string(a.mig_uuid)}')
        if a.gpu_instance_id is not None:
            members.append(
                f'"gpuInstanceID":{go_int_text(a.gpu_instance_id, GO_UINT32, "gpuInstanceID")}'
            )
        if a.compute_instance_id is not None:
            members.append(
                f'"computeInstanceID":{go_int_text(a.compute_instance_id, GO_UINT32, "computeInstanceID")}'
            )
        items.append("{" + ",".join(members) + "}")
    return "[" + ",".join(items) + "]"
