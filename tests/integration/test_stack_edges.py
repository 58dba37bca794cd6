"""``local-cluster up --hami`` at its edges: the extender only kube-scheduler can drive, private keys,
and children that are restarted when they die.

On the emulator and on the real control plane (``control_plane``), where the real kube-scheduler
v1.37 drives the extender over mutual TLS from its extender ``tlsConfig``.
"""

from __future__ import annotations

import json
import logging
import signal
import ssl
import stat
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest

from hami_core.kube.objects import Pod
from hami_core.localcluster.controlplane import ControlPlaneKind
from hami_core.localcluster.fleet import Fleet
from hami_core.localcluster.kubelet import ALLOCATIONS_ANNOTATION
from hami_core.localcluster.stack import HamiStack
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_pod
from tests.loopback import request

pytestmark = pytest.mark.slow

GPU = "mock.hami.io/gpu"
MEM = "mock.hami.io/gpumem"
BIND = json.dumps({"PodName": "p", "PodNamespace": "default", "PodUID": "u", "Node": "node-0"}).encode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, control_plane: ControlPlaneKind) -> Iterator[HamiStack]:
    workdir = tmp_path_factory.mktemp("edges", numbered=True)
    document = {"version": "v1", "backends": {"mock": {"enabled": True}}}
    with HamiStack(document, Fleet.of_size(1), workdir, control_plane=control_plane) as running:
        yield running


def call(stack: HamiStack, path: str, body: bytes | None, *, client_cert: bool) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(stack.tls_dir / "ca.crt"))
    if client_cert:
        context.load_cert_chain(stack.tls_dir / "client.crt", stack.tls_dir / "client.key")
    return request(stack.port, "GET" if body is None else "POST", path, body, context=context, timeout=30)


def eventually(check: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {timeout}s")


def schedule_a_pod(stack: HamiStack) -> Pod:
    name = f"p-{uuid.uuid4().hex[:6]}"
    # A slice of a device: on the real control plane a deleted pod holds its share until kubelet's
    # grace period ends, so whole devices would run out over the module.
    limits = {GPU: "1", MEM: "1000"}
    stack.kube.create_pod("default", make_pod(name, containers=[make_container(limits=limits)]))

    def running() -> Pod | None:
        pod = stack.kube.get_pod("default", name)
        annotations = pod["metadata"].get("annotations") or {}
        return pod if pod.get("spec", {}).get("nodeName") and ALLOCATIONS_ANNOTATION in annotations else None

    pod: Pod = eventually(running, f"pod {name} bound and allocated")
    stack.kube.delete_pod("default", name)
    return pod


def test_kube_scheduler_drives_the_extender_with_its_client_certificate(stack: HamiStack) -> None:
    pod = schedule_a_pod(stack)  # webhook (no client certificate), then filter and bind over mTLS
    assert pod["spec"]["nodeName"] == "node-0"
    assert pod["spec"]["schedulerName"] == stack.config.scheduler.scheduler_name


def test_without_the_client_certificate_the_extender_refuses(stack: HamiStack) -> None:
    status, reply = call(stack, "/bind", BIND, client_cert=False)
    assert status == 403
    assert "client certificate" in json.loads(reply)["Error"]
    assert call(stack, "/readyz", None, client_cert=False)[0] == 200
    status, reply = call(stack, "/bind", BIND, client_cert=True)
    assert status == 200
    assert json.loads(reply)["Error"]  # no such pod: refused by the verb, not by the edge


def test_keys_are_private(stack: HamiStack) -> None:
    assert stat.S_IMODE(stack.tls_dir.stat().st_mode) == 0o700
    for key in ("tls.key", "client.key"):
        assert stat.S_IMODE((stack.tls_dir / key).stat().st_mode) == 0o600


def test_a_killed_device_plugin_is_reported_and_restarted(
    stack: HamiStack, caplog: pytest.LogCaptureFixture
) -> None:
    name = stack.device_plugin_name("node-0", "mock")
    process = stack.device_plugin_process("node-0", "mock")
    kubelet = stack.cluster.kubelets["node-0"]
    with caplog.at_level(logging.WARNING, logger="hami_core.localcluster.supervision"):
        process.send_signal(signal.SIGKILL)
        eventually(lambda: not any(kubelet.devices(GPU).values()), "the kubelet's notice of the death")
        eventually(lambda: stack.supervisor.restarts(name) >= 1, "the plugin's restart")
    eventually(lambda: all(kubelet.devices(GPU).values()), "the restarted plugin's registration")
    (death,) = [d for d in stack.supervisor.deaths if d.name == name]
    assert (death.status, death.restart) == (-signal.SIGKILL, 1)
    assert any(record.getMessage().startswith(f"{name} exited with status -9") for record in caplog.records)
    assert stack.device_plugin_process("node-0", "mock").pid != process.pid
    schedule_a_pod(stack)  # the restarted plugin registered again and allocates


def test_a_killed_scheduler_is_restarted_and_serves_again(stack: HamiStack) -> None:
    process = stack.supervisor.process("scheduler")
    process.send_signal(signal.SIGKILL)
    eventually(lambda: stack.supervisor.restarts("scheduler") >= 1, "the scheduler's restart")

    def ready() -> bool:
        try:
            return call(stack, "/readyz", None, client_cert=False)[0] == 200
        except OSError:
            return False

    eventually(ready, "the restarted scheduler's readiness")
    schedule_a_pod(stack)
