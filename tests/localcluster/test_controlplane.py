"""The real control plane's harness: its configuration documents, its binaries check and its teardown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hami_core.localcluster.controlplane import ControlPlane
from hami_core.localcluster.controlplane import ControlPlaneError
from hami_core.localcluster.controlplane import find_binaries
from hami_core.localcluster.controlplane import kube_scheduler_document
from hami_core.localcluster.resource_fit import canonical_quantity
from hami_core.localcluster.scheduler_config import load_scheduler_config
from hami_core.localcluster.stack import kube_scheduler_configuration


def test_the_scheduler_document_reads_back_as_the_configuration_it_was_made_from(tmp_path: Path) -> None:
    chart = kube_scheduler_configuration(
        "hami-scheduler", "https://127.0.0.1:9443", ["mock.hami.io/gpu", "mock.hami.io/gpumem"]
    )
    config = load_scheduler_config(chart)
    document = kube_scheduler_document(config, tmp_path / "kubeconfig")
    assert load_scheduler_config(document) == config
    assert document["clientConnection"] == {"kubeconfig": str(tmp_path / "kubeconfig")}
    assert document["leaderElection"] == {"leaderElect": False}
    (extender,) = document["extenders"]
    assert (extender["filterVerb"], extender["bindVerb"], extender["httpTimeout"]) == (
        "filter",
        "bind",
        "30s",
    )
    assert extender["tlsConfig"] == {"insecure": True}


def test_missing_binaries_name_make_kube(tmp_path: Path) -> None:
    with pytest.raises(
        ControlPlaneError, match=r"etcd, kube-apiserver, kube-scheduler not found in .*make kube"
    ):
        find_binaries(tmp_path)


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("1000", "1k"),
        ("1500", "1500"),
        ("6000", "6k"),
        (4096, "4096"),
        ("0.5", "500m"),
        ("250m", "250m"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("0.5Gi", "512Mi"),
        ("1e3", "1e3"),
        ("0", "0"),
    ],
)
def test_quantities_are_stored_in_kube_apiservers_canonical_form(sent: str | int, stored: str) -> None:
    assert canonical_quantity(sent) == stored


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    find_binaries()  # fails with the remedy when `make kube` has not run
    plane = ControlPlane(tmp_path / "cp").start()
    try:
        pids = plane.pids()
        assert set(pids) == {"etcd", "kube-apiserver"}
        assert all(os.getpgid(pid) == pid for pid in pids.values())
    finally:
        plane.stop()
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert plane.pids() == {}


def test_a_killed_component_is_reported_and_restarted(tmp_path: Path) -> None:
    """``local-cluster up --real`` supervises its children: kube-apiserver comes back after SIGKILL."""
    import signal
    import time

    from hami_core.errors import KubeError
    from hami_core.kube.client import RealKubeClient

    find_binaries()
    plane = ControlPlane(tmp_path / "cp").start()
    try:
        killed = plane.pids()["kube-apiserver"]
        os.killpg(killed, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while plane.supervisor.restarts("kube-apiserver") == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        (death,) = plane.supervisor.deaths
        assert (death.name, death.status, death.restart) == ("kube-apiserver", -signal.SIGKILL, 1)
        with RealKubeClient(kubeconfig=plane.kubeconfig, timeout=5) as kube:
            while True:
                try:
                    kube.list_nodes()
                    break
                except KubeError:
                    assert time.monotonic() < deadline, "the restarted kube-apiserver never answered"
                    time.sleep(0.5)
        assert plane.pids()["kube-apiserver"] != killed
    finally:
        plane.stop()
