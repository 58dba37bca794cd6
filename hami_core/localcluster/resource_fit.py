"""kube-scheduler's node-level filters and default score as pure functions over API objects.

What the stand-in checks before any extender sees a node, with kube-scheduler's failure reasons:
``node(s) were unschedulable`` (NodeUnschedulable), ``node(s) didn't match Pod's node affinity/selector``
(nodeSelector only), and NodeResourcesFit (``Insufficient <resource>``, ``Too many pods``) against
allocatable minus the requests of pods already on the node. Resources an extender manages with
``ignoredByScheduler`` are skipped, as kube-scheduler does. Taints, affinity terms and topology spread
are not emulated. Quantities are compared exactly (``fractions.Fraction``), never as floats.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Mapping
from fractions import Fraction

from hami_core.kube.objects import Node
from hami_core.pods import ContainerView
from hami_core.pods import PodView
from hami_core.quantity import parse_quantity

MAX_NODE_SCORE = 100
UNSCHEDULABLE_NODE = "node(s) were unschedulable"
SELECTOR_MISMATCH = "node(s) didn't match Pod's node affinity/selector"
TOO_MANY_PODS = "Too many pods"


_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_DECIMAL_SUFFIXES = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}


def canonical_quantity(value: str | int | float) -> str:
    """A quantity as kube-apiserver writes it back (``"1000"`` -> ``"1k"``, ``"1024Mi"`` -> ``"1Gi"``).

    The input's format is kept (binary suffix, decimal exponent, else decimal SI) and the value is
    written with the largest unit that keeps an integer mantissa, rounded up to nano units; a binary
    value below 1024 or with a fraction is written decimal, as apimachinery's ``Quantity`` does.

    Raises:
        QuantityError: not a quantity.
    """
    number = parse_quantity(value)
    text = str(value)
    binary = text.endswith(_BINARY_SUFFIXES[1:])
    if binary and number.denominator == 1 and abs(number) >= 1024:
        mantissa, power = int(number), 0
        while power < len(_BINARY_SUFFIXES) - 1 and mantissa % 1024 == 0:
            mantissa, power = mantissa // 1024, power + 1
        return f"{mantissa}{_BINARY_SUFFIXES[power]}"
    nanos, exponent = math.ceil(number * 10**9), -9
    if nanos == 0:
        return "0"
    while exponent < 18 and nanos % 1000 == 0:
        nanos, exponent = nanos // 1000, exponent + 3
    if "e" in text.lower() and not binary:
        return f"{nanos}e{exponent}" if exponent else str(nanos)
    return f"{nanos}{_DECIMAL_SUFFIXES[exponent]}"


def _container_requests(container: ContainerView) -> dict[str, Fraction]:
    # An unset request defaults to the limit (the API server's defaulting; extended resources rely on it).
    merged = {**container.limits, **container.requests}
    return {name: parse_quantity(quantity) for name, quantity in merged.items()}


def pod_requests(pod: PodView) -> dict[str, Fraction]:
    """Effective requests: the larger of the containers' sum and any single init container, plus overhead."""
    total: dict[str, Fraction] = {}
    for container in pod.app_containers:
        for name, amount in _container_requests(container).items():
            total[name] = total.get(name, Fraction(0)) + amount
    for container in pod.init_containers:
        for name, amount in _container_requests(container).items():
            total[name] = max(total.get(name, Fraction(0)), amount)
    for name, quantity in pod.overhead.items():
        total[name] = total.get(name, Fraction(0)) + parse_quantity(quantity)
    return total


def requested_on_node(pods: Iterable[PodView]) -> dict[str, Fraction]:
    """Summed requests of the given pods, with ``pods`` counting one per pod."""
    total: dict[str, Fraction] = {"pods": Fraction(0)}
    for pod in pods:
        total["pods"] += 1
        for name, amount in pod_requests(pod).items():
            total[name] = total.get(name, Fraction(0)) + amount
    return total


def node_failures(
    pod: PodView, node: Node, requested: Mapping[str, Fraction], *, ignored: Collection[str] = ()
) -> list[str]:
    """Why ``pod`` cannot go to ``node``, in kube-scheduler's words; empty when it fits.

    Args:
        pod: the pending pod.
        node: the candidate node.
        requested: what pods already on the node request (``requested_on_node``).
        ignored: resource names kube-scheduler leaves to an extender (``ignoredByScheduler``).
    """
    if (node.get("spec") or {}).get("unschedulable"):
        return [UNSCHEDULABLE_NODE]
    selector = pod.node_selector
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(key) != value for key, value in selector.items()):
        return [SELECTOR_MISMATCH]
    allocatable = {
        name: parse_quantity(quantity)
        for name, quantity in ((node.get("status") or {}).get("allocatable") or {}).items()
    }
    failures = []
    if requested.get("pods", 0) + 1 > allocatable.get("pods", Fraction(0)):
        failures.append(TOO_MANY_PODS)
    for name, amount in sorted(pod_requests(pod).items()):
        if amount <= 0 or name in ignored:
            continue
        if requested.get(name, Fraction(0)) + amount > allocatable.get(name, Fraction(0)):
            failures.append(f"Insufficient {name}")
    return failures


def least_allocated_score(pod: PodView, node: Node, requested: Mapping[str, Fraction]) -> int:
    """NodeResourcesFit's default LeastAllocated score over cpu and memory, 0..100."""
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    wanted = pod_requests(pod)
    scores = []
    for name in ("cpu", "memory"):
        capacity = parse_quantity(allocatable.get(name, "0"))
        if capacity <= 0:
            scores.append(Fraction(0))
            continue
        used = requested.get(name, Fraction(0)) + wanted.get(name, Fraction(0))
        scores.append(max(Fraction(0), (capacity - used) * MAX_NODE_SCORE / capacity))
    return int(sum(scores) / len(scores))


def fit_error_message(node_count: int, reasons: Mapping[str, Iterable[str]]) -> str:
    """kube-scheduler's FitError text: ``0/3 nodes are available: 1 Insufficient cpu, 2 <extender reason>.``

    Args:
        node_count: every node considered (NumAllNodes).
        reasons: each failed node's reasons; equal reasons are counted, then sorted as strings.
    """
    histogram: dict[str, int] = {}
    for node_reasons in reasons.values():
        for reason in node_reasons:
            histogram[reason] = histogram.get(reason, 0) + 1
    message = f"0/{node_count} nodes are available:"
    counted = sorted(f"{count} {reason}" for reason, count in histogram.items())
    if counted:
        message += f" {', '.join(counted)}."
    return message
