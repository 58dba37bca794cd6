"""The monitor process's parts: the bind address, the registry, the kubelet pod source."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from http.server import HTTPServer
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from hami_core.errors import HamiError
from hami_core.monitor.app import registry_for
from hami_core.monitor.app import split_bind
from hami_core.monitor.service import Monitor
from hami_core.monitor.sources import FirstAvailable
from hami_core.monitor.sources import KubeletPods

PODS = {"kind": "PodList", "items": [{"metadata": {"uid": "u1", "name": "a", "namespace": "ns"}}]}


@pytest.fixture
def kubelet(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A stand-in kubelet serving ``/pods``; records the Authorization headers it got."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            body = json.dumps(PODS if self.path == "/pods" else {"items": "no"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()
    thread.join()


def test_split_bind() -> None:
    assert split_bind(":9394") == ("", 9394)
    assert split_bind("127.0.0.1:1234") == ("127.0.0.1", 1234)
    assert split_bind("[::1]:80") == ("::1", 80)
    with pytest.raises(ValueError, match="invalid literal"):
        split_bind("host:port")


def test_registry_has_build_info(tmp_path: Path) -> None:
    text = generate_latest(registry_for(Monitor(tmp_path / "containers", list), "n1")).decode()
    assert "hami_build_info{" in text
    assert 'version="' in text


def test_kubelet_source_sends_the_token(kubelet: tuple[str, list[str]], tmp_path: Path) -> None:
    url, seen = kubelet
    token = tmp_path / "token"
    token.write_text("secret\n")
    assert KubeletPods(url, token_path=token)() == PODS["items"]
    assert seen == ["Bearer secret"]
    assert KubeletPods(url, token_path=tmp_path / "missing")() == PODS["items"]
    assert seen[-1] == ""


def test_first_available_falls_back_and_names_every_failure(kubelet: tuple[str, list[str]]) -> None:
    url, _ = kubelet
    down = KubeletPods("http://127.0.0.1:1", timeout=1.0)
    assert FirstAvailable(down, KubeletPods(url))() == PODS["items"]
    with pytest.raises(
        HamiError, match=r"no pod source answered: KubeletPods: .*; KubeletPods: .*not a pod list"
    ):
        FirstAvailable(down, KubeletPods(url + "/x"))()
