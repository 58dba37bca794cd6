"""The one place the simulator calls into the scheduler: backend, requests, policies, fit, booking.

The cluster's GPUs are mock-backend devices shaped like the trace's models (type ``MOCK-<model>``,
the model's memory, 100 cores, no split limit), loaded through the plugin system from a generated
config, exactly as the scheduler loads backends. Policies come from the ``hami_scoring_policies``
hook (the built-in ``binpack``/``spread`` and :class:`~hami_core.scheduler.policies.registry.PlacementPolicies`),
are resolved per pod by :func:`hami_core.scheduler.scoring.pod_policies` as the extender resolves
the ``hami.io/node-scheduler-policy`` annotation, and each candidate is fitted with the shared
:func:`hami_core.allocation.fit_pod` / :func:`~hami_core.allocation.fit_container` and the backend's
fit rules, as the extender's fitter does for a backend that keeps the shared fit.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from collections.abc import Sequence

import attrs

from hami_core import allocation
from hami_core import codec
from hami_core.allocation import PodFit
from hami_core.backend import DeviceBackend
from hami_core.config import parse_config
from hami_core.devices import DeviceRequest
from hami_core.devices import DeviceUsage
from hami_core.devices import FitContext
from hami_core.devices import FitResult
from hami_core.devices import PodDevices
from hami_core.hookspecs import ScoringPolicy
from hami_core.placement import NodeState
from hami_core.placement import PodShape
from hami_core.placement import single_fit
from hami_core.plugins import load_backends
from hami_core.pods import PodView
from hami_core.scheduler.capacity import BackendSummary
from hami_core.scheduler.pod_requests import PodRequest
from hami_core.scheduler.pod_requests import parse_pod_request
from hami_core.scheduler.policies.fragmentation import Workload
from hami_core.scheduler.policies.registry import PlacementPolicies
from hami_core.scheduler.scoring import BuiltinPolicies
from hami_core.scheduler.scoring import PodPolicies
from hami_core.scheduler.scoring import pod_policies
from hami_core.simulate.trace import MILLI
from hami_core.simulate.trace import NodeSpec
from hami_core.simulate.trace import PodSpec

#: The backend the simulated GPUs belong to.
BACKEND = "mock"
#: The device-type prefix the mock backend requires.
TYPE_PREFIX = "MOCK-"
#: Tasks one simulated GPU may hold: more than the trace's smallest share allows, so never binding.
SPLIT = 1000
_RESOURCE_PREFIX = "mock.hami.io/"


def device_type(model: str) -> str:
    """The mock device type standing for a trace GPU model."""
    return f"{TYPE_PREFIX}{model or 'GPU'}"


@attrs.frozen
class PodPlan:
    """One pod class resolved once: its device request, policies and shape."""

    request: PodRequest
    policies: PodPolicies
    shape: PodShape
    context: FitContext

    @functools.cached_property
    def device_requests(self) -> tuple[DeviceRequest, ...]:
        return tuple(request for _, request in self.request.requests())


class Scheduler:
    """The scheduler's code for one simulated cluster.

    Args:
        nodes: the cluster.
        workload: FGD's target workload.
        seed: seeds the random policy.
    """

    def __init__(self, nodes: Sequence[NodeSpec], workload: Workload, seed: int) -> None:
        groups = {
            node.name: [
                {
                    "count": node.gpus,
                    "memory_mib": node.gpu_memory_mib,
                    "type": device_type(node.model),
                    "split": SPLIT,
                    "cores": 100,
                }
            ]
            for node in nodes
            if node.gpus
        }
        config = parse_config(
            {"version": "v1", "backends": {BACKEND: {"enabled": True, "devices": [], "nodes": groups}}},
            source="<simulated cluster>",
        )
        loaded = load_backends(config, plugins=[BuiltinPolicies(), PlacementPolicies(workload, seed)])
        self.backend: DeviceBackend = loaded.get(BACKEND)
        self.policies: Mapping[str, ScoringPolicy] = loaded.scoring_policies
        self._rules = self.backend.fit_rules(FitContext())

    def node_devices(self, node: NodeSpec) -> tuple[DeviceUsage, ...]:
        """The node's devices as the scheduler's cache holds them, nothing allocated."""
        return tuple(DeviceUsage.from_info(info) for info in self.backend.discover(node.name))

    def plan(self, pod: PodSpec, policy: str) -> PodPlan:
        """Parse ``pod``'s request with the backend and resolve ``policy`` as the extender does."""
        resources: dict[str, int] = {}
        if pod.num_gpu:
            share = pod.gpu_milli * 100 // MILLI
            resources = {
                f"{_RESOURCE_PREFIX}gpu": pod.num_gpu,
                f"{_RESOURCE_PREFIX}gpucores": share,
                f"{_RESOURCE_PREFIX}gpumem-percentage": share,
            }
        annotations = {codec.NODE_SCHEDULER_POLICY: policy}
        manifest = {
            "metadata": {"name": pod.name, "annotations": annotations},
            "spec": {"containers": [{"name": "main", "resources": {"limits": resources}}]},
        }
        request = parse_pod_request(PodView.from_object(manifest), [self.backend])
        device_default = allocation.POLICY_SPREAD if policy == "spread" else allocation.POLICY_BINPACK
        policies = pod_policies(
            annotations, self.policies, default_node=policy, default_device=device_default
        )
        first = request.containers[0].get(BACKEND) if request.containers else None
        shape = PodShape.of(first, cpu=pod.cpu_milli, models=frozenset(device_type(m) for m in pod.gpu_spec))
        context = FitContext(
            pod_annotations=annotations, device_policy=policies.device.text, weights=policies.weights
        )
        return PodPlan(request=request, policies=policies, shape=shape, context=context)

    def fit(self, plan: PodPlan, node: NodeState) -> PodFit:
        """Fit the pod on one node with the shared fit, devices in the placement policy's order.

        A pod-aware policy replaces the device order anyway, so a one-container pod skips the
        device-policy sort (:func:`~hami_core.placement.single_fit`, as the extender does).
        """
        if plan.request.empty:
            return PodFit(ok=True, usage={BACKEND: node.devices})
        placement = plan.policies.node.placement
        rules = self._rules
        device_policy = plan.policies.device.policy
        containers = plan.request.containers

        def fitter(
            backend: str, request: DeviceRequest, devices: Sequence[DeviceUsage], earlier: PodDevices
        ) -> FitResult:
            if placement is not None:
                state = node if devices is node.devices else attrs.evolve(node, devices=tuple(devices))
                devices = placement.order(state, plan.shape)
            else:
                devices = plan.policies.device.order(devices)
            return allocation.fit_container(request, devices, rules, device_policy)

        if placement is not None:
            single = single_fit(containers, plan.request.n_init, {BACKEND: node.devices}, fitter)
            if single is not None:
                return single
        return allocation.fit_pod(
            containers,
            plan.request.n_init,
            {BACKEND: node.devices},
            fitter,
            policy=device_policy,
            weights=plan.policies.weights,
        )

    def may_fit(self, plan: PodPlan, summary: BackendSummary) -> bool:
        """The extender's cheap capacity check: ``False`` is certain, ``True`` needs the fit."""
        return all(summary.may_fit(request, strict=True) for request in plan.device_requests)

    def score(self, plan: PodPlan, before: NodeState, after: NodeState) -> float:
        """The node policy's score: the placement's for a pod-aware policy, else HAMi's usage score."""
        node_policy = plan.policies.node
        if node_policy.placement is not None:
            return float(node_policy.placement.score(before, plan.shape, after))
        return float(node_policy.score(before.devices))

    def deterministic(self, plan: PodPlan) -> bool:
        placement = plan.policies.node.placement
        return placement is None or placement.deterministic
