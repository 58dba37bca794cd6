"""The sharing report: placements and per-device usage read from nodes and pods."""

from __future__ import annotations

import json

from hami_backend_mock.backend import MockBackend

from hami_core import codec
from hami_core.devices import ContainerDevice
from hami_core.devices import DeviceInfo
from hami_core.localcluster.kubelet import ALLOCATIONS_ANNOTATION
from hami_core.localcluster.sharing import sharing_report
from hami_core.testing import make_container
from hami_core.testing import make_node
from hami_core.testing import make_pod

BACKEND = MockBackend()
KEYS = BACKEND.keys
DEVICES = [
    DeviceInfo(id="MOCK-a", index=0, count=4, devmem=16384, devcore=100, type="MOCK-GPU", health=True),
    DeviceInfo(id="MOCK-b", index=1, count=4, devmem=16384, devcore=100, type="MOCK-GPU", health=True),
]


def _node() -> dict[str, object]:
    return dict(make_node("n1", annotations={KEYS.register: codec.encode_node_devices(DEVICES)}))


def _pod(
    name: str, entries: list[list[ContainerDevice]], *, phase: str = "Running", init: int = 0
) -> dict[str, object]:
    names = [f"c{i}" for i in range(len(entries))]
    value = codec.encode_pod_devices(entries)
    pod = make_pod(
        name,
        init_containers=[make_container(n) for n in names[:init]],
        containers=[make_container(n) for n in names[init:]],
        annotations={KEYS.allocated: value},
        node_name="n1",
        phase=phase,  # type: ignore[arg-type]
    )
    return dict(pod)


def share(uuid: str, mem: int, cores: int) -> ContainerDevice:
    return ContainerDevice(uuid, "MOCK", mem, cores)


def test_usage_adds_up_the_pods_on_each_device() -> None:
    pods = [
        _pod("p1", [[share("MOCK-a", 4096, 30)]]),
        _pod("p2", [[share("MOCK-a", 2048, 20), share("MOCK-b", 1024, 0)]]),
    ]
    report = sharing_report([_node()], pods, [BACKEND])
    a, b = report.devices
    assert (a.uuid, a.memory_used_mib, a.cores_used, a.slots_used, a.holders) == (
        "MOCK-a",
        6144,
        50,
        2,
        ("default/p1", "default/p2"),
    )
    assert (b.memory_used_mib, b.slots_used, b.holders) == (1024, 1, ("default/p2",))
    assert not a.overcommitted
    assert report.pod("p2").containers[0].devices[1].uuid == "MOCK-b"


def test_init_containers_count_at_their_peak_not_on_top_of_app_containers() -> None:
    pods = [_pod("p", [[share("MOCK-a", 1024, 10)], [share("MOCK-a", 6144, 50)]], init=1)]
    (a, _) = sharing_report([_node()], pods, [BACKEND]).devices
    assert (a.memory_used_mib, a.cores_used, a.slots_used) == (6144, 50, 1)


def test_finished_pods_hold_nothing() -> None:
    pods = [_pod("done", [[share("MOCK-a", 4096, 30)]], phase="Succeeded")]
    (a, _) = sharing_report([_node()], pods, [BACKEND]).devices
    assert (a.memory_used_mib, a.slots_used, a.holders) == (0, 0, ())


def test_more_booked_than_a_device_has_is_flagged_as_overcommitted() -> None:
    pods = [_pod(f"p{i}", [[share("MOCK-a", 9000, 0)]]) for i in range(2)]
    (a, _) = sharing_report([_node()], pods, [BACKEND]).devices
    assert a.overcommitted


def test_recorded_env_is_attached_to_its_container() -> None:
    pod = _pod("p", [[share("MOCK-a", 4096, 30)]])
    pod["metadata"]["annotations"][ALLOCATIONS_ANNOTATION] = json.dumps(  # type: ignore[index]
        {"c0": {"envs": {"CUDA_DEVICE_MEMORY_LIMIT_0": "4096m"}, "mounts": [], "devices": []}}
    )
    placement = sharing_report([_node()], [pod], [BACKEND]).pod("p")
    assert placement.containers[0].env == {"CUDA_DEVICE_MEMORY_LIMIT_0": "4096m"}


def test_malformed_annotations_are_reported_not_raised() -> None:
    node = make_node("bad", annotations={KEYS.register: "not-a-registration"})
    pod = _pod("p", [[share("MOCK-a", 1, 1)]])
    pod["metadata"]["annotations"][KEYS.allocated] = "uuid,type,100:;"  # type: ignore[index]
    report = sharing_report([node], [pod], [BACKEND])
    assert report.devices == ()
    assert len(report.problems) == 2
    assert report.pod("p").containers[0].devices == ()
    assert json.loads(json.dumps(report.to_json()))["problems"] == list(report.problems)
