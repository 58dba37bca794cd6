"""What mutual TLS costs the extender (not a test: it prints figures).

Serves the scheduler's HTTPS server around a verb that answers at once, first with a serving
certificate only, then also requiring a client certificate (the chart's set-up), and times
``/bind`` calls on one keep-alive connection (as kube-scheduler sends them) and new connections
(handshake included). Wall-clock figures, so a loaded machine inflates both alike.

Usage: ``python bench/extender_tls.py [--calls 300] [--connections 30]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from hami_core.kube.objects import ExtenderBindingResult
from hami_core.kube.objects import ExtenderFilterResult
from hami_core.kube.objects import HostPriority
from hami_core.kube.objects import Node
from hami_core.pods import PodView
from hami_core.scheduler.server import ExtenderServer
from hami_core.webhook import certs
from hami_core.webhook.tls import ReloadingCertificate

BIND = json.dumps({"PodName": "p", "PodNamespace": "default", "PodUID": "u", "Node": "a"}).encode()
HEADERS = {"Content-Type": "application/json"}


class Instant:
    """Extender verbs that cost nothing, so the figures are the transport's."""

    def readiness(self) -> tuple[bool, str]:
        return True, "ok"

    def filter(
        self, pod: PodView, node_names: Sequence[str] | None, nodes: list[Node] | None
    ) -> ExtenderFilterResult:
        return {"NodeNames": list(node_names or []), "FailedNodes": {}, "Error": ""}

    def prioritize(self, pod: PodView, node_names: Sequence[str]) -> list[HostPriority]:
        return []

    def bind(self, namespace: str, name: str, uid: str, node: str) -> ExtenderBindingResult:
        return {"Error": ""}


def _ms(seconds: list[float], quantile: float) -> float:
    return sorted(seconds)[min(len(seconds) - 1, int(len(seconds) * quantile))] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--connections", type=int, default=30)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hami-tls-bench-") as folder:
        _run(Path(folder), options.calls, options.connections)


def _run(folder: Path, calls_made: int, connections: int) -> None:
    now = certs.utc_now()
    serving = certs.create_bundle(
        certs.ServingIdentity(dns_names=("localhost",), ip_addresses=("127.0.0.1",)), now
    )
    client_ca = certs.create_ca(now)
    client = certs.issue_client_certificate(client_ca, "kube-scheduler", now)
    for name, data in {
        "tls.crt": serving.serving.cert_pem,
        "tls.key": serving.serving.key_pem,
        "client-ca.crt": client_ca.cert_pem,
        "client.crt": client.cert_pem,
        "client.key": client.key_pem,
    }.items():
        (folder / name).write_bytes(data)
    for mutual in (False, True):
        tls = ReloadingCertificate(
            folder / "tls.crt", folder / "tls.key", folder / "client-ca.crt" if mutual else None
        )
        server = ExtenderServer(Instant(), tls=tls).start()
        context = ssl.create_default_context(cadata=serving.ca.cert_pem.decode())
        if mutual:
            context.load_cert_chain(folder / "client.crt", folder / "client.key")
        calls: list[float] = []
        connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context)
        for _ in range(calls_made):
            started = time.perf_counter()
            connection.request("POST", "/bind", body=BIND, headers=HEADERS)
            connection.getresponse().read()
            calls.append(time.perf_counter() - started)
        connection.close()
        handshakes: list[float] = []
        for _ in range(connections):
            fresh = http.client.HTTPSConnection("127.0.0.1", server.port, context=context)
            started = time.perf_counter()
            fresh.request("POST", "/bind", body=BIND, headers=HEADERS)
            fresh.getresponse().read()
            handshakes.append(time.perf_counter() - started)
            fresh.close()
        server.stop()
        print(
            f"{'mutual TLS' if mutual else 'server TLS'}: keep-alive /bind p50 {_ms(calls, 0.5):.2f} ms, "
            f"p99 {_ms(calls, 0.99):.2f} ms; new connection p50 {statistics.median(handshakes) * 1e3:.2f} ms"
        )


if __name__ == "__main__":
    main()
