"""Decoding the protobuf request bodies client-go's typed clients send (``application/vnd.kubernetes.protobuf``).

Helm keeps its release records in Secrets written with the typed client, which speaks protobuf, so
``helm install`` needs the emulator to read that encoding. Only the kinds in
:data:`DECODERS` are understood (the messages in ``proto/kube_objects.proto``); any other body is
refused with 415 as before. Replies stay JSON: clients that send protobuf also accept JSON.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from typing import Any

from google.protobuf.message import DecodeError

from hami_core.localcluster import statuses
from hami_core.localcluster.proto import kube_objects_pb2 as pb
from hami_core.localcluster.resources import JsonObj

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"


def _time(value: Any) -> str:
    return datetime.fromtimestamp(value.seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _metadata(meta: Any) -> JsonObj:
    out: JsonObj = {}
    # Go's encoder writes every scalar, so an empty string or zero means unset, as in JSON's omitempty.
    for field in ("name", "generateName", "namespace", "uid", "resourceVersion", "generation"):
        if getattr(meta, field):
            out[field] = getattr(meta, field)
    if meta.creationTimestamp.seconds:
        out["creationTimestamp"] = _time(meta.creationTimestamp)
    for field in ("labels", "annotations"):
        if getattr(meta, field):
            out[field] = dict(getattr(meta, field))
    if meta.ownerReferences:
        out["ownerReferences"] = [
            {
                key: getattr(ref, key)
                for key in ("apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion")
                if ref.HasField(key)
            }
            for ref in meta.ownerReferences
        ]
    if meta.finalizers:
        out["finalizers"] = list(meta.finalizers)
    return out


def _secret(raw: bytes) -> JsonObj:
    secret = pb.Secret.FromString(raw)
    obj: JsonObj = {"metadata": _metadata(secret.metadata)}
    if secret.data:
        obj["data"] = {key: base64.b64encode(value).decode() for key, value in secret.data.items()}
    if secret.stringData:
        obj["stringData"] = dict(secret.stringData)
    if secret.type:
        obj["type"] = secret.type
    if secret.HasField("immutable"):
        obj["immutable"] = secret.immutable
    return obj


def _config_map(raw: bytes) -> JsonObj:
    config_map = pb.ConfigMap.FromString(raw)
    obj: JsonObj = {"metadata": _metadata(config_map.metadata)}
    if config_map.data:
        obj["data"] = dict(config_map.data)
    if config_map.binaryData:
        obj["binaryData"] = {
            key: base64.b64encode(value).decode() for key, value in config_map.binaryData.items()
        }
    if config_map.HasField("immutable"):
        obj["immutable"] = config_map.immutable
    return obj


def _delete_options(raw: bytes) -> JsonObj:
    options = pb.DeleteOptions.FromString(raw)
    obj: JsonObj = {}
    if options.HasField("gracePeriodSeconds"):
        obj["gracePeriodSeconds"] = options.gracePeriodSeconds
    preconditions = {
        key: getattr(options.preconditions, key)
        for key in ("uid", "resourceVersion")
        if getattr(options.preconditions, key)
    }
    if preconditions:
        obj["preconditions"] = preconditions
    if options.propagationPolicy:
        obj["propagationPolicy"] = options.propagationPolicy
    if options.dryRun:
        obj["dryRun"] = list(options.dryRun)
    return obj


#: (apiVersion, kind) to the decoder of its raw message.
DECODERS: dict[tuple[str, str], Callable[[bytes], JsonObj]] = {
    ("v1", "Secret"): _secret,
    ("v1", "ConfigMap"): _config_map,
    ("v1", "DeleteOptions"): _delete_options,
    ("meta.k8s.io/v1", "DeleteOptions"): _delete_options,
}


def decode(body: bytes) -> JsonObj:
    """The JSON form of a protobuf-encoded object body.

    Raises:
        ApiError: 400 for a body that is not a Kubernetes protobuf envelope, 415 for a kind the
            emulator cannot decode.
    """
    if not body.startswith(_MAGIC):
        raise statuses.bad_request("protobuf body lacks the k8s\\0 envelope prefix")
    try:
        envelope = pb.Unknown.FromString(body[len(_MAGIC) :])
    except DecodeError as err:
        raise statuses.bad_request(f"cannot decode protobuf body: {err}") from err
    api_version = envelope.typeMeta.apiVersion
    kind = envelope.typeMeta.kind
    decoder = DECODERS.get((api_version, kind))
    if decoder is None:
        message = (
            f"the body of the request was in an unknown format ({MEDIA_TYPE} for {api_version}/{kind}) - "
            "accepted media types include: application/json, application/yaml"
        )
        raise statuses.ApiError(415, "UnsupportedMediaType", message)
    try:
        obj = decoder(envelope.raw)
    except DecodeError as err:
        raise statuses.bad_request(f"cannot decode protobuf {kind}: {err}") from err
    return {"apiVersion": api_version, "kind": kind, **obj}
