"""What a learning placement policy is told of each pod: its shape and the device models it may run on."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence

import attrs
import pytest

from hami_core.devices import DeviceUsage
from hami_core.hookspecs import ScoringPolicy
from hami_core.placement import NodeState
from hami_core.placement import PodShape
from hami_core.pods import PodView
from hami_core.scheduler import scoring
from hami_core.scheduler.cache import ClusterCache
from hami_core.scheduler.choosing import Chooser
from hami_core.scheduler.policies.fragmentation import RecentWorkload
from tests.scheduler.fakes import NOUSE_TYPE
from tests.scheduler.fakes import NOW
from tests.scheduler.fakes import USE_TYPE
from tests.scheduler.fakes import VGPU_MODE
from tests.scheduler.fakes import NvidiaLikeBackend
from tests.scheduler.fakes import gpu_pod
from tests.scheduler.fakes import gpus
from tests.scheduler.fakes import registered_node

BACKEND = NvidiaLikeBackend()
A100 = "NVIDIA-A100"
V100 = "NVIDIA-V100"


@attrs.define
class Learner:
    """A placement policy that records the shapes it is asked to learn."""

    deterministic: bool = True
    seen: list[PodShape] = attrs.Factory(list)

    def revision(self, pod: PodShape) -> int:
        self.seen.append(pod)
        return 1

    def order(self, node: NodeState, pod: PodShape) -> Sequence[DeviceUsage]:
        return node.devices

    def score(self, before: NodeState, pod: PodShape, after: NodeState) -> float:
        return 0.0


def cluster(*models: tuple[str, str]) -> tuple[ClusterCache, Learner, Chooser]:
    """Nodes named by model, each with two GPUs of that type, in the given vGPU mode."""
    learner = Learner()
    policies = {"learner": ScoringPolicy("learner", "node", lambda devices: 0.0, placement=learner)}
    cache = ClusterCache([BACKEND], scoring.node_policies(policies))
    for model, mode in models:
        add(cache, model, mode)
    return cache, learner, Chooser({"nvidia": BACKEND}, policies, default_node="learner")


def add(cache: ClusterCache, model: str, mode: str = "hami-core") -> None:
    name = f"{model}-{mode}".lower()
    cache.apply_node("ADDED", registered_node(name, gpus(name, 2, type=model, mode=mode)), NOW)


def learned(cache: ClusterCache, learner: Learner, chooser: Chooser, annotations: Mapping[str, str]) -> PodShape:
    ask = chooser.ask(PodView.from_object(gpu_pod("p", percent=50, cores=50, annotations=annotations)))
    assert ask is not None
    chooser.choose(cache, ask, [view.name for view in cache.views()])
    return learner.seen[-1]


@pytest.mark.parametrize(
    ("annotations", "models"),
    [
        pytest.param({}, frozenset(), id="no-rule"),
        pytest.param({USE_TYPE: "A100"}, frozenset({A100}), id="use"),
        pytest.param({NOUSE_TYPE: "a100"}, frozenset({V100}), id="nouse-any-case"),
        pytest.param({USE_TYPE: "A100,V100"}, frozenset(), id="every-model"),
        pytest.param({USE_TYPE: "H100"}, frozenset(), id="no-model-fits-nowhere"),
        pytest.param({VGPU_MODE: "mig"}, frozenset({V100}), id="mode"),
    ],
)
def test_a_pod_is_learned_with_the_models_its_type_rules_accept(
    annotations: Mapping[str, str], models: frozenset[str]
) -> None:
    cache, learner, chooser = cluster((A100, "hami-core"), (V100, "hami-core"), (V100, "mig"))
    shape = learned(cache, learner, chooser, annotations)
    assert shape == PodShape(cpu=0, gpus=1, milli=500, models=models)


def test_a_model_registered_later_is_counted() -> None:
    cache, learner, chooser = cluster((A100, "hami-core"))
    assert learned(cache, learner, chooser, {NOUSE_TYPE: "V100"}).models == frozenset()
    add(cache, V100)
    assert learned(cache, learner, chooser, {NOUSE_TYPE: "V100"}).models == {A100}


def test_fgds_learned_workload_names_the_models_pods_are_bound_to() -> None:
    recent = RecentWorkload()
    cache, learner, chooser = cluster((A100, "hami-core"), (V100, "hami-core"))
    for rules in ({}, {USE_TYPE: "A100"}):
        recent.see(learned(cache, learner, chooser, rules))
    assert recent.current.bound_models == {A100}
