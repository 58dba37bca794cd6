"""Fuzzing the scheduler's HTTP edge: whatever the body, each extender verb and the webhook answer well-formed.

The server is the real one around the real extender (filter, score, bind on a FakeKube with one mock
node) and the real admission handler. Bodies are random JSON, a well-formed request with one value
anywhere in it replaced by a value of another type, deep nesting and huge strings. A reply is
well-formed when it is the verb's result (HTTP 200) or a refusal with a message (HTTP 400); a 500
would mean a handler raised, so it fails the test too.
"""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import event
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from hami_core.config import parse_config
from hami_core.scheduler.admission_view import AdmissionView
from hami_core.scheduler.app import SchedulerApp
from hami_core.scheduler.app import build_scheduler
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_node
from hami_core.testing.builders import make_pod
from hami_core.testing.fake_kube import FakeKube
from hami_core.webhook.mutating import WebhookSettings
from hami_core.webhook.server import AdmissionHandler
from tests.scheduler.fakes import MOCK_GPU
from tests.scheduler.fakes import MOCK_MEM
from tests.scheduler.fakes import mock_backend

CONFIG = {
    "version": "v1",
    "backends": {"mock": {"enabled": True, "devices": [{"count": 2, "memory_mib": 8000}]}},
}
MOCK = mock_backend()
FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@pytest.fixture(scope="module")
def app() -> Iterator[SchedulerApp]:
    kube = FakeKube()
    devices = MOCK.encode_node_devices(MOCK.discover("node-0"))
    kube.create_node(
        make_node("node-0", annotations={MOCK.keys.register: devices}, allocatable={MOCK_GPU: 10})
    )
    config = parse_config(CONFIG, "fuzz")

    def admission(backends: Any, view: AdmissionView) -> AdmissionHandler:
        return AdmissionHandler(backends, WebhookSettings.from_config(config.scheduler), view, quota=view)

    running = build_scheduler(
        config, kube, bind="127.0.0.1:0", metrics_bind="", resync=3600, admission=admission
    ).start(sync_timeout=5)
    yield running
    running.stop()


def post(app: SchedulerApp, path: str, body: bytes) -> tuple[int, Any]:
    assert app.server is not None
    connection = http.client.HTTPConnection("127.0.0.1", app.server.port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        event(f"HTTP {response.status}")  # --hypothesis-show-statistics: how many bodies got past the edge
        return response.status, json.loads(response.read())
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------- bodies

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
huge_strings = st.integers(min_value=100_000, max_value=2_000_000).map(lambda n: "9" * n)
replacements = json_values | huge_strings


def _pod() -> dict[str, Any]:
    pod = make_pod("fuzzed", containers=[make_container(limits={MOCK_GPU: 1, MOCK_MEM: 1000})])
    pod["metadata"]["annotations"] = {"note": "x"}
    return dict(pod)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``value`` a replacement can go (the root excluded)."""
    found = []
    children = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, child in children:
        found.append((*prefix, key))
        found += _paths(child, (*prefix, key))
    return found


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    copy = json.loads(json.dumps(value))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return copy


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any]) -> bytes:
    """``valid`` with one value somewhere in it replaced by a random one (often of another type)."""
    path = draw(st.sampled_from(_paths(valid)))
    return json.dumps(_replaced(valid, path, draw(replacements))).encode()


@st.composite
def deep(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(min_value=1, max_value=5_000))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    return b'{"Pod":' + opener * depth + b"1" + closer * depth + b"}"


@st.composite
def bodies(draw: st.DrawFn, valid: dict[str, Any]) -> bytes:
    """Mostly ``valid`` mutated in one place (what gets past the edge into the core), else anything."""
    kind = draw(st.integers(min_value=0, max_value=9))
    if kind < 6:
        return draw(mutated(valid))
    if kind < 8:
        return json.dumps(draw(json_values)).encode()
    if kind < 9:
        return draw(deep())
    return draw(st.binary(max_size=200))


EXTENDER_ARGS = {"Pod": _pod(), "Nodes": None, "NodeNames": ["node-0", "node-1"]}
BIND_ARGS = {"PodName": "fuzzed", "PodNamespace": "default", "PodUID": "u-1", "Node": "node-0"}
REVIEW = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "request": {
        "uid": "r-1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "operation": "CREATE",
        "namespace": "default",
        "object": _pod(),
    },
}


# ---------------------------------------------------------------------------------------- checks


def _refusal(status: int, reply: Any) -> bool:
    return (
        status == 400 and isinstance(reply, dict) and isinstance(reply.get("Error"), str) and reply["Error"]
    )


@given(body=bodies(EXTENDER_ARGS))
@FUZZ
def test_filter_answers_every_body(app: SchedulerApp, body: bytes) -> None:
    status, reply = post(app, "/filter", body)
    if _refusal(status, reply):
        return
    assert status == 200, reply
    assert set(reply) >= {"NodeNames", "FailedNodes", "Error"}
    assert isinstance(reply["Error"], str)


@given(body=bodies(EXTENDER_ARGS))
@FUZZ
def test_prioritize_answers_every_body(app: SchedulerApp, body: bytes) -> None:
    status, reply = post(app, "/prioritize", body)
    if _refusal(status, reply):
        return
    assert status == 200, reply
    assert isinstance(reply, list)
    assert all(isinstance(item["Host"], str) and isinstance(item["Score"], int) for item in reply)


@given(body=bodies(BIND_ARGS))
@FUZZ
def test_bind_answers_every_body(app: SchedulerApp, body: bytes) -> None:
    status, reply = post(app, "/bind", body)
    if _refusal(status, reply):
        return
    assert status == 200, reply
    assert isinstance(reply, dict)
    assert isinstance(reply["Error"], str)
    assert reply["Error"], "a pod the filter never placed is not bound"


@given(body=bodies(REVIEW))
@FUZZ
def test_the_webhook_answers_every_body(app: SchedulerApp, body: bytes) -> None:
    status, reply = post(app, "/webhook", body)
    if status == 400:
        assert reply["kind"] == "Status"
        assert reply["message"]
        return
    assert status == 200, reply
    response = reply["response"]
    assert response["uid"]
    assert isinstance(response["allowed"], bool)
    if not response["allowed"]:
        assert response["status"]["message"]
    if "patch" in response:
        assert isinstance(json.loads(base64.b64decode(response["patch"])), list)
