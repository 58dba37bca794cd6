"""One run: pods arrive one by one on the cluster, each goes to the best node that fits, none leaves.

Per pod the node policy ranks every node that fits, as the extender does for a pod-aware policy,
and the best wins; ties go to a seeded node order (the FGD simulator's random name prefix). What
makes 10,000 pods x 1,200 nodes fast enough in Python is that nothing is computed twice: per pod
class (same request, CPU and model list) the fit and score of every node are kept in a sorted
ranking, and after a placement only the one node that changed is refitted, lazily, the next time
each class arrives. Fits and scores are further memoised per node state, which many nodes share.
Host memory is a filter only (kube-scheduler's ``NodeResourcesFit``), checked while walking the
ranking; CPU is both a filter and part of the state policies score.
"""

from __future__ import annotations

import bisect
import random
import time
from collections import Counter
from collections.abc import Callable
from collections.abc import Sequence

import attrs

from hami_core.devices import DeviceUsage
from hami_core.placement import NodeState
from hami_core.scheduler.capacity import BackendSummary
from hami_core.scheduler.policies.fragmentation import Workload
from hami_core.simulate.bridge import BACKEND
from hami_core.simulate.bridge import PodPlan
from hami_core.simulate.bridge import Scheduler
from hami_core.simulate.trace import MILLI
from hami_core.simulate.trace import NodeSpec
from hami_core.simulate.trace import PodSpec

#: A node's device usage as memo keys hold it: (used, usedmem, usedcores) per device.
_Usage = tuple[tuple[int, int, int], ...]
#: Memo value: the score and the usage after the pod, or ``None`` when the pod does not fit.
_Outcome = tuple[float, _Usage] | None
#: What a non-deterministic policy's class holds for a node that passed the cheap check.
_MAYBE: _Outcome = (0.0, ())


@attrs.frozen
class RunResult:
    """The per-event series of one run (event 0 is the empty cluster before any pod).

    Percentages are of the cluster's GPU capacity, except ``frag_rate`` (of the idle GPU).
    ``placed`` names each pod's node, ``""`` for a pod that fitted nowhere; ``seconds`` is the CPU
    time of the replay (one core; wall time depends on what else the machine runs).
    """

    policy: str
    seed: int
    arrived: tuple[float, ...]
    allocated: tuple[float, ...]
    fragment: tuple[float, ...]
    frag_rate: tuple[float, ...]
    pods: int
    failed: int
    seconds: float
    capacity_gpus: float
    placed: tuple[str, ...] = ()


class _Node:
    __slots__ = (
        "cpu_left",
        "devices",
        "index",
        "mem_left",
        "rank",
        "spec",
        "state",
        "summary",
        "tags",
        "usage",
    )

    def __init__(self, index: int, spec: NodeSpec, devices: tuple[DeviceUsage, ...], rank: int) -> None:
        self.index = index
        self.spec = spec
        self.rank = rank
        self.devices = devices
        self.cpu_left = spec.cpu_milli
        self.mem_left = spec.memory_mib
        self.tags: Counter[str] = Counter()
        self.usage: _Usage = _usage(devices)
        self.state = NodeState(devices=devices, cpu_left=self.cpu_left)
        self.summary = BackendSummary.of(devices)

    def key(self, tags: bool) -> tuple[object, ...]:
        return (self.spec.model, self.cpu_left, self.state.tags if tags else None, self.usage)


def _usage(devices: Sequence[DeviceUsage]) -> _Usage:
    return tuple((device.used, device.usedmem, device.usedcores) for device in devices)


class _Class:
    """One pod class's fit and score on every node, sorted best first, refreshed lazily."""

    __slots__ = ("deterministic", "memo", "models", "plan", "ranked", "scores", "stale")

    def __init__(self, plan: PodPlan, nodes: int, deterministic: bool) -> None:
        self.plan = plan
        self.deterministic = deterministic
        self.models = plan.shape.models
        self.memo: dict[tuple[object, ...], _Outcome] = {}
        self.scores: list[tuple[float, int, int] | None] = [None] * nodes
        self.ranked: list[tuple[float, int, int]] = []
        self.stale: set[int] = set(range(nodes))


class Replay:
    """Replays arrivals on a cluster under one node policy.

    Args:
        nodes: the cluster.
        workload: the target workload M (FGD's, and the fragmentation measure's).
        policy: the node policy's name (any registered one).
        seed: seeds the node order and the random policy.
    """

    def __init__(self, nodes: Sequence[NodeSpec], workload: Workload, policy: str, seed: int) -> None:
        self._scheduler = Scheduler(nodes, workload, seed)
        self._workload = workload
        self._policy = policy
        self._seed = seed
        ranks = list(range(len(nodes)))
        random.Random(seed).shuffle(ranks)
        self._nodes = [
            _Node(index, spec, self._scheduler.node_devices(spec), ranks[index])
            for index, spec in enumerate(nodes)
        ]
        self._rng = random.Random(seed + 1)
        placement = self._scheduler.policies[policy].placement if policy in self._scheduler.policies else None
        # Only GpuClustering reads the pods' tags; leaving them out of other memo keys shares more.
        self._tags = bool(getattr(placement, "uses_tags", False))
        self._classes: dict[tuple[object, ...], _Class] = {}
        self._capacity = (
            sum(device.totalcore for node in self._nodes for device in node.devices) * MILLI // 100
        )
        self._fragments = [self._fragment(node) for node in self._nodes]

    @property
    def capacity_milli(self) -> int:
        """The cluster's GPU capacity in milli-GPUs."""
        return self._capacity

    def _fragment(self, node: _Node) -> float:
        if not node.devices:
            return 0.0
        return self._workload.fragment(node.cpu_left, node.state.frees(), node.devices[0].type)

    def _class(self, pod: PodSpec) -> _Class:
        key = (pod.cpu_milli, pod.num_gpu, pod.gpu_milli, pod.gpu_spec)
        found = self._classes.get(key)
        if found is None:
            plan = self._scheduler.plan(pod, self._policy)
            found = _Class(plan, len(self._nodes), self._scheduler.deterministic(plan))
            self._classes[key] = found
        return found

    def _evaluate(self, cls: _Class, node: _Node) -> _Outcome:
        shape = cls.plan.shape
        if node.cpu_left < shape.cpu:
            return None
        if cls.models and (not node.devices or node.devices[0].type not in cls.models):
            return None
        if not self._scheduler.may_fit(cls.plan, node.summary):
            return None
        if not cls.deterministic:
            return _MAYBE  # fitted when drawn (see _draw)
        key = node.key(self._tags)
        if key in cls.memo:
            return cls.memo[key]
        outcome: _Outcome = None
        fit = self._scheduler.fit(cls.plan, node.state)
        if fit.ok:
            after_devices = tuple(fit.usage.get(BACKEND, node.devices))
            after = NodeState(
                devices=after_devices,
                cpu_left=node.cpu_left - shape.cpu,
                tags=node.state.tags | ({shape.tag} if shape.tag else set()),
            )
            score = self._scheduler.score(cls.plan, node.state, after)
            outcome = (score, _usage(after_devices))
        cls.memo[key] = outcome
        return outcome

    def _refresh(self, cls: _Class) -> None:
        ranked = cls.ranked
        scores = cls.scores
        for index in cls.stale:
            node = self._nodes[index]
            outcome = self._evaluate(cls, node)
            new = None if outcome is None else (-outcome[0], node.rank, index)
            old = scores[index]
            if new == old:
                continue
            if old is not None:
                del ranked[bisect.bisect_left(ranked, old)]
            if new is not None:
                bisect.insort(ranked, new)
            scores[index] = new
        cls.stale.clear()

    def _choose(self, cls: _Class, pod: PodSpec) -> tuple[_Node, _Usage] | None:
        self._refresh(cls)
        nodes = self._nodes
        if cls.deterministic:
            for _, _, index in cls.ranked:
                node = nodes[index]
                if node.mem_left >= pod.memory_mib:
                    outcome = cls.memo[node.key(self._tags)]
                    assert outcome is not None
                    return node, outcome[1]
            return None
        return self._draw(cls, pod)

    def _draw(self, cls: _Class, pod: PodSpec) -> tuple[_Node, _Usage] | None:
        """A non-deterministic policy's winner: uniform among the nodes that fit.

        Its scores are independent draws, so the winner is drawn here without scoring every node:
        candidates passed the cheap capacity check; a draw that the real fit (or host memory)
        refuses is dropped and drawn again, which keeps the choice uniform among the nodes that fit.
        """
        ranked = cls.ranked
        pool = [entry for entry in ranked if self._nodes[entry[2]].mem_left >= pod.memory_mib]
        while pool:
            position = self._rng.randrange(len(pool))
            entry = pool[position]
            node = self._nodes[entry[2]]
            fit = self._scheduler.fit(cls.plan, node.state)
            if fit.ok:
                return node, _usage(fit.usage.get(BACKEND, node.devices))
            pool[position] = pool[-1]
            pool.pop()
            del ranked[bisect.bisect_left(ranked, entry)]
            cls.scores[entry[2]] = None
        return None

    def _place(self, node: _Node, pod: PodSpec, usage: _Usage, tag: str) -> None:
        if usage != node.usage:
            node.devices = tuple(
                device
                if now == before
                else attrs.evolve(device, used=now[0], usedmem=now[1], usedcores=now[2])
                for device, now, before in zip(node.devices, usage, node.usage, strict=True)
            )
            node.usage = usage
        node.cpu_left -= pod.cpu_milli
        node.mem_left -= pod.memory_mib
        if tag:
            node.tags[tag] += 1
        node.state = NodeState(devices=node.devices, cpu_left=node.cpu_left, tags=frozenset(node.tags))
        node.summary = BackendSummary.of(node.devices)
        for cls in self._classes.values():
            cls.stale.add(node.index)

    def run(self, pods: Sequence[PodSpec], progress: Callable[[int], None] | None = None) -> RunResult:
        """Replay ``pods`` in order; ``progress`` is told every 500 pods."""
        started = time.process_time()
        capacity = self._capacity or 1
        arrived = used = 0
        fragment_total = sum(self._fragments)
        series_arrived = [0.0]
        series_alloc = [0.0]
        series_frag = [fragment_total * 100 / capacity]
        series_rate = [self._rate(fragment_total, capacity - used)]
        failed = 0
        placed: list[str] = []
        for position, pod in enumerate(pods):
            arrived += pod.gpu_demand
            cls = self._class(pod)
            chosen = self._choose(cls, pod)
            if chosen is None:
                failed += 1
                placed.append("")
            else:
                node, usage = chosen
                placed.append(node.spec.name)
                self._place(node, pod, usage, cls.plan.shape.tag)
                used += pod.gpu_demand
                fresh = self._fragment(node)
                fragment_total += fresh - self._fragments[node.index]
                self._fragments[node.index] = fresh
            series_arrived.append(arrived * 100 / capacity)
            series_alloc.append(used * 100 / capacity)
            series_frag.append(fragment_total * 100 / capacity)
            series_rate.append(self._rate(fragment_total, capacity - used))
            if progress is not None and (position + 1) % 500 == 0:
                progress(500)
        if progress is not None:
            progress(len(pods) % 500)
        return RunResult(
            policy=self._policy,
            seed=self._seed,
            arrived=tuple(series_arrived),
            allocated=tuple(series_alloc),
            fragment=tuple(series_frag),
            frag_rate=tuple(series_rate),
            pods=len(pods),
            failed=failed,
            seconds=time.process_time() - started,
            capacity_gpus=capacity / MILLI,
            placed=tuple(placed),
        )

    @staticmethod
    def _rate(fragment: float, idle: float) -> float:
        return fragment * 100 / idle if idle > 0 else 0.0
