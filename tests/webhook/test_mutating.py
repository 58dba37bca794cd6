"""Admission decisions for pods: HAMi's sequence with the mock backend, and hami's validation on top."""

from __future__ import annotations

import copy
from typing import ClassVar

import attrs
import jsonpatch
import pytest
from hami_backend_mock import resources
from hami_backend_mock.backend import MockBackend
from hami_backend_mock.settings import MockSettings

from hami_core import codec
from hami_core.backend import MutationResult
from hami_core.config import SchedulerConfig
from hami_core.errors import BackendError
from hami_core.kube.objects import Container
from hami_core.kube.objects import Pod
from hami_core.pods import ContainerView
from hami_core.pods import PodView
from hami_core.testing import make_container
from hami_core.testing import make_pod
from hami_core.webhook.mutating import MutationOutcome
from hami_core.webhook.mutating import WebhookSettings
from hami_core.webhook.mutating import mutate_pod
from tests.webhook.fakes import FixedCapacity

GPU = resources.RESOURCE_NAMES.count
MEM = resources.RESOURCE_NAMES.memory
PCT = resources.RESOURCE_NAMES.memory_percentage
CORES = resources.RESOURCE_NAMES.cores
PRIORITY = resources.RESOURCE_NAMES.priority
SETTINGS = WebhookSettings()
TO_HAMI = {"op": "replace", "path": "/spec/schedulerName", "value": "hami-scheduler"}


def _pod(*containers: Container, init: tuple[Container, ...] = (), **kwargs: object) -> Pod:
    """A pod as kube-apiserver sends it to admission: schedulerName already defaulted."""
    options: dict[str, object] = {"scheduler_name": "default-scheduler", **kwargs}
    return make_pod(containers=list(containers), init_containers=list(init), **options)  # type: ignore[arg-type]


def _admit(pod: object, **kwargs: object) -> MutationOutcome:
    outcome = mutate_pod(pod, [MockBackend()], SETTINGS, **kwargs)  # type: ignore[arg-type]
    assert outcome.allowed, outcome.message
    return outcome


def _refusal(pod: object) -> MutationOutcome:
    outcome = mutate_pod(pod, [MockBackend()], SETTINGS)
    assert not outcome.allowed
    return outcome


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        pytest.param(make_container(limits={GPU: 1}), [TO_HAMI], id="count-only"),
        pytest.param(
            make_container(limits={MEM: 1024}),
            [
                {"op": "add", "path": "/spec/containers/0/resources/limits/mock.hami.io~1gpu", "value": "1"},
                TO_HAMI,
            ],
            id="memory-only-gets-a-count",
        ),
        pytest.param(
            make_container(limits={CORES: 30}),
            [
                {"op": "add", "path": "/spec/containers/0/resources/limits/mock.hami.io~1gpu", "value": "1"},
                TO_HAMI,
            ],
            id="cores-only-gets-a-count",
        ),
        pytest.param(
            make_container(limits={GPU: 1, PRIORITY: 0}),
            [
                {
                    "op": "add",
                    "path": "/spec/containers/0/env",
                    "value": [{"name": "CUDA_TASK_PRIORITY", "value": "0"}],
                },
                TO_HAMI,
            ],
            id="priority-becomes-env",
        ),
        pytest.param(
            make_container(limits={GPU: 1, PRIORITY: 1}, env={"A": "b"}),
            [
                {
                    "op": "add",
                    "path": "/spec/containers/0/env/1",
                    "value": {"name": "CUDA_TASK_PRIORITY", "value": "1"},
                },
                TO_HAMI,
            ],
            id="priority-appended-to-env",
        ),
    ],
)
def test_a_device_pod_gets_hamis_scheduler_and_the_backends_defaults(
    container: Container, expected: list[dict[str, object]]
) -> None:
    pod = _pod(container, make_container("side"))
    outcome = _admit(pod)
    assert list(outcome.patch) == expected
    assert outcome.warnings == ()


def test_the_patch_turns_the_received_pod_into_the_admitted_one() -> None:
    pod = _pod(make_container(limits={MEM: 2048}), make_container("side", limits={"cpu": 1}))
    before = copy.deepcopy(pod)
    patched = jsonpatch.apply_patch(pod, list(_admit(pod).patch))
    assert pod == before, "the received pod must not be modified"
    assert patched["spec"]["schedulerName"] == "hami-scheduler"
    assert patched["spec"]["containers"][0]["resources"]["limits"] == {MEM: "2048", GPU: "1"}
    assert patched["spec"]["containers"][1] == before["spec"]["containers"][1]


def test_init_containers_are_mutated_too() -> None:
    pod = _pod(make_container(), init=(make_container("setup", limits={MEM: 512}),))
    assert list(_admit(pod).patch) == [
        {"op": "add", "path": "/spec/initContainers/0/resources/limits/mock.hami.io~1gpu", "value": "1"},
        TO_HAMI,
    ]


def test_a_pod_without_schedulername_gets_it_added() -> None:
    pod = make_pod(containers=[make_container(limits={GPU: 1})])
    assert list(_admit(pod).patch) == [
        {"op": "add", "path": "/spec/schedulerName", "value": "hami-scheduler"}
    ]


@pytest.mark.parametrize(
    "pod",
    [
        pytest.param(_pod(make_container(limits={"cpu": 1, "memory": "1Gi"})), id="no-device-resources"),
        pytest.param(
            _pod(make_container(limits={GPU: 1}), labels={codec.WEBHOOK_LABEL: codec.WEBHOOK_IGNORE}),
            id="labelled-ignore",
        ),
        pytest.param(
            _pod(make_container(limits={"nvidia.com/gpu": 1})), id="resources-of-a-disabled-backend"
        ),
    ],
)
def test_other_pods_are_left_untouched(pod: Pod) -> None:
    outcome = _admit(pod)
    assert outcome.patch == ()
    assert outcome.warnings == ()


def test_a_pod_of_another_scheduler_is_left_alone_with_a_warning_when_it_asks_for_devices() -> None:
    outcome = _admit(_pod(make_container(limits={GPU: 1}), scheduler_name="volcano"))
    assert outcome.patch == ()
    assert outcome.warnings == (
        "pod asks for mock.hami.io/gpu but names scheduler volcano, so hami leaves it alone",
    )
    assert _admit(_pod(make_container(), scheduler_name="volcano")).warnings == ()


def test_default_scheduler_is_kept_when_overwriting_it_is_turned_off() -> None:
    settings = WebhookSettings.from_config(SchedulerConfig(force_overwrite_default_scheduler=False))
    outcome = mutate_pod(_pod(make_container(limits={GPU: 1})), [MockBackend()], settings)
    assert outcome.allowed
    assert outcome.patch == ()


def test_a_pod_already_naming_hamis_scheduler_is_still_mutated() -> None:
    pod = _pod(make_container(limits={MEM: 100}), scheduler_name="hami-scheduler")
    assert list(_admit(pod).patch) == [
        {"op": "add", "path": "/spec/containers/0/resources/limits/mock.hami.io~1gpu", "value": "1"}
    ]


@pytest.mark.parametrize(
    ("container", "message"),
    [
        pytest.param(
            make_container("train", limits={GPU: 1, MEM: -1}),
            "container train: mock.hami.io/gpumem must not be negative, got -1",
            id="negative-memory",
        ),
        pytest.param(
            make_container("train", limits={GPU: -2}),
            "container train: mock.hami.io/gpu must not be negative, got -2",
            id="negative-count",
        ),
        pytest.param(
            make_container("train", limits={GPU: "1.5"}),
            "container train: mock.hami.io/gpu must be a whole number, got 1.5",
            id="fractional-count",
        ),
        pytest.param(
            make_container("train", limits={GPU: 1, CORES: "lots"}),
            "container train: mock.hami.io/gpucores: 'lots' is not a quantity",
            id="not-a-quantity",
        ),
        pytest.param(
            make_container("train", limits={GPU: 1, PCT: 150}),
            "invalid mock.hami.io/gpumem-percentage value 150 in container train: "
            "must be an integer between 0 and 100",
            id="percentage-above-100",
        ),
        pytest.param(
            make_container("train", limits={GPU: 1}, requests={PCT: 101}),
            "container train: mock.hami.io/gpumem-percentage must be between 0 and 100, got 101",
            id="percentage-above-100-in-requests",
        ),
        pytest.param(
            make_container("train", limits={GPU: 0, MEM: 1024}),
            "container train asks for mock.hami.io/gpumem but mock.hami.io/gpu is 0: "
            "set mock.hami.io/gpu to the number of mock devices it needs",
            id="memory-with-zero-devices",
        ),
        pytest.param(
            make_container("train", requests={CORES: 50}),
            "container train asks for mock.hami.io/gpucores but no mock.hami.io/gpu: "
            "set mock.hami.io/gpu to the number of mock devices it needs",
            id="cores-without-a-count",
        ),
        pytest.param(
            make_container("train", limits={GPU: 1, MEM: "16Gi"}),
            "container train: mock.hami.io/gpumem 16Gi is out of range (at most 2147483647)",
            id="memory-beyond-int32",
        ),
    ],
)
def test_a_malformed_request_is_refused_naming_container_and_resource(
    container: Container, message: str
) -> None:
    outcome = _refusal(_pod(make_container("side"), container))
    assert (outcome.code, outcome.message) == (400, message)


@pytest.mark.parametrize(
    ("pod", "code", "message"),
    [
        pytest.param(
            [], 400, "the request's object is not a pod: expected an object, got list", id="not-an-object"
        ),
        pytest.param({"metadata": {}}, 400, "the pod has no spec object", id="no-spec"),
        pytest.param(
            {"spec": {"containers": "main"}},
            400,
            "spec.containers must be an array, got a string",
            id="containers-not-a-list",
        ),
        pytest.param(
            {"spec": {"containers": [1]}},
            400,
            "spec.containers[0] must be an object, got a number",
            id="container-not-an-object",
        ),
        pytest.param(
            {"metadata": {"labels": []}, "spec": {}},
            400,
            "metadata.labels must be an object, got an array",
            id="labels",
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "a", "resources": []}]}},
            400,
            "container a: resources must be an object, got an array",
            id="resources-not-an-object",
        ),
        pytest.param({"spec": {"containers": []}}, 403, "pod has no containers", id="no-containers"),
        pytest.param(
            {"spec": {"containers": [{"name": "a"}], "schedulerName": 7}},
            400,
            "spec.schedulerName must be a string, got a number",
            id="schedulername-not-a-string",
        ),
    ],
)
def test_a_pod_that_cannot_be_read_is_refused(pod: object, code: int, message: str) -> None:
    outcome = _refusal(pod)
    assert (outcome.code, outcome.message) == (code, message)


def test_a_privileged_container_in_a_device_pod_is_denied_as_hami_does() -> None:
    privileged: Container = {**make_container("debug"), "securityContext": {"privileged": True}}
    outcome = _refusal(_pod(make_container(limits={GPU: 1}), privileged))
    assert (outcome.code, outcome.message) == (403, "container debug is privileged")
    assert _admit(_pod(make_container(), privileged)).patch == ()


def test_a_device_pod_already_bound_to_a_node_is_denied() -> None:
    outcome = _refusal(_pod(make_container(limits={GPU: 1}), node_name="node-1"))
    assert (outcome.code, outcome.message) == (403, "pod has node assigned")


@pytest.mark.parametrize(
    ("limits", "capacity", "warning"),
    [
        pytest.param(
            {GPU: 1, MEM: 40000},
            FixedCapacity(memory=16384, count=4),
            "container main asks for 40000 MiB per mock device but the largest registered device has 16384 MiB; "
            "the pod stays Pending until a larger one registers",
            id="memory-above-the-largest-device",
        ),
        pytest.param(
            {GPU: 8},
            FixedCapacity(memory=16384, count=4),
            "container main asks for 8 mock devices but no node has more than 4; "
            "the pod stays Pending until such a node registers",
            id="count-above-the-largest-node",
        ),
        pytest.param(
            {GPU: 1},
            FixedCapacity(memory=0, count=0),
            "container main asks for 1 mock devices but no node has registered a mock device yet; "
            "the pod stays Pending until such a node registers",
            id="nothing-registered",
        ),
        pytest.param(
            {GPU: 1, CORES: 150},
            None,
            "container main: mock.hami.io/gpucores 150 is more than a whole device and counts as 100",
            id="cores-above-100",
        ),
    ],
)
def test_a_request_nothing_can_satisfy_now_is_admitted_with_a_warning(
    limits: dict[str, int], capacity: FixedCapacity | None, warning: str
) -> None:
    outcome = _admit(_pod(make_container(limits=limits)), capacity=capacity)
    assert outcome.warnings == (warning,)
    assert list(outcome.patch) == [TO_HAMI]


@pytest.mark.parametrize(
    "capacity",
    [
        pytest.param(FixedCapacity(memory=16384, count=4), id="fits"),
        pytest.param(FixedCapacity(memory=None, count=None), id="unknown"),
    ],
)
def test_a_request_that_fits_or_meets_unknown_capacity_gets_no_warning(capacity: FixedCapacity) -> None:
    outcome = _admit(_pod(make_container(limits={GPU: 4, MEM: 16384, CORES: 100})), capacity=capacity)
    assert outcome.warnings == ()


def test_memory_is_compared_after_the_backends_memory_factor() -> None:
    backend = MockBackend(MockSettings(memory_factor=256))
    outcome = mutate_pod(
        _pod(make_container(limits={GPU: 1, MEM: 100})), [backend], SETTINGS, capacity=FixedCapacity(16384, 2)
    )
    assert outcome.warnings == (
        "container main asks for 25600 MiB per mock device but the largest registered device has 16384 MiB; "
        "the pod stays Pending until a larger one registers",
    )


class ExclusiveMock(MockBackend):
    """A mock that also applies NVIDIA's exclusive-core default and asks for a runtime class."""

    contract_version: ClassVar[str] = "3.0"

    def mutate_container(self, container: ContainerView, pod: PodView) -> MutationResult:
        result = super().mutate_container(container, pod)
        if not result.has_resource:
            return result
        mutated = dict(result.container if result.container is not None else container.spec)
        limits = dict(mutated.get("resources", {}).get("limits", {}))  # type: ignore[attr-defined]
        if CORES not in limits and MEM not in limits:
            limits[CORES] = "100"
        mutated["resources"] = {**mutated.get("resources", {}), "limits": limits}  # type: ignore[dict-item]
        return MutationResult(
            has_resource=True, container=mutated, runtime_class_name="hami", warnings=("from the backend",)
        )


def test_backend_changes_runtime_class_and_warnings_reach_the_reply() -> None:
    pod = _pod(make_container(limits={GPU: 1}))
    outcome = mutate_pod(pod, [ExclusiveMock()], SETTINGS)
    assert list(outcome.patch) == [
        {"op": "add", "path": "/spec/runtimeClassName", "value": "hami"},
        {"op": "add", "path": "/spec/containers/0/resources/limits/mock.hami.io~1gpucores", "value": "100"},
        TO_HAMI,
    ]
    assert outcome.warnings == ("from the backend",)
    pod["spec"]["runtimeClassName"] = "custom"  # type: ignore[typeddict-unknown-key]
    assert {"op": "add", "path": "/spec/runtimeClassName", "value": "hami"} not in mutate_pod(
        pod, [ExclusiveMock()], SETTINGS
    ).patch


class BrokenMock(MockBackend):
    """A backend with a bug: it raises something other than BackendError."""

    contract_version: ClassVar[str] = "3.0"

    def mutate_container(self, container: ContainerView, pod: PodView) -> MutationResult:
        raise KeyError("oops")


class RefusingMock(MockBackend):
    contract_version: ClassVar[str] = "3.0"

    def mutate_container(self, container: ContainerView, pod: PodView) -> MutationResult:
        raise BackendError("container main: this backend refuses it")


def test_a_backend_error_refuses_the_pod_and_a_backend_bug_is_a_500() -> None:
    pod = _pod(make_container(limits={GPU: 1}))
    refused = mutate_pod(pod, [RefusingMock()], SETTINGS)
    assert (refused.allowed, refused.code, refused.message) == (
        False,
        400,
        "container main: this backend refuses it",
    )
    broken = mutate_pod(pod, [BrokenMock()], SETTINGS)
    assert (broken.allowed, broken.code) == (False, 500)
    assert broken.message == "backend mock failed on container main: KeyError: 'oops'"


@attrs.define
class Quota:
    """Records the pre-check's questions and refuses above a memory limit."""

    limit: int
    asked: list[tuple[str, str, int, int]] = attrs.Factory(list)

    def quota_exceeded(self, namespace: str, backend: str, memory: int, cores: int) -> str | None:
        self.asked.append((namespace, backend, memory, cores))
        return f"limits.{MEM} {self.limit}" if memory > self.limit else None


def test_quota_pre_check_counts_apps_summed_and_init_containers_at_their_peak() -> None:
    quota = Quota(limit=10_000)
    pod = _pod(
        make_container("a", limits={GPU: 2, MEM: 1000, CORES: 10}),
        make_container("b", limits={GPU: 1, MEM: 3000}),
        make_container("c", limits={GPU: 1, PCT: 50}),
        init=(make_container("i", limits={GPU: 1, MEM: 4000, CORES: 60}),),
    )
    outcome = mutate_pod(pod, [MockBackend()], SETTINGS, namespace="team-a", quota=quota)
    assert outcome.allowed
    assert quota.asked == [("team-a", "mock", 5000, 60)]
    quota.limit = 4999
    refused = mutate_pod(pod, [MockBackend()], SETTINGS, namespace="team-a", quota=quota)
    assert (refused.code, refused.message) == (403, f"exceeding resource quota: limits.{MEM} 4999")


def test_the_quota_is_not_asked_about_pods_without_devices() -> None:
    quota = Quota(limit=0)
    assert mutate_pod(_pod(make_container()), [MockBackend()], SETTINGS, quota=quota).allowed
    assert quota.asked == []


def test_without_backends_every_pod_is_left_untouched() -> None:
    outcome = mutate_pod(_pod(make_container(limits={GPU: 1})), [], SETTINGS)
    assert (outcome.allowed, outcome.patch) == (True, ())


def test_a_device_pod_naming_an_unknown_node_policy_is_denied_with_the_known_ones() -> None:
    settings = WebhookSettings(node_policies=frozenset({"binpack", "spread"}))
    pod = _pod(make_container(limits={GPU: 1}), annotations={codec.NODE_SCHEDULER_POLICY: "fastest"})
    refused = mutate_pod(pod, [MockBackend()], settings)
    assert (refused.allowed, refused.code) == (False, 403)
    assert refused.message == "unknown node scheduler policy 'fastest' (known: binpack, spread)"
    for value in ("spread", ""):
        pod = _pod(make_container(limits={GPU: 1}), annotations={codec.NODE_SCHEDULER_POLICY: value})
        assert mutate_pod(pod, [MockBackend()], settings).allowed
    plain = _pod(make_container(), annotations={codec.NODE_SCHEDULER_POLICY: "fastest"})
    assert mutate_pod(plain, [MockBackend()], settings).allowed  # not hami's pod
