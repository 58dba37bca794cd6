"""Test doubles for the webhook: what the scheduler's cache would tell it about registered devices, and
the server that serves ``/webhook`` in production, with no extender behind it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any
from typing import Never

import attrs

from hami_core.kube.objects import Node
from hami_core.pods import PodView
from hami_core.scheduler.server import AdmissionHandler
from hami_core.scheduler.server import ExtenderServer
from hami_core.scheduler.server import TlsContextProvider


@attrs.frozen
class FixedCapacity:
    """A fixed view of registered devices (the scheduler cache implements ``Capacity`` for real).

    Args:
        memory: MiB of the largest registered device; ``None`` means unknown.
        count: most devices on one node; ``None`` means unknown.
        backend: the backend these figures are for; others are unknown.
    """

    memory: int | None
    count: int | None
    backend: str = "mock"

    def largest_device_memory(self, backend: str) -> int | None:
        return self.memory if backend == self.backend else None

    def largest_node_device_count(self, backend: str) -> int | None:
        return self.count if backend == self.backend else None


class WebhookOnly:
    """The extender side of a server that tests mount only ``/webhook`` on: ready, and no verbs."""

    def readiness(self) -> tuple[bool, str]:
        return True, "ok"

    def filter(self, pod: PodView, node_names: Sequence[str] | None, nodes: list[Node] | None) -> Never:
        raise AssertionError("no extender behind this server")

    def prioritize(self, pod: PodView, node_names: Sequence[str]) -> Never:
        raise AssertionError("no extender behind this server")

    def bind(self, namespace: str, name: str, uid: str, node: str) -> Never:
        raise AssertionError("no extender behind this server")


@contextlib.contextmanager
def webhook_server(
    admission: AdmissionHandler, tls: TlsContextProvider, **options: Any
) -> Iterator[ExtenderServer]:
    """The HTTPS server production serves ``/webhook`` with (the scheduler's), around ``admission``."""
    server = ExtenderServer(WebhookOnly(), admission=admission, tls=tls, **options).start()
    try:
        yield server
    finally:
        server.stop()
