"""AdmissionReview parsing and replies, v1 and v1beta1 (kube-wire.md 3c)."""

from __future__ import annotations

import base64
import json

import pytest

from hami_core.errors import CodecError
from hami_core.webhook import review


def _nested(depth: int) -> object:
    """Lists and objects nested ``depth`` levels deep."""
    value: object = 1
    for level in range(depth):
        value = {"a": value} if level % 2 else [value]
    return value


def test_an_object_just_within_the_depth_limit_is_fine() -> None:
    assert review.parse_review(_body(object={"spec": _nested(review.MAX_OBJECT_DEPTH - 1)})).problem == ""


def _body(api_version: str = "admission.k8s.io/v1", /, **request: object) -> bytes:
    fields: dict[str, object] = {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "operation": "CREATE",
        "namespace": "default",
        "object": {"spec": {}},
        **request,
    }
    return json.dumps({"apiVersion": api_version, "kind": "AdmissionReview", "request": fields}).encode()


@pytest.mark.parametrize("api_version", review.API_VERSIONS)
def test_a_pod_creation_is_read_in_either_version(api_version: str) -> None:
    request = review.parse_review(_body(api_version, name="p", dryRun=True))
    assert request == review.AdmissionRequest(
        api_version=api_version,
        uid="705ab4f5-6393-11e8-b7cc-42010a800002",
        kind="Pod",
        operation="CREATE",
        namespace="default",
        name="p",
        dry_run=True,
    )
    assert request.object == {"spec": {}}
    assert request.is_pod_create


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"{not json", "the request body is not JSON", id="not-json"),
        pytest.param(b"\xff\xfe\x00", "the request body is not JSON", id="not-utf8"),
        pytest.param(b'{"a": NaN}', "the request body is not JSON: NaN is not a JSON value", id="nan"),
        pytest.param(b"[1]", "an AdmissionReview is a JSON object, got list", id="a-list"),
        pytest.param(b"[" * 100_000, "the request body is not JSON", id="deep-nesting"),
        pytest.param(b'{"kind": "Pod"}', "expected kind AdmissionReview, got 'Pod'", id="wrong-kind"),
        pytest.param(
            b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v2"}',
            "unsupported apiVersion 'admission.k8s.io/v2'",
            id="wrong-version",
        ),
        pytest.param(
            b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}',
            "the AdmissionReview has no request object",
            id="no-request",
        ),
        pytest.param(_body(uid=""), "request.uid is missing", id="empty-uid"),
        pytest.param(_body(uid=7), "request.uid is missing", id="uid-not-a-string"),
    ],
)
def test_a_body_that_is_not_an_admissionreview_is_a_codec_error(body: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        review.parse_review(body)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        pytest.param(
            {"kind": "Pod"}, "request.kind must be an object naming the group, version and kind", id="kind"
        ),
        pytest.param({"operation": None}, "request.operation is missing", id="no-operation"),
        pytest.param({"operation": 5}, "request.operation must be a string, got int", id="operation-type"),
        pytest.param({"dryRun": "yes"}, "request.dryRun must be true or false, got 'yes'", id="dry-run"),
        pytest.param({"namespace": []}, "request.namespace must be a string, got list", id="namespace"),
        pytest.param(
            {"object": {"spec": _nested(review.MAX_OBJECT_DEPTH)}},
            f"request.object is nested deeper than {review.MAX_OBJECT_DEPTH} levels",
            id="too-deep",
        ),
    ],
)
def test_a_request_that_can_be_answered_but_not_processed_carries_its_problem(
    fields: dict[str, object], problem: str
) -> None:
    assert review.parse_review(_body(**fields)).problem == problem


@pytest.mark.parametrize(
    ("fields", "is_pod_create"),
    [
        pytest.param({}, True, id="pod-create"),
        pytest.param({"operation": "UPDATE"}, False, id="update"),
        pytest.param(
            {"kind": {"group": "apps", "version": "v1", "kind": "Deployment"}}, False, id="deployment"
        ),
        pytest.param(
            {"kind": {"group": "example.com", "version": "v1", "kind": "Pod"}}, False, id="other-group"
        ),
    ],
)
def test_only_a_core_pod_creation_is_mutated(fields: dict[str, object], is_pod_create: bool) -> None:
    assert review.parse_review(_body(**fields)).is_pod_create is is_pod_create


def test_an_admission_with_a_patch_is_base64_jsonpatch_echoing_version_and_uid() -> None:
    request = review.parse_review(_body("admission.k8s.io/v1beta1"))
    ops = [{"op": "add", "path": "/spec/schedulerName", "value": "hami-scheduler"}]
    reply = review.allow(request, ops, ["careful"])
    assert reply == {
        "apiVersion": "admission.k8s.io/v1beta1",
        "kind": "AdmissionReview",
        "response": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "allowed": True,
            "patchType": "JSONPatch",
            "patch": reply["response"]["patch"],
            "warnings": ["careful"],
        },
    }
    assert json.loads(base64.b64decode(reply["response"]["patch"])) == ops
    assert json.loads(review.encode(reply)) == reply


def test_an_admission_without_changes_has_no_patch() -> None:
    reply = review.allow(review.parse_review(_body()))
    assert reply["response"] == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}


def test_a_denial_carries_code_reason_and_message() -> None:
    reply = review.deny(review.parse_review(_body()), 403, "container debug is privileged")
    assert reply["response"] == {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "allowed": False,
        "status": {
            "metadata": {},
            "status": "Failure",
            "message": "container debug is privileged",
            "reason": "Forbidden",
            "code": 403,
        },
    }


def test_an_http_error_body_is_a_kubernetes_status() -> None:
    assert json.loads(review.bad_request("nope")) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "nope",
        "reason": "BadRequest",
        "code": 400,
    }


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        pytest.param("plain words", "plain words", id="plain"),
        pytest.param("container gpu\u00e9\n", "container gpu\\xe9\\n", id="non-ascii-and-newline"),
        pytest.param("x" * 300, "x" * 253 + "...", id="too-long"),
    ],
)
def test_warnings_are_made_safe_for_an_http_header(text: str, safe: str) -> None:
    assert review.safe_warning(text) == safe
