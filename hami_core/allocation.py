"""In-node device picking and scoring that every backend reuses (``specs/hami-wire.md`` 3.4-3.7).

Owns HAMi's vendor-neutral device maths: the device score and ordering, the per-device ``Fit`` loop,
the per-node procedure over init and app containers, the node score, and the collapse of a pod's
per-container devices into what it books on each device. Vendor knowledge arrives already resolved
in :class:`FitRules` (type and UUID filters, cordon list, pair scores), so this module reads no
annotation, does no I/O and never names a vendor. It must stay pure: every function returns new
values and leaves its inputs untouched.

Scores are computed in float32 like HAMi (each operation rounded), so ties, and therefore device
and node order, come out as in the Go scheduler.
"""

from __future__ import annotations

import itertools
import math
import struct
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Protocol

import attrs

from hami_core import codec
from hami_core.devices import MEM_PERCENTAGE_UNSET
from hami_core.devices import ContainerDevice
from hami_core.devices import ContainerDevices
from hami_core.devices import DeviceRequest
from hami_core.devices import DeviceUsage
from hami_core.devices import FitResult
from hami_core.devices import PodDevices
from hami_core.devices import ScoringWeights
from hami_core.errors import BackendError

# Device policy tokens (values of the pod's GPU scheduler policy annotation).
POLICY_BINPACK = "binpack"
POLICY_SPREAD = "spread"
POLICY_NUMA = "numa"
POLICY_MUTEX = "mutex"
POLICY_TOPOLOGY_AWARE = "topology-aware"

#: Device mode of a GPU split into MIG instances.
MODE_MIG = "mig"

#: ``Weight`` in HAMi's score formulas.
_SCORE_SCALE = 10.0
#: A request asking for all of a 100-core device wants it alone (HAMi's exclusive-card rule).
_FULL_CORES = 100
#: HAMi's "no NUMA seen yet" marker in the NUMA-bind run.
_NO_NUMA = -1
_CHAIN_KEYS = (POLICY_BINPACK, POLICY_SPREAD, POLICY_NUMA)
_FLOAT32 = struct.Struct("f")

#: Weights when a pod sets none (slot, core and memory alike).
DEFAULT_WEIGHTS = ScoringWeights()


#: Integers up to this magnitude convert to float32 exactly.
_F32_EXACT = 1 << 24


def _f32(value: float) -> float:
    """``value`` rounded to the nearest float32, as each Go float32 operation does.

    Rounding a float64 result of one ``+ - * /`` on float32 operands gives the float32 result
    exactly (float64 has more than twice float32's precision), so emulating Go costs one call
    per operation.
    """
    try:
        return float(_FLOAT32.unpack(_FLOAT32.pack(value))[0])
    except OverflowError:
        return math.copysign(math.inf, value)


def _f32_ratio(numerator: int, denominator: int) -> float:
    """Go's ``float32(numerator) / float32(denominator)``; skips the exact conversions."""
    top = float(numerator) if -_F32_EXACT <= numerator <= _F32_EXACT else _f32(numerator)
    bottom = float(denominator) if -_F32_EXACT <= denominator <= _F32_EXACT else _f32(denominator)
    return _f32(top / bottom)


def _f32_weighted(weight: int, term: float) -> float:
    """Go's ``float32(weight) * term``; weight 1, the default, is exact."""
    return term if weight == 1 else _f32(_f32(weight) * term)


def _accept_device(device: DeviceUsage) -> bool:
    return True


def _accept_uuid(uuid: str) -> bool:
    return True


@attrs.frozen
class FitRules:
    """A backend's vendor-specific view of one pod on one node, already resolved.

    Args:
        request_type: the device family this backend serves (``"NVIDIA"``); a device belongs to
            it when its type contains this, case-insensitively, and a request must carry exactly
            this type (HAMi's ``checkType`` equality).
        type_ok: the backend's type and mode include/exclude rules for one device.
        uuid_ok: the backend's UUID include/exclude rules.
        cordoned: UUIDs an admin has cordoned on the node.
        numa_bind: whether the pod asked for all its devices on one NUMA node.
        pair_scores: per UUID, the link score to each other UUID (topology-aware picking).
        result_type: the type written into each :class:`ContainerDevice`; defaults to
            ``request_type``.
        extra_check: a further per-device check run where HAMi checks the namespace quota (step
            9): it gets the device, the entry that would be given, and the entries this container
            already took, and returns a reason key to reject the device or ``None``.
    """

    request_type: str
    type_ok: Callable[[DeviceUsage], bool] = _accept_device
    uuid_ok: Callable[[str], bool] = _accept_uuid
    cordoned: frozenset[str] = frozenset()
    numa_bind: bool = False
    pair_scores: Mapping[str, Mapping[str, int]] = attrs.field(factory=dict, hash=False)
    result_type: str = attrs.field(default=attrs.Factory(lambda self: self.request_type, takes_self=True))
    extra_check: Callable[[DeviceUsage, ContainerDevice, ContainerDevices], str | None] | None = None


@attrs.frozen
class DevicePolicy:
    """A parsed device policy (``spread``, ``binpack``, ``mutex``, ``binpack,numa``, ...).

    Args:
        keys: sort keys by priority. A single value gives one of ``binpack``, ``spread`` or
            ``mutex``; a chain gives ``binpack``/``spread``/``numa`` in written order.
        chain: whether HAMi's chain ordering applies (a comma list, or bare ``numa``): keys in
            order, then device index, with NUMA forced first under NUMA bind. A single value uses
            HAMi's fixed orderings instead.
        mutex: only idle devices may be taken.
        topology_aware: collect every fitting device, then choose by pair scores.
    """

    keys: tuple[str, ...] = (POLICY_SPREAD,)
    chain: bool = False
    mutex: bool = False
    topology_aware: bool = False


def parse_device_policy(value: str) -> DevicePolicy:
    """Parse a device policy as HAMi's ``gpu_policy.go`` reads it.

    Any single value other than ``binpack`` or ``mutex`` (``topology-aware``, typos, empty) sorts
    like ``spread``, HAMi's default. The ``mutex`` and ``topology-aware`` flags are set wherever
    the token appears in the comma list.

    Args:
        value: the policy string, e.g. the pod's GPU scheduler policy annotation.

    Returns:
        The sort keys and filter flags.
    """
    tokens = [token.strip() for token in value.split(",")]
    mutex = POLICY_MUTEX in tokens
    topology_aware = POLICY_TOPOLOGY_AWARE in tokens
    if "," in value or value == POLICY_NUMA:
        keys = tuple(dict.fromkeys(token for token in tokens if token in _CHAIN_KEYS))
        return DevicePolicy(
            keys=keys or (POLICY_SPREAD,), chain=True, mutex=mutex, topology_aware=topology_aware
        )
    single = value if value in (POLICY_BINPACK, POLICY_MUTEX) else POLICY_SPREAD
    return DevicePolicy(keys=(single,), chain=False, mutex=mutex, topology_aware=topology_aware)


def device_score(device: DeviceUsage, requests: Sequence[DeviceRequest], weights: ScoringWeights) -> float:
    """How full ``device`` would be with one container's requests on it (HAMi's ``ComputeScore``).

    ``10 x (Ws*slots + Wc*cores + Wm*memory)``, each term a used fraction. Only requests whose
    type equals the device type exactly count (each as one slot, whatever its ``nums``); real
    NVIDIA devices carry model names, so for them the score reflects current usage only.

    Args:
        device: the device with its current usage.
        requests: every request of the container being placed.
        weights: the slot, core and memory weights.

    Returns:
        The float32 score; 0 for a device with no slots, cores or memory.
    """
    if device.count == 0 or device.totalcore == 0 or device.totalmem == 0:
        return 0.0
    slots = cores = mem = 0
    for request in requests:
        if request.type != device.type:
            continue
        slots += 1
        cores += request.coresreq
        if request.mem_percentage_req not in (0, MEM_PERCENTAGE_UNSET):
            mem += device.totalmem * request.mem_percentage_req // 100
        else:
            mem += request.memreq
    slot_term = _f32_weighted(weights.slot, _f32_ratio(slots + device.used, device.count))
    core_term = _f32_weighted(weights.core, _f32_ratio(cores + device.usedcores, device.totalcore))
    mem_term = _f32_weighted(weights.memory, _f32_ratio(mem + device.usedmem, device.totalmem))
    return _f32(_SCORE_SCALE * _f32(_f32(slot_term + core_term) + mem_term))


_SortKey = Callable[[DeviceUsage, float], tuple[float, ...]]


def _sort_key(policy: DevicePolicy, numa_bind: bool) -> _SortKey:
    """The ascending sort key of HAMi's ``DeviceUsageList.Less`` for a device and its score."""
    if policy.chain:
        keys = policy.keys
        if numa_bind and keys[0] != POLICY_NUMA:
            keys = (POLICY_NUMA, *(k for k in keys if k != POLICY_NUMA))
        return lambda device, score: (
            *(score if k == POLICY_BINPACK else -score if k == POLICY_SPREAD else device.numa for k in keys),
            device.index,
        )
    if policy.keys[0] == POLICY_MUTEX:
        return lambda device, score: (-device.used, device.numa)
    if policy.keys[0] == POLICY_BINPACK:
        if numa_bind:
            return lambda device, score: (-device.numa, score)
        return lambda device, score: (score, device.numa)
    if numa_bind:
        return lambda device, score: (device.numa, -score)
    return lambda device, score: (-score, device.numa)


def order_devices(
    devices: Sequence[DeviceUsage],
    requests: Sequence[DeviceRequest],
    policy: DevicePolicy,
    weights: ScoringWeights,
    numa_bind: bool,
) -> list[DeviceUsage]:
    """Sort devices ascending by HAMi's ``Less``; fitting takes them from the end.

    The sort is stable, so ties keep the order given (HAMi re-sorts one list per container).

    Args:
        devices: one backend's devices with current usage.
        requests: the container's requests (they weigh into each device's score).
        policy: the parsed device policy.
        weights: the device score weights.
        numa_bind: whether the pod binds to one NUMA node (keeps each NUMA run contiguous).

    Returns:
        A new list, most preferred device last.
    """
    key = _sort_key(policy, numa_bind)
    scored = [(key(device, device_score(device, requests, weights)), device) for device in devices]
    scored.sort(key=lambda item: item[0])
    return [device for _, device in scored]


def _belongs(device: DeviceUsage, request_type: str) -> bool:
    return request_type.lower() in device.type.lower()


def _pair_score(rules: FitRules, first: str, second: str) -> int:
    return rules.pair_scores.get(first, {}).get(second, 0)


def _loneliest(candidates: Sequence[ContainerDevice], rules: FitRules) -> ContainerDevice:
    """The candidate with the lowest pair-score sum to the others, first on ties.

    Giving a one-device request the worst-connected card keeps well-connected groups free.
    """
    return min(
        candidates,
        key=lambda one: sum(
            _pair_score(rules, one.uuid, other.uuid) for other in candidates if other.uuid != one.uuid
        ),
    )


def _best_group(candidates: Sequence[ContainerDevice], nums: int, rules: FitRules) -> ContainerDevices:
    """The ``nums``-combination, in candidate order, with the highest pair-score sum, first on ties."""
    best: ContainerDevices = ()
    best_score = -1
    for group in itertools.combinations(candidates, nums):
        score = sum(_pair_score(rules, a.uuid, b.uuid) for a, b in itertools.combinations(group, 2))
        if not best or score > best_score:
            best, best_score = group, score
    return best


def fit_container(
    request: DeviceRequest,
    devices: Sequence[DeviceUsage],
    rules: FitRules,
    policy: DevicePolicy,
) -> FitResult:
    """Pick devices for one container's request (HAMi's NVIDIA ``Fit``, shared by all vendors).

    ``devices`` are the backend's devices in :func:`order_devices` order; only those of
    ``rules.request_type`` take part, visited from the last to the first. Each device is checked
    in HAMi's order (health, cordon, type, NUMA run, UUID, slots, mutex, extra check, memory,
    cores, exclusive card, compute exhausted, MIG) and the first failing check is counted. The
    namespace quota is the caller's ``rules.extra_check``. MIG devices never fit
    (``CardMigTopologyInfeasible``): the usage snapshot does not carry the placements already
    reserved on them, so any placement chosen here could collide; for the same reason the
    ``NodeInsufficientDevice`` precheck also applies when MIG devices are present (HAMi skips it).

    Args:
        request: what the container asks of this backend.
        devices: the backend's devices with current usage, sorted.
        rules: the backend's resolved filters for this pod and node.
        policy: the parsed device policy (mutex, topology-aware).

    Returns:
        On success the devices given, each with ``idx`` set; on failure the rejection counts
        over the devices considered. Too few devices of the type at all gives
        ``NodeInsufficientDevice`` with ``considered == 0`` (HAMi reports it bare).
    """
    if request.nums <= 0:
        return FitResult(ok=True)
    typed = [device for device in devices if _belongs(device, rules.request_type)]
    if request.nums > len(typed):
        return FitResult(ok=False, reasons={codec.NODE_INSUFFICIENT_DEVICE: 1}, considered=0)

    reasons: Counter[str] = Counter()
    picked: list[ContainerDevice] = []
    remaining = request.nums
    prev_numa = _NO_NUMA
    cores = min(request.coresreq, _FULL_CORES)
    type_matches = request.type == rules.request_type
    for device in reversed(typed):
        if not device.health:
            reasons[codec.CARD_NOT_HEALTH] += 1
            continue
        if device.id in rules.cordoned:
            reasons[codec.CARD_CORDONED] += 1
            continue
        if not (type_matches and rules.type_ok(device)):
            reasons[codec.CARD_TYPE_MISMATCH] += 1
            continue
        if rules.numa_bind and device.numa != prev_numa:
            # A new NUMA node starts a new run; what the previous run took does not count.
            if remaining != request.nums:
                reasons[codec.NUMA_NOT_FIT] += len(picked)
            remaining = request.nums
            prev_numa = device.numa
            picked = []
        if not rules.uuid_ok(device.id):
            reasons[codec.CARD_UUID_MISMATCH] += 1
            continue
        if device.count <= device.used:
            reasons[codec.CARD_TIME_SLICING_EXHAUSTED] += 1
            continue
        if policy.mutex and device.used > 0:
            reasons[codec.EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT] += 1
            continue
        candidate = ContainerDevice(
            uuid=device.id,
            type=rules.result_type,
            usedmem=request.memory_on(device.totalmem),
            usedcores=cores,
            idx=device.index,
        )
        if rules.extra_check is not None:
            refusal = rules.extra_check(device, candidate, tuple(picked))
            if refusal is not None:
                reasons[refusal] += 1
                continue
        if device.free_mem < candidate.usedmem:
            reasons[codec.CARD_INSUFFICIENT_MEMORY] += 1
            continue
        if device.free_cores < cores:
            reasons[codec.CARD_INSUFFICIENT_CORE] += 1
            continue
        if device.totalcore == _FULL_CORES and cores == _FULL_CORES and device.used > 0:
            reasons[codec.EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT] += 1
            continue
        # A container asking no cores would still compete on a device whose cores are all taken.
        if device.totalcore != 0 and device.usedcores == device.totalcore and cores == 0:
            reasons[codec.CARD_COMPUTE_UNITS_EXHAUSTED] += 1
            continue
        if device.mode == MODE_MIG:
            reasons[codec.CARD_MIG_TOPOLOGY_INFEASIBLE] += 1
            continue
        picked.append(candidate)
        if not policy.topology_aware:
            remaining -= 1
            if remaining == 0:
                return FitResult(ok=True, devices=tuple(picked), considered=len(typed))

    if policy.topology_aware and len(picked) >= request.nums:
        if len(picked) == request.nums:
            chosen: ContainerDevices = tuple(picked)
        elif request.nums == 1:
            chosen = (_loneliest(picked, rules),)
        else:
            chosen = _best_group(picked, request.nums, rules)
        return FitResult(ok=True, devices=chosen, considered=len(typed))
    if picked:
        reasons[codec.ALLOCATED_CARDS_INSUFFICIENT_REQUEST] = len(picked)
    return FitResult(ok=False, reasons=dict(reasons), considered=len(typed))


class ContainerFitter(Protocol):
    """A backend's fit for one request, as :func:`fit_pod` calls it.

    ``devices`` are the backend's devices in :func:`order_devices` order; ``earlier`` holds the
    devices already given to this pod's earlier containers (init first), which a quota check needs.
    """

    def __call__(
        self,
        backend: str,
        request: DeviceRequest,
        devices: Sequence[DeviceUsage],
        earlier: PodDevices,
    ) -> FitResult: ...


@attrs.frozen
class PodFit:
    """Whether a whole pod fits one node, and what it takes there.

    Args:
        ok: every container fitted.
        devices: per backend that any container asks for, one entry per container (init
            first), empty where the container asks nothing of that backend. (HAMi v2.10 pads by
            device type string instead and can drop entries; see the spec's padding caveat.)
        usage: per backend, the node's devices (in the order given) with the pod booked: per
            device the larger of the app containers' total and the busiest init container.
        reasons: on failure, the rejection counts of the first request that did not fit.
        considered: the devices that request was tried on; 0 for ``NodeInsufficientDevice``.
    """

    ok: bool
    devices: PodDevices = attrs.field(factory=PodDevices)
    usage: Mapping[str, tuple[DeviceUsage, ...]] = attrs.field(factory=dict, hash=False)
    reasons: Mapping[str, int] = attrs.field(factory=dict, hash=False)
    considered: int = 0

    @property
    def reason(self) -> str:
        """The failure as HAMi's ``GenReason`` writes it into ``FailedNodes``.

        Items ``"<count>/<considered> <Reason>"`` sorted as strings and joined by ``", "``;
        the bare key when nothing was considered (HAMi's ``NodeInsufficientDevice``).
        """
        if self.considered == 0:
            return ", ".join(sorted(self.reasons))
        return ", ".join(sorted(f"{count}/{self.considered} {key}" for key, count in self.reasons.items()))


def _book(devices: list[DeviceUsage], given: ContainerDevices, backend: str) -> None:
    """Book ``given`` on the working list in place (HAMi's ``AddResourceUsage``)."""
    positions = {device.id: i for i, device in enumerate(devices)}
    for entry in given:
        position = positions.get(entry.uuid)
        if position is None:
            raise BackendError(
                f"backend {backend!r} picked device {entry.uuid!r}, which is not among the node's "
                "devices it was given; its fit must return devices from its input"
            )
        devices[position] = devices[position].add(entry)


def _fit_requests(
    wanted: Mapping[str, DeviceRequest],
    state: dict[str, list[DeviceUsage]],
    fit: ContainerFitter,
    earlier: PodDevices,
    policy: DevicePolicy,
    weights: ScoringWeights,
    numa_bind: bool,
) -> tuple[dict[str, ContainerDevices], FitResult | None]:
    """Fit one container's requests on ``state``, booking them there; the failure if any."""
    requests = list(wanted.values())
    given: dict[str, ContainerDevices] = {}
    for backend, request in wanted.items():
        ordered = order_devices(state.get(backend, ()), requests, policy, weights, numa_bind)
        state[backend] = ordered
        result = fit(backend=backend, request=request, devices=ordered, earlier=earlier)
        if not result.ok:
            return given, result
        _book(ordered, result.devices, backend)
        given[backend] = result.devices
    return given, None


def _peak(app: Sequence[DeviceUsage], others: Sequence[Sequence[DeviceUsage]]) -> tuple[DeviceUsage, ...]:
    """``app`` with each device's used, cores and memory raised to their peak in ``others``."""
    peaks = {device.id: device for device in app}
    for devices in others:
        for device in devices:
            top = peaks[device.id]
            peaks[device.id] = attrs.evolve(
                top,
                used=max(top.used, device.used),
                usedcores=max(top.usedcores, device.usedcores),
                usedmem=max(top.usedmem, device.usedmem),
            )
    return tuple(peaks[device.id] for device in app)


def fit_pod(
    containers: Sequence[Mapping[str, DeviceRequest]],
    n_init: int,
    devices_by_backend: Mapping[str, Sequence[DeviceUsage]],
    fit: ContainerFitter,
    *,
    policy: DevicePolicy,
    weights: ScoringWeights = DEFAULT_WEIGHTS,
    numa_bind: bool = False,
) -> PodFit:
    """Fit a pod's containers on one node (HAMi's ``scoreNode``, without the node score).

    Init containers run one after another, so each is fitted on a fresh copy of the node's
    usage. App containers run together, so they are fitted cumulatively, each seeing what the
    earlier ones took, on a device order that carries over from one container to the next.
    Before each request the backend's devices are ordered by :func:`order_devices` with all of
    that container's requests. The node's base score is :func:`node_score` of the input usage.

    Args:
        containers: per container (init first), backend name to request; requests asking for no
            device are ignored.
        n_init: how many of ``containers`` are init containers.
        devices_by_backend: the node's devices with current usage, per backend.
        fit: the backend fit called per request (usually :func:`fit_container` with its rules).
        policy: the parsed device policy, for ordering.
        weights: the device score weights.
        numa_bind: whether the pod binds to one NUMA node, for ordering.

    Returns:
        The pod's devices and the node usage with it booked, or the first failure.

    Raises:
        BackendError: ``fit`` returned a device that is not among those it was given.
    """
    original = {backend: list(devices) for backend, devices in devices_by_backend.items()}
    wanted_per_container = [
        {backend: request for backend, request in container.items() if request.nums > 0}
        for container in containers
    ]
    requested = list(dict.fromkeys(backend for wanted in wanted_per_container for backend in wanted))
    given: dict[str, list[ContainerDevices]] = {backend: [] for backend in requested}
    app_state = {backend: list(devices) for backend, devices in original.items()}
    init_states: list[dict[str, list[DeviceUsage]]] = []
    for position, wanted in enumerate(wanted_per_container):
        picks: dict[str, ContainerDevices] = {}
        if wanted:
            earlier = PodDevices(by_backend={backend: tuple(lists) for backend, lists in given.items()})
            if position < n_init:
                state = {backend: list(devices) for backend, devices in original.items()}
                init_states.append(state)
            else:
                state = app_state
            picks, failure = _fit_requests(wanted, state, fit, earlier, policy, weights, numa_bind)
            if failure is not None:
                return PodFit(ok=False, reasons=dict(failure.reasons), considered=failure.considered)
        for backend in requested:
            given[backend].append(picks.get(backend, ()))

    # Keep the input order; the working lists were re-sorted along the way.
    usage = {
        backend: _peak(
            _in_order(devices, app_state.get(backend, ())),
            [state.get(backend, ()) for state in init_states],
        )
        for backend, devices in original.items()
    }
    return PodFit(
        ok=True,
        devices=PodDevices(by_backend={backend: tuple(lists) for backend, lists in given.items()}),
        usage=usage,
    )


def _in_order(reference: Sequence[DeviceUsage], devices: Sequence[DeviceUsage]) -> list[DeviceUsage]:
    """``devices`` rearranged to the order of ``reference`` (matched by id)."""
    by_id = {device.id: device for device in devices}
    return [by_id.get(device.id, device) for device in reference]


def node_score(devices: Iterable[DeviceUsage]) -> float:
    """How full a node is across all its devices (HAMi's ``ComputeDefaultScore``).

    ``10 x (used/count + usedcores/totalcore + usedmem/totalmem)`` over the sums of every
    device of every backend, in float32; 0 when any total is 0. Backends' own node scores are
    added by the caller.

    Args:
        devices: every device of the node, with its usage before the pod.

    Returns:
        The float32 base score; the node policy picks the highest (binpack) or lowest (spread).
    """
    used = usedcores = usedmem = count = totalcore = totalmem = 0
    for device in devices:
        used += device.used
        usedcores += device.usedcores
        usedmem += device.usedmem
        count += device.count
        totalcore += device.totalcore
        totalmem += device.totalmem
    if count == 0 or totalcore == 0 or totalmem == 0:
        return 0.0
    slot_term = _f32_ratio(used, count)
    core_term = _f32_ratio(usedcores, totalcore)
    mem_term = _f32_ratio(usedmem, totalmem)
    return _f32(_SCORE_SCALE * _f32(_f32(slot_term + core_term) + mem_term))


@attrs.frozen
class DeviceBooking:
    """What a pod holds on one device: the memory and cores, and how many slots it occupies."""

    device: ContainerDevice
    slots: int


def collapse_usage(containers: Sequence[ContainerDevices], n_init: int) -> tuple[DeviceBooking, ...]:
    """One backend's per-container devices of a pod collapsed to what it holds per device.

    HAMi's ``CollapseInitContainerUsage``: init containers run one at a time, so they hold
    their largest memory and cores and one slot; app containers run together, so their memory,
    cores and occurrences add up. The pod holds the larger of the two, with at least one slot.
    For the app-only footprint once init containers have finished, pass ``containers[n_init:]``
    with ``n_init=0``.

    Args:
        containers: the backend's device list per container, init containers first.
        n_init: how many of ``containers`` are init containers.

    Returns:
        One booking per device UUID, sorted by UUID; each keeps the first entry's type.
    """
    kinds: dict[str, str] = {}
    init_peak: dict[str, tuple[int, int]] = {}
    app_sum: dict[str, tuple[int, int, int]] = {}
    for position, entries in enumerate(containers):
        for entry in entries:
            kinds.setdefault(entry.uuid, entry.type)
            if position < n_init:
                mem, cores = init_peak.get(entry.uuid, (0, 0))
                init_peak[entry.uuid] = (max(mem, entry.usedmem), max(cores, entry.usedcores))
            else:
                mem, cores, slots = app_sum.get(entry.uuid, (0, 0, 0))
                app_sum[entry.uuid] = (mem + entry.usedmem, cores + entry.usedcores, slots + 1)
    bookings = []
    for uuid in sorted(kinds):
        init_mem, init_cores = init_peak.get(uuid, (0, 0))
        app_mem, app_cores, app_slots = app_sum.get(uuid, (0, 0, 0))
        bookings.append(
            DeviceBooking(
                device=ContainerDevice(
                    uuid=uuid,
                    type=kinds[uuid],
                    usedmem=max(init_mem, app_mem),
                    usedcores=max(init_cores, app_cores),
                ),
                slots=max(app_slots, 1),
            )
        )
    return tuple(bookings)
