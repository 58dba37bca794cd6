"""Named fakes and builders for the scheduler tests.

``NvidiaLikeBackend`` is a backend with HAMi's NVIDIA names and annotation keys
(``hami.io/node-nvidia-register``, ``hami.io/vgpu-devices-*``) and HAMi's NVIDIA filter rules (type
and UUID include/exclude lists, NUMA bind, ``nvidia.com/vgpu-mode``), so the spec's examples can be
fed to the scheduler as written. ``gpu`` builds a registered device and ``nodes_with`` a node
carrying a registration; ``Harness`` wires a FakeKube, a cache and the scheduler parts as
``build_scheduler`` does, without threads, feeding the cache by hand.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import ClassVar

import attrs
from hami_backend_mock.backend import MockBackend

from hami_core import allocation
from hami_core import codec
from hami_core.backend import DeviceBackend
from hami_core.backend import RequestRules
from hami_core.backend import ResourceNames
from hami_core.config import HamiConfig
from hami_core.config import SchedulerConfig
from hami_core.devices import ContainerAllocation
from hami_core.devices import ContainerDevices
from hami_core.devices import DeviceInfo
from hami_core.devices import DeviceUsage
from hami_core.devices import FitContext
from hami_core.kube.nodelock import NodeLock
from hami_core.kube.objects import Node
from hami_core.kube.objects import Pod
from hami_core.plugins import Backends
from hami_core.plugins import load_backends
from hami_core.pods import ContainerView
from hami_core.pods import PodView
from hami_core.scheduler import scoring
from hami_core.scheduler.binding import Binding
from hami_core.scheduler.cache import ClusterCache
from hami_core.scheduler.changes import Changes
from hami_core.scheduler.choosing import uses_shared_fit
from hami_core.scheduler.filtering import Filtering
from hami_core.scheduler.filtering import FilterOutcome
from hami_core.scheduler.policies.registry import PlacementPolicies
from hami_core.scheduler.recording import EventRecorder
from hami_core.scheduler.retrying import Retrier
from hami_core.scheduler.retrying import RetryBook
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_node
from hami_core.testing.builders import make_pod
from hami_core.testing.fake_kube import FakeKube

NOW = datetime(2026, 8, 1, 6, 0, 0, tzinfo=UTC)

GPU = "nvidia.com/gpu"
MEM = "nvidia.com/gpumem"
PCT = "nvidia.com/gpumem-percentage"
CORES = "nvidia.com/gpucores"
USE_TYPE = "nvidia.com/use-gputype"
NOUSE_TYPE = "nvidia.com/nouse-gputype"
USE_UUID = "nvidia.com/use-gpuuuid"
NOUSE_UUID = "nvidia.com/nouse-gpuuuid"
NUMA_BIND = "nvidia.com/numa-bind"
VGPU_MODE = "nvidia.com/vgpu-mode"
#: The fake's pair-score node annotation (plain JSON {uuid: {uuid: score}}; the real one is the NVIDIA backend's).
PAIR_SCORES = codec.annotation_key("node-pair-scores")

MOCK_GPU = "mock.hami.io/gpu"
MOCK_MEM = "mock.hami.io/gpumem"
MOCK_PCT = "mock.hami.io/gpumem-percentage"
MOCK_CORES = "mock.hami.io/gpucores"


class NvidiaLikeBackend(DeviceBackend):
    """HAMi's NVIDIA names, keys and filter rules, without hardware (tests only)."""

    contract_version: ClassVar[str] = "3.0"

    @property
    def name(self) -> str:
        return "nvidia"

    @property
    def resource_names(self) -> ResourceNames:
        return ResourceNames(count=GPU, memory=MEM, memory_percentage=PCT, cores=CORES)

    @property
    def keys(self) -> codec.VendorKeys:
        return codec.vendor_keys(register_word="nvidia", devices_word="vgpu")

    @property
    def request_rules(self) -> RequestRules:
        return RequestRules()

    def fit_rules(self, context: FitContext) -> allocation.FitRules:
        pod = context.pod_annotations
        mode = pod.get(VGPU_MODE)

        def type_ok(device: DeviceUsage) -> bool:
            return codec.check_type(pod, device.type, USE_TYPE, NOUSE_TYPE) and (
                mode is None or device.mode in mode
            )

        return allocation.FitRules(
            request_type="NVIDIA",
            type_ok=type_ok,
            uuid_ok=lambda uuid: codec.check_uuid(pod, uuid, USE_UUID, NOUSE_UUID),
            numa_bind=pod.get(NUMA_BIND) in ("1", "t", "T", "TRUE", "true", "True"),
            pair_scores=json.loads(context.node_annotations.get(PAIR_SCORES, "{}")),
        )

    def discover(self, node_name: str) -> list[DeviceInfo]:
        return []

    def allocate(
        self, devices: ContainerDevices, container: ContainerView, pod: PodView
    ) -> ContainerAllocation:
        return ContainerAllocation()


class ScoringBackend(NvidiaLikeBackend):
    """Adds its own node score: a node whose first device is chosen scores 100 more."""

    def score_node(self, devices: Sequence[DeviceUsage], chosen: object, context: FitContext) -> float:
        picked = {device.uuid for containers in chosen for device in containers}  # type: ignore[attr-defined]
        return 100.0 if devices and devices[0].id in picked else 0.0


def gpu(
    uuid: str,
    *,
    index: int = 0,
    count: int = 10,
    memory: int = 8000,
    cores: int = 100,
    type: str = "NVIDIA-Tesla V100",
    numa: int = 0,
    health: bool = True,
    mode: str = "hami-core",
) -> DeviceInfo:
    """A registered GPU: 10 slots, 8000 MiB, 100 cores unless told otherwise."""
    return DeviceInfo(
        id=uuid,
        index=index,
        count=count,
        devmem=memory,
        devcore=cores,
        type=type,
        numa=numa,
        health=health,
        mode=mode,
    )


def gpus(prefix: str, n: int, **kwargs: object) -> list[DeviceInfo]:
    """``n`` identical GPUs ``<prefix>-0`` ... with consecutive indexes."""
    return [gpu(f"{prefix}-{i}", index=i, **kwargs) for i in range(n)]  # type: ignore[arg-type]


def registered_node(
    name: str,
    devices: Sequence[DeviceInfo],
    *,
    backend: DeviceBackend | None = None,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    allocatable: int = 10,
) -> Node:
    """A node whose register annotation lists ``devices`` (JSON) and whose handshake is fresh."""
    backend = backend or NvidiaLikeBackend()
    return make_node(
        name,
        annotations={
            backend.keys.register: codec.encode_node_devices(devices),
            backend.keys.handshake: codec.format_handshake_requesting(NOW),
            **(annotations or {}),
        },
        labels=labels,
        allocatable={backend.resource_names.count: allocatable},
    )


def gpu_pod(
    name: str,
    *,
    count: int = 1,
    memory: int | None = None,
    percent: int | None = None,
    cores: int | None = None,
    annotations: Mapping[str, str] | None = None,
    namespace: str = "default",
    init: Sequence[Mapping[str, int]] = (),
    names: tuple[str, str, str, str] = (GPU, MEM, PCT, CORES),
) -> Pod:
    """A pod with one container asking ``count`` GPUs and the given memory / percentage / cores."""
    limits: dict[str, str | int] = {names[0]: count}
    if memory is not None:
        limits[names[1]] = memory
    if percent is not None:
        limits[names[2]] = percent
    if cores is not None:
        limits[names[3]] = cores
    return make_pod(
        name,
        namespace=namespace,
        containers=[make_container(limits=limits)],
        init_containers=[make_container(f"init-{i}", limits=dict(item)) for i, item in enumerate(init)],
        annotations=annotations,
    )


def mock_backend() -> MockBackend:
    return MockBackend()


@attrs.define
class Harness:
    """FakeKube, cache, filtering and binding wired as ``build_scheduler`` does, fed by hand.

    ``add_node`` and ``add_pod`` create objects in the FakeKube and apply them to the cache; ``sync``
    replays every object the FakeKube holds into the cache (what the watches do).
    """

    kube: FakeKube
    backends: Backends
    cache: ClusterCache
    filtering: Filtering
    binding: Binding
    retrier: Retrier
    config: SchedulerConfig
    changes: list[Changes] = attrs.field(factory=list)

    def dispatch(self, changes: Changes) -> None:
        self.changes.append(changes)
        self.binding.lock_changed(changes.lock_nodes)
        self.retrier.notify(changes)

    def add_node(self, node: Node) -> Node:
        created = self.kube.create_node(node)
        self.dispatch(self.cache.apply_node("ADDED", created, NOW))
        return created

    def add_pod(self, pod: Pod) -> Pod:
        created = self.kube.create_pod(pod["metadata"].get("namespace", "default"), pod)
        self.dispatch(self.cache.apply_pod("ADDED", PodView.from_object(created)))
        return created

    def sync(self, now: datetime = NOW) -> None:
        """Apply the FakeKube's current nodes and pods to the cache, as a relist would."""
        self.dispatch(self.cache.replace_nodes(self.kube.list_nodes()["items"], now))
        self.dispatch(
            self.cache.replace_pods(PodView.from_object(pod) for pod in self.kube.list_pods()["items"])
        )

    def node_names(self) -> list[str]:
        return [node["metadata"]["name"] for node in self.kube.list_nodes()["items"]]

    def filter(self, pod: Pod, names: Sequence[str] | None = None) -> FilterOutcome:
        outcome = self.filtering.filter(
            PodView.from_object(pod), names if names is not None else self.node_names()
        )
        self.sync()
        return outcome


def harness(
    backends: Sequence[DeviceBackend] = (),
    *,
    config: SchedulerConfig | None = None,
    kube: FakeKube | None = None,
    lock_wait: float = 0.0,
    recorder: EventRecorder | None = None,
    clock_offset: timedelta = timedelta(0),
) -> Harness:
    """A harness around ``backends`` (an :class:`NvidiaLikeBackend` by default)."""
    kube = kube or FakeKube()
    config = config or SchedulerConfig()
    listed = list(backends) or [NvidiaLikeBackend()]
    loaded = _backends(listed)
    policies = scoring.node_policies(loaded.scoring_policies)
    cache = ClusterCache(listed, policies, node_selector=config.node_label_selector)
    by_name = {backend.name: backend for backend in listed}
    book = RetryBook({name: uses_shared_fit(backend) for name, backend in by_name.items()}, min_interval=0.0)
    retrier = Retrier(kube, cache, book, wall=lambda: NOW)
    filtering = Filtering(
        cache,
        by_name,
        loaded.scoring_policies,
        kube,
        config=config,
        clock=lambda: NOW,
        recorder=recorder,
        retrier=retrier,
    )
    holder: list[Harness] = []
    binding = Binding(
        kube,
        cache,
        NodeLock(kube, clock=lambda: NOW + clock_offset, expiry=config.node_lock_timeout),
        by_name,
        clock=lambda: NOW,
        lock_wait=lock_wait,
        recorder=recorder,
        on_freed=lambda changes: holder[0].dispatch(changes),
    )
    made = Harness(kube, loaded, cache, filtering, binding, retrier, config)
    holder.append(made)
    return made


def _backends(listed: Sequence[DeviceBackend]) -> Backends:
    """A registry with ``listed`` and the built-in policies, as the plugin loader would build it."""
    loaded = load_backends(HamiConfig(), plugins=[scoring.BuiltinPolicies(), PlacementPolicies()])
    return Backends(
        plugin_manager=loaded.plugin_manager,
        by_name={backend.name: backend for backend in listed},
        by_resource={name: backend for backend in listed for name in backend.resource_names.all()},
        scoring_policies=loaded.scoring_policies,
    )


def annotations_of(kube: FakeKube, name: str, namespace: str = "default") -> dict[str, str]:
    return dict(kube.get_pod(namespace, name)["metadata"].get("annotations") or {})


def eventually(check: Callable[[], bool], *, timeout: float = 5.0, what: str = "the condition") -> None:
    """Wait until ``check()`` holds (threads are involved); fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.01)
