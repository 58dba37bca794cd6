"""A gRPC server on a unix socket with its own thread pool: what the kubelet and device plugins speak.

Both sides of the kubelet device-plugin API (the plugin's ``DevicePlugin`` service and the
simulated kubelet's ``Registration`` service) serve on unix sockets and must stop cleanly: every
call cancelled, the pool's threads joined. This module holds that lifecycle once.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc


class UnixGrpcServer:
    """Serves the services ``add_services`` adds on ``unix://<socket_path>``.

    Args:
        socket_path: the socket file to listen on.
        add_services: adds the servicers to a new ``grpc.Server`` (``add_XServicer_to_server``).
        workers: threads answering calls; ListAndWatch streams hold one each while open.
        name: thread name prefix.
    """

    def __init__(
        self,
        socket_path: Path,
        add_services: Callable[[grpc.Server], None],
        *,
        workers: int = 4,
        name: str = "grpc",
    ) -> None:
        self.socket_path = socket_path
        self._add_services = add_services
        self._workers = workers
        self._name = name
        self._server: grpc.Server | None = None
        self._executor: futures.ThreadPoolExecutor | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Listen and serve; the socket file must not exist (remove a stale one first)."""
        executor = futures.ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix=self._name)
        server = grpc.server(executor)
        self._add_services(server)
        server.add_insecure_port(f"unix://{self.socket_path}")
        server.start()
        self._server, self._executor = server, executor

    def stop(self) -> None:
        """Cancel every call, stop listening and join the threads; idempotent."""
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
