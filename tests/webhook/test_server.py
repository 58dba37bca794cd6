"""AdmissionHandler replies, the standalone HTTPS server, and a fuzz run of 1,000 reviews over HTTPS."""

from __future__ import annotations

import base64
import copy
import http.client
import json
import random
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import jsonpatch
import pytest
from hami_backend_mock import resources
from hami_backend_mock.backend import MockBackend
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from hami_core import codec
from hami_core.scheduler.server import ExtenderServer
from hami_core.testing import make_container
from hami_core.testing import make_pod
from hami_core.webhook import certs
from hami_core.webhook.certs import CertificateBundle
from hami_core.webhook.certs import ServingIdentity
from hami_core.webhook.mutating import WebhookSettings
from hami_core.webhook.server import AdmissionHandler
from hami_core.webhook.tls import ReloadingCertificate
from tests.webhook.fakes import webhook_server
from tests.webhook.test_mutating import BrokenMock

GPU = resources.RESOURCE_NAMES.count
MEM = resources.RESOURCE_NAMES.memory
PCT = resources.RESOURCE_NAMES.memory_percentage
CORES = resources.RESOURCE_NAMES.cores
V1 = "admission.k8s.io/v1"
IDENTITY = ServingIdentity.for_service("hami-scheduler", "kube-system", ip_addresses=["127.0.0.1"])


def _review(
    pod: object, *, uid: str = "u-1", api_version: str = V1, operation: str = "CREATE"
) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": operation,
            "namespace": "default",
            "object": pod,
            "dryRun": False,
        },
    }


def _body(review: object) -> bytes:
    return json.dumps(review).encode()


@pytest.fixture(scope="module")
def handler() -> AdmissionHandler:
    return AdmissionHandler([MockBackend()], WebhookSettings())


def _reply(handler: AdmissionHandler, body: bytes) -> tuple[int, dict[str, Any]]:
    status, data = handler.handle(body)
    return status, json.loads(data)


def test_a_device_pod_is_answered_with_a_patch(handler: AdmissionHandler) -> None:
    pod = make_pod(containers=[make_container(limits={MEM: 1024})], scheduler_name="default-scheduler")
    status, reply = _reply(handler, _body(_review(pod, api_version="admission.k8s.io/v1beta1")))
    assert status == 200
    assert reply["apiVersion"] == "admission.k8s.io/v1beta1"
    response = reply["response"]
    assert (response["uid"], response["allowed"], response["patchType"]) == ("u-1", True, "JSONPatch")
    patched = jsonpatch.apply_patch(pod, json.loads(base64.b64decode(response["patch"])))
    assert patched["spec"]["schedulerName"] == "hami-scheduler"
    assert patched["spec"]["containers"][0]["resources"]["limits"][GPU] == "1"


def test_a_malformed_request_is_denied_in_the_review(handler: AdmissionHandler) -> None:
    pod = make_pod(containers=[make_container("train", limits={GPU: -1})])
    status, reply = _reply(handler, _body(_review(pod)))
    assert status == 200
    assert reply["response"]["allowed"] is False
    assert reply["response"]["status"]["code"] == 400
    assert (
        reply["response"]["status"]["message"]
        == "container train: mock.hami.io/gpu must not be negative, got -1"
    )


@pytest.mark.parametrize(
    "review",
    [
        pytest.param(_review({"spec": {}}, operation="UPDATE"), id="update"),
        pytest.param(_review({"spec": {}}, operation="DELETE"), id="delete"),
        pytest.param(
            {
                **_review(None),
                "request": {**_review(None)["request"], "kind": {"group": "apps", "kind": "Deployment"}},
            },
            id="not-a-pod",
        ),
    ],
)
def test_anything_but_a_pod_creation_is_allowed_untouched(
    handler: AdmissionHandler, review: dict[str, Any]
) -> None:
    status, reply = _reply(handler, _body(review))
    assert (status, reply["response"]) == (200, {"uid": "u-1", "allowed": True})


def test_a_request_with_a_problem_is_denied_with_it(handler: AdmissionHandler) -> None:
    review = _review({})
    review["request"]["operation"] = None
    status, reply = _reply(handler, _body(review))
    assert status == 200
    assert reply["response"]["status"]["code"] == 400
    assert reply["response"]["status"]["message"] == "request.operation is missing"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"<xml/>", id="not-json"),
        pytest.param(b'{"kind": "AdmissionReview", "apiVersion": "v1"}', id="wrong-version"),
        pytest.param(_body({"kind": "AdmissionReview", "apiVersion": V1, "request": {}}), id="no-uid"),
    ],
)
def test_a_body_that_is_not_an_admissionreview_is_http_400(handler: AdmissionHandler, body: bytes) -> None:
    status, reply = _reply(handler, body)
    assert status == 400
    assert (reply["kind"], reply["code"], reply["reason"]) == ("Status", 400, "BadRequest")
    assert reply["message"]


def test_a_body_above_the_limit_is_http_413() -> None:
    small = AdmissionHandler([MockBackend()], WebhookSettings(), max_body=100)
    status, reply = _reply(small, b" " * 101)
    assert (status, reply["code"]) == (413, 413)


def test_a_fault_inside_hami_refuses_the_pod_with_500_and_the_server_keeps_answering() -> None:
    broken = AdmissionHandler([BrokenMock()], WebhookSettings())
    pod = make_pod(containers=[make_container(limits={GPU: 1})])
    status, reply = _reply(broken, _body(_review(pod)))
    assert status == 200
    assert reply["response"]["allowed"] is False
    assert reply["response"]["status"]["code"] == 500


@pytest.mark.parametrize(
    ("depth", "status", "code"),
    [
        pytest.param(150, 200, 400, id="deeper-than-a-pod-is"),
        pytest.param(700, 200, 400, id="near-pythons-recursion-limit"),
        pytest.param(5000, 400, 400, id="beyond-what-json-reads"),
    ],
)
def test_a_deeply_nested_pod_is_refused_not_failed_on(
    handler: AdmissionHandler, depth: int, status: int, code: int
) -> None:
    pod = '{"spec": {"containers": [{"name": "m"}], "x": ' + "[" * depth + "]" * depth + "}}"
    envelope = _body(_review("POD")).replace(b'"POD"', pod.encode())
    got, reply = _reply(handler, envelope)
    assert got == status
    assert (reply["response"]["status"]["code"] if status == 200 else reply["code"]) == code


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(pod=JSON)
def test_any_json_as_the_pod_gets_a_review_answer(pod: object) -> None:
    status, data = AdmissionHandler([MockBackend()], WebhookSettings()).handle(_body(_review(pod)))
    assert status == 200
    response = json.loads(data)["response"]
    assert response["uid"] == "u-1"
    assert response["allowed"] or response["status"]["code"] in (400, 403)


# ---------------------------------------------------------------------------------- over HTTPS


@pytest.fixture(scope="module")
def bundle() -> CertificateBundle:
    return certs.create_bundle(IDENTITY, certs.utc_now())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, bundle: CertificateBundle) -> Iterator[ExtenderServer]:
    directory: Path = tmp_path_factory.mktemp("tls")
    (directory / "tls.crt").write_bytes(bundle.serving.cert_pem)
    (directory / "tls.key").write_bytes(bundle.serving.key_pem)
    certificate = ReloadingCertificate(directory / "tls.crt", directory / "tls.key")
    handler = AdmissionHandler([MockBackend()], WebhookSettings())
    with webhook_server(handler, certificate, request_timeout=1.0) as running:
        yield running


@attrs.define
class Client:
    """One keep-alive HTTPS connection to the webhook server, verifying its certificate."""

    server: ExtenderServer
    bundle: CertificateBundle
    connection: http.client.HTTPSConnection | None = None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        if self.connection is None:
            context = ssl.create_default_context(cadata=self.bundle.ca.cert_pem.decode())
            host, port = self.server.url.removeprefix("https://").split(":")
            self.connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
        self.connection.request(method, path, body=body, headers=headers or {})
        response = self.connection.getresponse()
        data = response.read()
        if response.will_close:
            self.close()
        return response.status, data

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


@pytest.fixture
def client(server: ExtenderServer, bundle: CertificateBundle) -> Iterator[Client]:
    connection = Client(server, bundle)
    yield connection
    connection.close()


def test_the_server_answers_reviews_at_webhook_and_health_at_healthz(client: Client) -> None:
    pod = make_pod(containers=[make_container(limits={GPU: 1})])
    status, data = client.request(
        "POST", "/webhook", _body(_review(pod)), {"Content-Type": "application/json"}
    )
    assert status == 200
    assert json.loads(data)["response"]["allowed"] is True
    assert client.request("GET", "/healthz") == (200, b"ok")
    assert client.request("GET", "/webhook")[0] == 404
    assert client.request("POST", "/other", b"{}")[0] == 404


JSON = b"Content-Type: application/json\r\n"


def _raw_exchange(server: ExtenderServer, bundle: CertificateBundle, head: bytes) -> bytes:
    """Send ``head`` as it is over TLS and read the reply until the server closes."""
    host, port = server.url.removeprefix("https://").split(":")
    context = ssl.create_default_context(cadata=bundle.ca.cert_pem.decode())
    with context.wrap_socket(
        socket.create_connection((host, int(port)), timeout=5), server_hostname=host
    ) as tls:
        tls.sendall(head)
        reply = b""
        while chunk := tls.recv(65536):
            reply += chunk
    return reply


@pytest.mark.parametrize(
    ("head", "status"),
    [
        pytest.param(b"POST /webhook HTTP/1.1\r\n" + JSON + b"Host: x\r\n\r\n", b"411", id="no-length"),
        pytest.param(
            b"POST /webhook HTTP/1.1\r\n" + JSON + b"Content-Length: -5\r\n\r\n", b"411", id="negative-length"
        ),
        pytest.param(
            b"POST /webhook HTTP/1.1\r\n" + JSON + b"Content-Length: \xb2\r\n\r\n",
            b"411",
            id="non-ascii-length",
        ),
        pytest.param(
            b"POST /webhook HTTP/1.1\r\n" + JSON + b"Transfer-Encoding: chunked\r\n\r\n", b"411", id="chunked"
        ),
        pytest.param(
            b"POST /webhook HTTP/1.1\r\n" + JSON + b"Content-Length: 1099511627776\r\n\r\n",
            b"413",
            id="too-long",
        ),
        pytest.param(
            b"POST /webhook HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
            b"415",
            id="not-json",
        ),
        pytest.param(b"POST /webhook HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", b"415", id="no-content-type"),
        pytest.param(b"POST /other HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", b"404", id="other-path"),
    ],
)
def test_a_post_refused_before_its_body_is_read_closes_the_connection(
    server: ExtenderServer, bundle: CertificateBundle, head: bytes, status: bytes
) -> None:
    reply = _raw_exchange(server, bundle, head)
    assert reply.startswith(b"HTTP/1.1 " + status)
    assert b"Connection: close" in reply


def test_an_empty_body_is_not_an_admissionreview(client: Client) -> None:
    assert client.request("POST", "/webhook", b"", {"Content-Type": "application/json"})[0] == 400


def test_a_silent_or_non_tls_client_neither_blocks_nor_stops_the_server(
    server: ExtenderServer, client: Client
) -> None:
    host, port = server.url.removeprefix("https://").split(":")
    with (
        socket.create_connection((host, int(port))) as silent,
        socket.create_connection((host, int(port))) as plain,
    ):
        plain.sendall(b"POST /webhook HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        started = time.monotonic()
        assert client.request("GET", "/healthz") == (200, b"ok")
        assert time.monotonic() - started < 1.0
        silent.settimeout(5)
        assert silent.recv(1) == b"", "the server closes a connection that stays silent past its timeout"
    # The client's keep-alive connection idled about as long as the silent one, so the server may
    # have closed it by the same rule; a new connection shows the server itself still serves.
    client.close()
    assert client.request("GET", "/healthz") == (200, b"ok")


# ---------------------------------------------------------------------------------- fuzzing

_VALID = ["1", "2", "4", 1]
_INVALID = ["-1", "1.5", "abc", "", "1e400", "-5Gi", [], {}, True]


@attrs.frozen
class Case:
    """A body and what the answer must be; ``expect`` is None when only the invariants apply."""

    body: bytes
    expect: str | None


def _random_pod(rng: random.Random) -> tuple[dict[str, Any], str]:
    """A pod and the decision it must get: ``patch``, ``untouched`` or ``deny``."""
    containers = []
    outcome = "untouched"
    for index in range(rng.randint(1, 3)):
        limits: dict[str, object] = {}
        kind = rng.choice(["plain", "count", "memory", "cores", "invalid", "percentage"])
        if kind == "plain":
            limits = {"cpu": rng.choice(["1", "500m"])}
        elif kind == "count":
            limits = {GPU: rng.choice(_VALID)}
        elif kind == "memory":
            limits = {MEM: str(rng.randint(1, 1 << 20))}
        elif kind == "cores":
            limits = {GPU: "1", CORES: str(rng.randint(0, 100))}
        elif kind == "percentage":
            limits = {GPU: "1", PCT: str(rng.randint(101, 1000))}
        else:
            limits = {rng.choice([GPU, MEM, CORES]): rng.choice(_INVALID)}
        containers.append({"name": f"c{index}", "image": "busybox", "resources": {"limits": limits}})
        if kind in ("invalid", "percentage"):
            outcome = "deny"
        elif kind != "plain" and outcome == "untouched":
            outcome = "patch"
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p{rng.randint(0, 99)}", "namespace": "default"},
        "spec": {"containers": containers, "schedulerName": "default-scheduler"},
    }
    roll = rng.random()
    if roll < 0.05:
        containers[0]["securityContext"] = {"privileged": True}
        outcome = "deny" if outcome == "patch" else outcome
    elif roll < 0.1:
        pod["spec"]["nodeName"] = "node-1"
        outcome = "deny" if outcome == "patch" else outcome
    elif roll < 0.2:
        pod["metadata"]["labels"] = {codec.WEBHOOK_LABEL: codec.WEBHOOK_IGNORE}
        outcome = "untouched"
    return pod, outcome


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """``value`` with one random change somewhere inside it."""
    if isinstance(value, dict) and value and depth < 6 and rng.random() < 0.8:
        key = rng.choice(list(value))
        changed = dict(value)
        roll = rng.random()
        if roll < 0.2:
            del changed[key]
        else:
            changed[key] = _mutate(rng, value[key], depth + 1)
        return changed
    if isinstance(value, list) and value and depth < 6 and rng.random() < 0.8:
        index = rng.randrange(len(value))
        changed_list = list(value)
        changed_list[index] = _mutate(rng, value[index], depth + 1)
        return changed_list
    return rng.choice(
        [
            None,
            True,
            0,
            -1,
            2**70,
            1.5,
            "",
            "x" * rng.randint(1, 50),
            "\u2603\ud7ff",
            [],
            {},
            [1, "a"],
            {"a": None},
        ]
    )


def _cases(count: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for index in range(count):
        pod, outcome = _random_pod(rng)
        review = _review(pod, uid=f"uid-{index}", api_version=rng.choice([V1, "admission.k8s.io/v1beta1"]))
        roll = rng.random()
        if roll < 0.4:
            cases.append(Case(_body(review), outcome))
        elif roll < 0.65:
            review["request"]["object"] = _mutate(rng, pod)
            cases.append(Case(_body(review), None))
        elif roll < 0.85:
            cases.append(Case(_body(_mutate(rng, review)), None))
        else:
            data = bytearray(_body(review))
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            cases.append(Case(bytes(data[: rng.randint(0, len(data))]), None))
    return cases


def _is_review(body: bytes) -> dict[str, Any] | None:
    """The parsed review when ``body`` is an answerable AdmissionReview (the spec's rule, re-stated)."""
    try:
        review = json.loads(body)
    except ValueError:
        return None
    if not isinstance(review, dict) or review.get("kind") != "AdmissionReview":
        return None
    if review.get("apiVersion") not in (V1, "admission.k8s.io/v1beta1"):
        return None
    request = review.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str) or not request["uid"]:
        return None
    return review


def _check(case: Case, status: int, data: bytes) -> None:
    review = _is_review(case.body)
    reply = json.loads(data)
    if review is None:
        assert status == 400, case.body
        assert (reply["kind"], reply["code"]) == ("Status", 400)
        assert reply["message"]
        return
    assert status == 200, case.body
    assert (reply["apiVersion"], reply["kind"]) == (review["apiVersion"], "AdmissionReview")
    response = reply["response"]
    assert response["uid"] == review["request"]["uid"]
    if not response["allowed"]:
        assert response["status"]["code"] in (400, 403), response
        assert response["status"]["message"]
        assert case.expect in (None, "deny"), (case.body, response)
        return
    assert case.expect != "deny", (case.body, response)
    if "patch" not in response:
        assert case.expect in (None, "untouched"), (case.body, response)
        return
    assert case.expect in (None, "patch"), (case.body, response)
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    patched = jsonpatch.apply_patch(copy.deepcopy(review["request"]["object"]), ops)
    if case.expect == "patch":
        assert patched["spec"]["schedulerName"] == "hami-scheduler"


def test_a_thousand_random_and_mutated_reviews_each_get_a_correct_answer(client: Client) -> None:
    cases = _cases(1000, seed=20250101)
    assert sum(case.expect is not None for case in cases) > 300
    for case in cases:
        status, data = client.request("POST", "/webhook", case.body, {"Content-Type": "application/json"})
        _check(case, status, data)
    assert client.request("GET", "/healthz") == (200, b"ok")
