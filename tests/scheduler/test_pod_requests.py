"""What a pod asks of each backend, init containers first."""

from __future__ import annotations

import pytest

from hami_core.devices import DeviceRequest
from hami_core.errors import BackendError
from hami_core.pods import PodView
from hami_core.scheduler.pod_requests import parse_pod_request
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_pod
from tests.scheduler.fakes import GPU
from tests.scheduler.fakes import MEM
from tests.scheduler.fakes import MOCK_GPU
from tests.scheduler.fakes import NvidiaLikeBackend
from tests.scheduler.fakes import mock_backend


def test_requests_are_listed_per_container_init_first_and_per_backend() -> None:
    pod = make_pod(
        "p",
        init_containers=[make_container("setup", limits={MOCK_GPU: 1})],
        containers=[make_container("plain"), make_container("main", limits={GPU: 2, MEM: 1000})],
    )
    request = parse_pod_request(PodView.from_object(pod), [NvidiaLikeBackend(), mock_backend()])
    assert request.n_init == 1
    assert request.backends == ("mock", "nvidia")
    assert request.containers[1] == {}
    assert request.containers[2] == {"nvidia": DeviceRequest(nums=2, type="NVIDIA", memreq=1000)}
    assert len(request.requests()) == 2


def test_a_pod_asking_nothing_is_empty() -> None:
    assert parse_pod_request(PodView.from_object(make_pod("p")), [NvidiaLikeBackend()]).empty


def test_a_malformed_request_names_the_pod_backend_and_container() -> None:
    pod = make_pod("p", namespace="team", containers=[make_container("main", limits={GPU: "1.5"})])
    with pytest.raises(BackendError, match="pod team/p: backend nvidia: container main"):
        parse_pod_request(PodView.from_object(pod), [NvidiaLikeBackend()])
