"""Protobuf request bodies as client-go's typed clients send them (Helm's release Secrets)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hami_core.localcluster import protobuf_bodies
from hami_core.localcluster.apiserver import ApiServer
from hami_core.localcluster.proto import kube_objects_pb2 as pb
from hami_core.localcluster.statuses import ApiError
from tests.localcluster.test_apiserver import raw


def envelope(kind: str, message: Any, api_version: str = "v1") -> bytes:
    unknown = pb.Unknown(
        typeMeta=pb.TypeMeta(apiVersion=api_version, kind=kind),
        raw=message.SerializeToString(),
        contentEncoding="",
        contentType="",
    )
    return b"k8s\x00" + unknown.SerializeToString()


def secret(**data: bytes) -> pb.Secret:
    # Go writes every scalar, empty or not: namespace "" and generation 0 are on the wire.
    meta = pb.ObjectMeta(
        name="sh.helm.release.v1.hami.v1", namespace="", generation=0, labels={"owner": "helm"}
    )
    return pb.Secret(metadata=meta, data=data, type="helm.sh/release.v1")


def test_a_secret_decodes_to_its_json_form_without_unset_fields() -> None:
    decoded = protobuf_bodies.decode(envelope("Secret", secret(release=b"\x00\x01gz")))
    assert decoded == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "sh.helm.release.v1.hami.v1", "labels": {"owner": "helm"}},
        "data": {"release": base64.b64encode(b"\x00\x01gz").decode()},
        "type": "helm.sh/release.v1",
    }


def test_config_maps_and_delete_options_decode() -> None:
    config_map = pb.ConfigMap(metadata=pb.ObjectMeta(name="c"), data={"k": "v"}, binaryData={"b": b"\xff"})
    assert protobuf_bodies.decode(envelope("ConfigMap", config_map)) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"k": "v"},
        "binaryData": {"b": "/w=="},
    }
    options = pb.DeleteOptions(
        preconditions=pb.Preconditions(uid="u", resourceVersion=""), propagationPolicy="Background"
    )
    decoded = protobuf_bodies.decode(envelope("DeleteOptions", options))
    assert decoded["preconditions"] == {"uid": "u"}
    assert decoded["propagationPolicy"] == "Background"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"kind": "Secret"}', 400),
        (b"k8s\x00\xff\xff\xff", 400),
        (envelope("Pod", pb.Secret()), 415),
    ],
)
def test_bad_or_unknown_bodies_are_refused(body: bytes, code: int) -> None:
    with pytest.raises(ApiError) as err:
        protobuf_bodies.decode(body)
    assert err.value.code == code


@given(
    labels=st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=20), max_size=5),
    data=st.dictionaries(st.text(min_size=1, max_size=20), st.binary(max_size=64), max_size=5),
)
def test_labels_and_data_survive_any_values(labels: dict[str, str], data: dict[str, bytes]) -> None:
    message = pb.Secret(metadata=pb.ObjectMeta(name="s", labels=labels), data=data)
    decoded = protobuf_bodies.decode(envelope("Secret", message))
    assert decoded["metadata"].get("labels", {}) == labels
    assert {k: base64.b64decode(v) for k, v in decoded.get("data", {}).items()} == data


@pytest.fixture(scope="module")
def server() -> Iterator[ApiServer]:
    with ApiServer() as running:
        yield running


def test_the_api_server_stores_a_protobuf_secret_and_answers_json(server: ApiServer) -> None:
    body = envelope("Secret", secret(release=b"payload"))
    code, headers, created = raw(
        server, "POST", "/api/v1/namespaces/default/secrets", body, protobuf_bodies.MEDIA_TYPE
    )
    assert code == 201
    assert headers["Content-Type"] == "application/json"
    assert created["metadata"]["namespace"] == "default"
    assert base64.b64decode(created["data"]["release"]) == b"payload"
