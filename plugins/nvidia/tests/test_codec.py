"""The NVIDIA codecs: GPU pair scores (hami-wire.md 1.4.6) and MIG reservations (1.4.7)."""

from __future__ import annotations

import contextlib

import pytest
from hami_backend_nvidia import codec
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from hami_core.sdk import CodecError
from hami_core.sdk import MigPlacement

# --- pair scores -------------------------------------------------------------------------------

PAIR_SCORES = '[{"uuid":"GPU-0","score":{"GPU-1":100}},{"uuid":"GPU-1","score":{"GPU-0":100}}]'


def test_pair_scores_example_decodes() -> None:
    assert codec.decode_pair_scores(PAIR_SCORES) == {"GPU-0": {"GPU-1": 100}, "GPU-1": {"GPU-0": 100}}


def test_pair_scores_encode_byte_exact_with_sorted_map_keys() -> None:
    assert codec.encode_pair_scores({"GPU-0": {"GPU-1": 100}, "GPU-1": {"GPU-0": 100}}) == PAIR_SCORES
    assert codec.encode_pair_scores({"GPU-0": {"GPU-2": 20, "GPU-1": 100}}) == (
        '[{"uuid":"GPU-0","score":{"GPU-1":100,"GPU-2":20}}]'
    )


def test_pair_scores_keep_the_first_entry_of_a_uuid_as_hami_looks_it_up() -> None:
    value = '[{"uuid":"GPU-0","score":{"GPU-1":1}},{"uuid":"GPU-0","score":{"GPU-1":2}}]'
    assert codec.decode_pair_scores(value) == {"GPU-0": {"GPU-1": 1}}


@pytest.mark.parametrize("value", ["", "{", '[{"uuid":1}]', '[{"score":{"GPU-1":"high"}}]', '[{"score":[]}]'])
def test_invalid_pair_scores_are_codec_errors(value: str) -> None:
    with pytest.raises(CodecError):
        codec.decode_pair_scores(value)


# --- MIG allocations ---------------------------------------------------------------------------

MIG_PLAIN = '[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"GPU-live","profile":"1g.5gb","placement":{"start":6,"size":1}}]'
MIG_RUNTIME = (
    '[{"containerIndex":0,"deviceIndex":0,"gpuUUID":"GPU-a","profile":"2g.10gb","placement":{"start":0,"size":2},'
    '"migUUID":"MIG-a","gpuInstanceID":4,"computeInstanceID":0}]'
)


def test_mig_allocation_without_runtime_identity_round_trips() -> None:
    allocation = codec.MigAllocation(0, 0, "GPU-live", "1g.5gb", MigPlacement(6, 1))
    assert codec.decode_mig_allocations(MIG_PLAIN) == [allocation]
    assert codec.encode_mig_allocations([allocation]) == MIG_PLAIN


def test_mig_allocation_with_runtime_identity_keeps_a_zero_instance_id() -> None:
    allocation = codec.MigAllocation(0, 0, "GPU-a", "2g.10gb", MigPlacement(0, 2), "MIG-a", 4, 0)
    assert codec.decode_mig_allocations(MIG_RUNTIME) == [allocation]
    assert codec.encode_mig_allocations([allocation]) == MIG_RUNTIME


@pytest.mark.parametrize("value", ["", "null", "[]"])
def test_no_mig_allocations(value: str) -> None:
    assert codec.decode_mig_allocations(value) == []


def test_no_mig_allocations_encode_to_nothing() -> None:
    assert codec.encode_mig_allocations([]) == ""


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(
            MIG_RUNTIME.replace(',"gpuInstanceID":4,"computeInstanceID":0', ""),
            "MIG allocation 0 has partial runtime identity",
            id="partial-runtime",
        ),
        pytest.param(
            MIG_PLAIN[:-1] + "," + MIG_PLAIN[1:].replace("GPU-live", "GPU-other"),
            "duplicate MIG allocation for container 0 device 0",
            id="duplicate",
        ),
        pytest.param(
            MIG_PLAIN.replace('"size":1', '"size":0'), "MIG allocation 0 is incomplete", id="zero-size"
        ),
        pytest.param(
            MIG_PLAIN.replace('"gpuUUID":"GPU-live",', ""), "MIG allocation 0 is incomplete", id="no-uuid"
        ),
        pytest.param(
            MIG_PLAIN.replace('"containerIndex":0', '"containerIndex":-1'),
            "MIG allocation 0 is incomplete",
            id="neg",
        ),
        pytest.param("[null]", "MIG allocation 0 is incomplete", id="null-entry"),
    ],
)
def test_invalid_mig_allocations_are_refused_with_hamis_messages(value: str, message: str) -> None:
    with pytest.raises(CodecError) as caught:
        codec.decode_mig_allocations(value)
    assert str(caught.value) == message


def test_mig_allocations_the_decoder_would_refuse_are_not_encoded() -> None:
    partial = codec.MigAllocation(0, 0, "GPU-a", "1g.5gb", MigPlacement(0, 1), mig_uuid="MIG-a")
    with pytest.raises(CodecError, match="partial runtime identity"):
        codec.encode_mig_allocations([partial])


# --- properties ----------------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
INT64 = st.integers(-(2**63), 2**63 - 1)
UINT32 = st.integers(0, 2**32 - 1)


@st.composite
def mig_allocations(draw: st.DrawFn) -> list[codec.MigAllocation]:
    indices = st.integers(0, 2**63 - 1)
    keys = draw(st.lists(st.tuples(indices, indices), unique=True, max_size=4))
    allocations = []
    for container, device in keys:
        runtime = draw(st.none() | st.tuples(TEXT.filter(bool), UINT32, UINT32))
        mig_uuid, gpu_instance, compute_instance = runtime if runtime is not None else ("", None, None)
        allocations.append(
            codec.MigAllocation(
                container_index=container,
                device_index=device,
                gpu_uuid=draw(TEXT.filter(bool)),
                profile=draw(TEXT.filter(bool)),
                placement=MigPlacement(draw(UINT32), draw(st.integers(1, 2**32 - 1))),
                mig_uuid=mig_uuid,
                gpu_instance_id=gpu_instance,
                compute_instance_id=compute_instance,
            )
        )
    return allocations


@settings(max_examples=60)
@given(mig_allocations())
def test_mig_allocations_round_trip(allocations: list[codec.MigAllocation]) -> None:
    assert codec.decode_mig_allocations(codec.encode_mig_allocations(allocations)) == allocations


@settings(max_examples=60)
@given(st.dictionaries(TEXT, st.dictionaries(TEXT, INT64, max_size=3), max_size=3))
def test_pair_scores_round_trip(scores: dict[str, dict[str, int]]) -> None:
    assert codec.decode_pair_scores(codec.encode_pair_scores(scores)) == scores


@settings(max_examples=200)
@given(st.text(st.sampled_from('[]{}",:0123456789-uidscorenul ') | st.characters(), max_size=40))
@pytest.mark.parametrize("decoder", [codec.decode_pair_scores, codec.decode_mig_allocations])
def test_decoders_fail_only_with_codec_error(decoder: object, value: str) -> None:
    with contextlib.suppress(CodecError):
        decoder(value)  # type: ignore[operator]
