"""Scoring policies: the built-in node policies, policy choice per pod, and the incremental node ranking.

The built-in ``binpack`` and ``spread`` node policies are contributed through the same
``hami_scoring_policies`` hook as any plugin's (:class:`BuiltinPolicies`, registered by the scheduler
as a core plugin), so a duplicate name is refused by :func:`hami_core.plugins.load_backends`. Both
score a node on its usage *before* the pod (HAMi's ``ComputeDefaultScore``, ``specs/hami-wire.md``
3.7), which does not depend on the fit: that is what lets the cache keep every node policy's ranking
sorted as usage changes (:class:`Ranking`) and lets filtering fit nodes in preference order and stop at
the first that fits. Device policies are HAMi's chains (``binpack``, ``spread``, ``topology-aware``,
``numa``, ``mutex`` and comma chains) or a plugin's ``device`` policy, which reorders the devices a
backend's fit tries first. This module reads pod annotations but does no I/O.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Mapping
from collections.abc import Sequence

import attrs

from hami_core import allocation
from hami_core import codec
from hami_core.devices import DeviceUsage
from hami_core.devices import ScoringWeights
from hami_core.errors import CodecError
from hami_core.hookspecs import ScoringPolicy
from hami_core.hookspecs import hookimpl

_log = logging.getLogger(__name__)

BINPACK = "binpack"
SPREAD = "spread"


def binpack_score(devices: Sequence[DeviceUsage]) -> float:
    """HAMi's node score: the fuller the node, the higher (binpack prefers the highest)."""
    return allocation.node_score(devices)


def spread_score(devices: Sequence[DeviceUsage]) -> float:
    """The negated node score: the emptier the node, the higher (spread)."""
    return -allocation.node_score(devices)


class BuiltinPolicies:
    """The core plugin that contributes the built-in node policies through the policy hook."""

    @hookimpl
    def hami_scoring_policies(self) -> list[ScoringPolicy]:
        """``binpack`` and ``spread``, HAMi's ``--node-scheduler-policy`` values."""
        return [
            ScoringPolicy(name=BINPACK, kind="node", score=binpack_score),
            ScoringPolicy(name=SPREAD, kind="node", score=spread_score),
        ]


def node_policies(policies: Mapping[str, ScoringPolicy]) -> dict[str, ScoringPolicy]:
    """The ``node`` policies among every registered policy, by name."""
    return {name: policy for name, policy in policies.items() if policy.kind == "node"}


@attrs.frozen
class DevicePlan:
    """How devices inside a node are ordered for one pod.

    Args:
        text: the policy as written (passed to backends in :class:`~hami_core.devices.FitContext`).
        policy: the parsed HAMi policy used by the shared fit.
        custom: a plugin device policy that reorders devices before each fit, or ``None``.
    """

    text: str
    policy: allocation.DevicePolicy
    custom: ScoringPolicy | None = None

    def order(self, devices: Sequence[DeviceUsage]) -> Sequence[DeviceUsage]:
        """``devices`` re-sorted by the custom policy (most preferred last, as fit takes from the end)."""
        custom = self.custom
        if custom is None:
            return devices
        return sorted(devices, key=lambda device: custom.score((device,)))


@attrs.frozen
class PodPolicies:
    """The policies one pod is scheduled with: node policy, device plan and score weights."""

    node: ScoringPolicy
    device: DevicePlan
    weights: ScoringWeights


def unknown_node_policy(name: str, policies: Mapping[str, ScoringPolicy]) -> str:
    """The message for a node policy name no plugin registered, listing the known ones."""
    known = ", ".join(sorted(node_policies(policies))) or "none"
    return f"unknown node scheduler policy {name!r} (known: {known})"


def resolve_node_policy(
    annotations: Mapping[str, str], policies: Mapping[str, ScoringPolicy], default: str
) -> tuple[ScoringPolicy, str]:
    """A pod's node policy, as ``/filter`` and ``/prioritize`` both resolve it, and a warning.

    The pod's ``hami.io/node-scheduler-policy`` when it names a registered node policy; the
    configured ``default`` when it is absent or empty; also the default, with a warning saying so,
    when it names an unknown policy (the webhook denies such pods; this one bypassed it).

    Raises:
        KeyError: ``default`` is not a registered policy (the configuration is checked at start).
    """
    name = annotations.get(codec.NODE_SCHEDULER_POLICY) or default
    found = policies.get(name)
    if found is not None and found.kind == "node":
        return found, ""
    return policies[default], f"{unknown_node_policy(name, policies)}; scheduled with {default}"


def pod_policies(
    annotations: Mapping[str, str],
    policies: Mapping[str, ScoringPolicy],
    *,
    default_node: str,
    default_device: str,
    node: ScoringPolicy | None = None,
) -> PodPolicies:
    """The policies of a pod: its annotations first, then the configured defaults.

    Args:
        annotations: the pod's annotations.
        policies: every registered policy by name.
        default_node: the configured node policy (``scheduler.node_scheduler_policy``).
        default_device: the configured device policy (``scheduler.gpu_scheduler_policy``).
        node: the node policy already resolved (:func:`resolve_node_policy`); ``None`` resolves it
            here, strictly.

    Raises:
        CodecError: the node policy is not a registered node policy, or the scoring weights are
            malformed (HAMi's message).
    """
    if node is None:
        node_name = annotations.get(codec.NODE_SCHEDULER_POLICY) or default_node
        node = policies.get(node_name)
        if node is None or node.kind != "node":
            raise CodecError(unknown_node_policy(node_name, policies))
    device_text = annotations.get(codec.GPU_SCHEDULER_POLICY) or default_device
    custom = policies.get(device_text)
    if custom is not None and custom.kind == "device":
        plan = DevicePlan(text=device_text, policy=allocation.parse_device_policy(SPREAD), custom=custom)
    else:
        plan = DevicePlan(text=device_text, policy=allocation.parse_device_policy(device_text))
    weights = codec.parse_device_scoring_weights(annotations.get(codec.DEVICE_SCORING_WEIGHTS))
    return PodPolicies(node=node, device=plan, weights=weights)


class Ranking:
    """Node names sorted by one policy's score, most preferred first; updated one node at a time.

    Ties go to the node name (HAMi breaks them by goroutine timing). Not thread-safe: the cache
    updates it under its own lock and hands out copies.
    """

    def __init__(self, policy: ScoringPolicy) -> None:
        self.policy = policy
        self._keys: list[tuple[float, str]] = []
        self._by_node: dict[str, tuple[float, str]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def update(self, node: str, devices: Sequence[DeviceUsage]) -> None:
        """Place ``node`` by the policy's score of ``devices`` (its usage before any new pod).

        A plugin score that raises or is not a number ranks the node last rather than breaking
        the cache (the policy contract forbids both).
        """
        try:
            score = float(self.policy.score(devices))
        except Exception:
            _log.exception("node policy %r failed to score node %s", self.policy.name, node)
            score = -math.inf
        if math.isnan(score):
            score = -math.inf
        self.place(node, (-score, node))

    def place(self, node: str, key: tuple[float, str]) -> None:
        """Put ``node`` at ``key`` (another ranking's key: a subset ranking shares its order)."""
        old = self._by_node.get(node)
        if old == key:
            return
        if old is not None:
            del self._keys[bisect.bisect_left(self._keys, old)]
        bisect.insort(self._keys, key)
        self._by_node[node] = key

    def key(self, node: str) -> tuple[float, str] | None:
        return self._by_node.get(node)

    def remove(self, node: str) -> None:
        old = self._by_node.pop(node, None)
        if old is not None:
            del self._keys[bisect.bisect_left(self._keys, old)]

    def score(self, node: str) -> float | None:
        """The policy's score of ``node``, ``None`` when it is not ranked."""
        key = self._by_node.get(node)
        return None if key is None else -key[0]

    def entries(self) -> list[tuple[float, str]]:
        """A copy of the ``(-score, name)`` keys, most preferred first."""
        return self._keys.copy()

    def order(self, names: Sequence[str]) -> list[str]:
        """``names`` that are ranked, most preferred first (for a small candidate list)."""
        keyed = [(key, name) for name in names if (key := self._by_node.get(name)) is not None]
        keyed.sort()
        return [name for _, name in keyed]
