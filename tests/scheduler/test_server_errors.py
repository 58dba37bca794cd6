"""Every request gets a reply: a fault in a handler, deep nesting and a body that is not JSON are all answered."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from collections.abc import Sequence

import pytest

from hami_core.kube.objects import ExtenderBindingResult
from hami_core.kube.objects import ExtenderFilterResult
from hami_core.kube.objects import HostPriority
from hami_core.kube.objects import Node
from hami_core.pods import PodView
from hami_core.scheduler.server import ExtenderServer
from hami_core.serving import MAX_JSON_DEPTH
from hami_core.serving import is_json
from hami_core.serving import nested_deeper_than
from tests.scheduler.test_server import POD
from tests.scheduler.test_server import call


class Broken:
    """Fails inside every verb, as a bug in the core would."""

    def readiness(self) -> tuple[bool, str]:
        raise RuntimeError("readiness exploded")

    def filter(
        self, pod: PodView, node_names: Sequence[str] | None, nodes: list[Node] | None
    ) -> ExtenderFilterResult:
        raise TypeError("filter exploded")

    def prioritize(self, pod: PodView, node_names: Sequence[str]) -> list[HostPriority]:
        raise AttributeError("prioritize exploded")

    def bind(self, namespace: str, name: str, uid: str, node: str) -> ExtenderBindingResult:
        raise KeyError("bind exploded")


class BrokenAdmission:
    def handle(self, body: bytes) -> tuple[int, bytes]:
        raise ValueError("webhook exploded")


@pytest.fixture
def broken() -> Iterator[ExtenderServer]:
    running = ExtenderServer(Broken(), admission=BrokenAdmission()).start()
    yield running
    running.stop()


EXTENDER_ARGS = json.dumps({"Pod": POD, "NodeNames": ["a"]}).encode()
BIND = json.dumps({"PodName": "p", "PodNamespace": "default", "PodUID": "u", "Node": "a"}).encode()


@pytest.mark.parametrize(
    ("path", "body", "fault"),
    [
        ("/filter", EXTENDER_ARGS, "TypeError: filter exploded"),
        ("/prioritize", EXTENDER_ARGS, "AttributeError: prioritize exploded"),
        ("/bind", BIND, "KeyError: 'bind exploded'"),
        ("/webhook", b"{}", "ValueError: webhook exploded"),
        ("/readyz", None, "RuntimeError: readiness exploded"),
    ],
)
def test_a_fault_in_a_handler_is_a_500_with_an_error_and_a_logged_traceback(
    broken: ExtenderServer, caplog: pytest.LogCaptureFixture, path: str, body: bytes | None, fault: str
) -> None:
    with caplog.at_level(logging.ERROR, logger="hami_core.scheduler.server"):
        status, reply = call(broken, "GET" if body is None else "POST", path, body)
    assert status == 500
    assert fault in json.loads(reply)["Error"]
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert fault.split(":")[0] == record.exc_info[0].__name__  # type: ignore[union-attr]
    # The connection still serves the next request.
    assert call(broken, "GET", "/healthz") == (200, b"ok")


def _nested(depth: int) -> bytes:
    return b'{"Pod":' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, 1_000, 100_000])
def test_deep_nesting_is_a_400_not_a_recursion_error(broken: ExtenderServer, depth: int) -> None:
    status, reply = call(broken, "POST", "/filter", _nested(depth))
    assert status == 400
    assert "nested deeper" in json.loads(reply)["Error"] or "not JSON" in json.loads(reply)["Error"]


def test_nesting_is_measured_without_recursion() -> None:
    deep: object = []
    for _ in range(100_000):
        deep = [deep]
    assert nested_deeper_than(deep, 64)
    assert not nested_deeper_than({"a": [{"b": 1}]}, 3)
    assert nested_deeper_than({"a": [{"b": []}]}, 3)


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("text/plain", False),
        ("application/json-patch+json", False),
        (None, False),
    ],
)
def test_only_json_bodies_are_read(content_type: str | None, accepted: bool) -> None:
    assert is_json(content_type) is accepted


def test_a_body_that_is_not_json_by_its_content_type_is_415(broken: ExtenderServer) -> None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", broken.port, timeout=5)
    try:
        connection.request("POST", "/filter", body=EXTENDER_ARGS, headers={"Content-Type": "text/yaml"})
        response = connection.getresponse()
        assert response.status == 415
        assert "application/json" in json.loads(response.read())["Error"]
    finally:
        connection.close()
