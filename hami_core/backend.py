"""The vendor contract: :class:`DeviceBackend`, the one class a device vendor writes.

Methods are grouped by the process that calls them (identity, admission, scheduling, node).
Only what every backend must supply is abstract: its name, resource names, annotation keys,
device discovery and ``allocate`` (which also returns the in-container shim's environment).
Everything else has a safe, documented default that follows HAMi's generic behaviour
(``specs/hami-wire.md``), so a minimal backend is small and a vendor overrides only where its
devices differ. Every method returns a named type, never a bare tuple or a loose dict.

The contract is versioned by :data:`CONTRACT_VERSION`; a backend states the version it was
written against in its ``contract_version`` class attribute and the plugin loader refuses a
different major version. The module also holds the helpers backends share for reading container
resources (Kubernetes quantities, limits before requests). It imports no vendor SDK and does no
I/O.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar

import attrs

from hami_core import allocation
from hami_core import codec
from hami_core.codec import VendorKeys
from hami_core.devices import MEM_PERCENTAGE_UNSET
from hami_core.devices import ContainerAllocation
from hami_core.devices import ContainerDevices
from hami_core.devices import DeviceInfo
from hami_core.devices import DeviceRequest
from hami_core.devices import DeviceUsage
from hami_core.devices import FitContext
from hami_core.devices import FitResult
from hami_core.devices import PodSingleDevice
from hami_core.errors import BackendError
from hami_core.errors import QuantityError
from hami_core.errors import echo
from hami_core.pods import ContainerView
from hami_core.pods import PodView
from hami_core.quantity import parse_quantity

#: The version of this contract and of :mod:`hami_core.sdk`. A minor bump (3.0 to 3.1) only adds:
#: methods with defaults that keep today's behaviour, optional arguments, SDK names; a backend
#: written for 3.0 runs unchanged. A major bump (to 4.0) removes or renames a method or SDK name,
#: changes a signature or what a method means; the plugin loader refuses a backend whose
#: ``contract_version`` has another major number.
CONTRACT_VERSION = "3.0"

#: HAMi keeps requests in Go ``int32``: larger ones are refused.
INT32_MAX = 2**31 - 1
#: HAMi reads the memory percentage as ``int64`` before clamping it to 100.
INT64_MAX = 2**63 - 1


@attrs.frozen
class ResourceNames:
    """The extended resource names a backend serves (HAMi's ``resource*Name`` settings).

    Args:
        count: how many devices (e.g. ``nvidia.com/gpu``); also the kubelet resource name.
        memory: MiB per device, times the backend's memory factor; empty if unsupported.
        memory_percentage: percent of each device's memory; empty if unsupported.
        cores: percent of each device's compute; empty if unsupported.
        priority: task priority handed to the shim; empty if unsupported.
    """

    count: str
    memory: str = ""
    memory_percentage: str = ""
    cores: str = ""
    priority: str = ""

    def all(self) -> tuple[str, ...]:
        """Every configured (non-empty) name, count first."""
        names = (self.count, self.memory, self.memory_percentage, self.cores, self.priority)
        return tuple(name for name in names if name)


@attrs.frozen
class RequestRules:
    """How a backend's container request is computed (HAMi's ``GenerateResourceRequests`` knobs).

    Args:
        memory_factor: the memory resource's unit in MiB (HAMi's ``memoryFactor``).
        default_memory: MiB taken when neither memory nor a percentage is asked; 0 means 100 %.
        default_cores: cores taken when the cores resource is absent.
    """

    memory_factor: int = 1
    default_memory: int = 0
    default_cores: int = 0


@attrs.frozen
class MutationResult:
    """What admission makes of one container.

    Args:
        has_resource: the container uses this backend, so the pod goes to hami's scheduler.
        container: the container as it should be after mutation; ``None`` leaves it unchanged.
        runtime_class_name: set as the pod's ``runtimeClassName`` when the pod has none.
        warnings: AdmissionReview warnings (well-formed but questionable requests).
    """

    has_resource: bool = False
    container: Mapping[str, object] | None = attrs.field(default=None, hash=False)
    runtime_class_name: str = ""
    warnings: tuple[str, ...] = ()


def whole_quantity(container: ContainerView, name: str, value: object, *, maximum: int = INT32_MAX) -> int:
    """``value`` of resource ``name`` as an integer of at most ``maximum`` in magnitude.

    Raises:
        BackendError: not a quantity, not a whole number, or out of range (Go's int32 by
            default); the message names the container and the resource.
    """
    try:
        number = parse_quantity(value)
    except QuantityError as err:
        raise QuantityError(f"container {container.label}: {name}: {err}") from err
    if number.denominator != 1:
        raise BackendError(f"container {container.label}: {name} must be a whole number, got {echo(value)}")
    if abs(number) > maximum:
        raise BackendError(
            f"container {container.label}: {name} {echo(value)} is out of range (at most {maximum})"
        )
    return int(number)


def _non_negative(container: ContainerView, name: str, value: object) -> int:
    amount = whole_quantity(container, name, value)
    if amount < 0:
        raise BackendError(f"container {container.label}: {name} must not be negative, got {echo(value)}")
    return amount


class DeviceBackend(abc.ABC):
    """A device vendor's implementation of the hami contract.

    Subclasses set ``contract_version`` (the :data:`CONTRACT_VERSION` they were written for) and
    implement the abstract members; the rest have defaults that follow HAMi's generic rules.
    The identity properties (``name``, ``resource_names``, ``keys``, ``device_type``) may be
    plain class attributes when their values are fixed. Instances are built by the plugin's
    ``hami_register_backends`` hook from ``config.backend(name)`` and must be cheap: no hardware
    access before :meth:`discover`.
    """

    #: The contract version this backend was written against, as a literal, e.g. ``"3.0"``.
    contract_version: ClassVar[str]

    # --- identity (every process) -------------------------------------------------------------

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The backend's one name: entry point, ``hami-backend-<name>``, Helm key ``backends.<name>``."""

    @property
    @abc.abstractmethod
    def resource_names(self) -> ResourceNames:
        """The extended resources this backend serves; unique across all loaded backends."""

    @property
    @abc.abstractmethod
    def keys(self) -> VendorKeys:
        """The node and pod annotation keys this backend reads and writes."""

    @property
    def device_type(self) -> str:
        """The request type (HAMi's ``CommonWord``, e.g. ``NVIDIA``) written into pod annotations.

        A node device belongs to this backend when its type contains this word, ignoring case
        (``NVIDIA-Tesla V100`` for ``NVIDIA``). Defaults to the upper-cased name.
        """
        return self.name.upper()

    @property
    def request_rules(self) -> RequestRules:
        """Memory factor and defaults used by :meth:`parse_request`; HAMi's NVIDIA defaults."""
        return RequestRules()

    # --- admission (webhook) ------------------------------------------------------------------

    def mutate_container(self, container: ContainerView, pod: PodView) -> MutationResult:
        """Decide whether ``container`` uses this backend, and adjust it if needed.

        The default changes nothing and reports a resource when the count resource is among the
        container's limits (what HAMi's MLU and DCU backends do). Vendors override it to add
        default resources or environment (NVIDIA's exclusive-core default, task priority).

        Args:
            container: the container as in the pod spec (init containers are passed too); a
                changed container is returned as a new ``container.spec`` mapping.
            pod: the whole pod being created, for pod-level context.

        Returns:
            Whether the container uses this backend, and the mutated container if changed.

        Raises:
            BackendError: the request is invalid; admission denies the pod with the message.
        """
        return MutationResult(has_resource=container.limit(self.resource_names.count) is not None)

    # --- scheduling (extender) ----------------------------------------------------------------

    def parse_request(self, container: ContainerView) -> DeviceRequest | None:
        """What ``container`` asks of this backend, or ``None`` when it asks nothing.

        The default follows HAMi's NVIDIA rules (hami-wire.md 2.3) with :attr:`request_rules`:
        resources are read from limits, then requests; no count (or count 0) means no request;
        memory is multiplied by the memory factor; a percentage above 100 counts as 100 and one
        at or below 0 is ignored; with neither memory nor percentage the default memory applies,
        else 100 %; cores default to the rule's default. Unlike HAMi, which silently drops a
        request it cannot read, a malformed one is an error the scheduler and webhook report.

        Returns:
            The request, typed :attr:`device_type`, or ``None``.

        Raises:
            BackendError: a resource is not a whole, non-negative quantity within int32 range.
        """
        names = self.resource_names
        raw_count = container.value(names.count)
        if raw_count is None:
            return None
        nums = _non_negative(container, names.count, raw_count)
        if nums == 0:
            return None
        rules = self.request_rules
        memreq = 0
        raw_memory = container.value(names.memory) if names.memory else None
        if raw_memory is not None:
            memory = _non_negative(container, names.memory, raw_memory)
            if memory > INT32_MAX // rules.memory_factor:
                raise BackendError(
                    f"container {container.label}: {names.memory} {echo(raw_memory)} times the memory "
                    f"factor {rules.memory_factor} is out of range"
                )
            memreq = memory * rules.memory_factor
        percentage = MEM_PERCENTAGE_UNSET
        raw_percentage = container.value(names.memory_percentage) if names.memory_percentage else None
        if raw_percentage is not None:
            # HAMi reads it as int64 and clamps, so 2**32+50 still means 100 %.
            asked = whole_quantity(container, names.memory_percentage, raw_percentage, maximum=INT64_MAX)
            if asked > 0:
                percentage = min(asked, 100)
        if percentage == MEM_PERCENTAGE_UNSET and memreq == 0:
            if rules.default_memory:
                memreq = rules.default_memory
            else:
                percentage = 100
        cores = rules.default_cores
        raw_cores = container.value(names.cores) if names.cores else None
        if raw_cores is not None:
            cores = _non_negative(container, names.cores, raw_cores)
        return DeviceRequest(
            nums=nums, type=self.device_type, memreq=memreq, mem_percentage_req=percentage, coresreq=cores
        )

    def node_devices(self, node_annotations: Mapping[str, str]) -> list[DeviceInfo]:
        """The devices a node registered for this backend, read from its register annotation.

        The default decodes HAMi's JSON register format and stamps each device with this
        backend's name as ``device_vendor``.

        Args:
            node_annotations: the node's annotations.

        Returns:
            The devices; empty when the node has no register annotation for this backend.

        Raises:
            CodecError: the annotation is not in HAMi's format.
            BackendError: the annotation lists no device (HAMi's "no gpu found on node").
        """
        value = node_annotations.get(self.keys.register)
        if value is None:
            return []
        devices = codec.decode_node_devices(value)
        if not devices:
            raise BackendError(f"no {self.name} device found on node ({self.keys.register} is empty)")
        return [attrs.evolve(device, device_vendor=self.name) for device in devices]

    def capacity_devices(self, node_name: str, capacity: Mapping[str, str]) -> list[DeviceInfo]:
        """Devices derived from a node's ``status.capacity`` when it has no register annotation.

        The default is none. A vendor whose own device plugin registers nothing (HAMi's Cambricon
        MLU, ``specs/hami-wire.md`` 6.2) synthesizes the node's devices from its extended
        resources here; the scheduler asks only when the register annotation is absent.

        Args:
            node_name: the node's name (synthesized device ids may contain it).
            capacity: the node's ``status.capacity`` (raw quantities).

        Raises:
            BackendError: the capacity does not describe any device of this backend.
        """
        return []

    def node_health(self, handshake_healthy: bool, allocatable: int, peak_allocatable: int) -> bool:
        """Whether a node's devices of this backend may take pods, given the handshake rule's answer.

        The default is that answer (HAMi's generic ``CheckHealth``, ``specs/hami-wire.md`` 3.9). Not
        asked while the node's kubelet reports 0 of the count resource: the node is unhealthy then.
        A vendor whose scheduler side also tracks the kubelet's count (HAMi's NVIDIA backend)
        overrides it.

        Args:
            handshake_healthy: the handshake rule's answer for the node.
            allocatable: the node's allocatable count of the backend's count resource now.
            peak_allocatable: the highest such count seen since the node registered these devices.
        """
        return handshake_healthy

    def fit_rules(self, context: FitContext) -> allocation.FitRules:
        """The vendor filters the shared fit applies for one pod on one node.

        The default only restricts devices to this backend's :attr:`device_type`; vendors add
        type/UUID include-exclude lists, cordons, NUMA binding or pair scores from ``context``.
        """
        return allocation.FitRules(request_type=self.device_type)

    def fit(self, request: DeviceRequest, devices: Sequence[DeviceUsage], context: FitContext) -> FitResult:
        """Choose devices for one container's request among a node's devices.

        The default runs the shared HAMi fit (:func:`hami_core.allocation.fit_container`) with
        :meth:`fit_rules` and the context's device policy; it never books more memory, cores or
        slots than a device has free.

        Args:
            request: the container's request for this backend.
            devices: this backend's devices on the node with current usage, in policy order
                (the last one is tried first).
            context: pod and node annotations, device policy and score weights.

        Returns:
            The devices taken, or why each device was rejected.
        """
        policy = allocation.parse_device_policy(context.device_policy)
        return allocation.fit_container(request, devices, self.fit_rules(context), policy)

    def score_node(
        self, devices: Sequence[DeviceUsage], chosen: PodSingleDevice, context: FitContext
    ) -> float:
        """A vendor term added to the node's score (HAMi's ``ScoreNode``); default 0.

        Args:
            devices: this backend's devices on the node, with usage before the pod.
            chosen: the devices the pod would take, per container.
            context: pod and node annotations, policy and weights.
        """
        return 0.0

    def filter_annotations(self, devices: PodSingleDevice, pod: PodView, now: datetime) -> Mapping[str, str]:
        """Pod annotations the scheduler writes beside ``keys.to_allocate`` / ``keys.allocated``.

        The default is none; vendors whose node agents read more (HAMi's MLU
        ``CAMBRICON_DSMLU_*``, Ascend's ``huawei.com/<chip>`` runtime JSON) return them here. They
        go into the same patch as the device annotations.

        Args:
            devices: the pod's devices of this backend, per container (init containers first).
            pod: the pod being scheduled.
            now: the time the scheduler stamps on the pod (``hami.io/vgpu-time``).
        """
        return {}

    def bind_node_annotations(self, node_annotations: Mapping[str, str], now: datetime) -> Mapping[str, str]:
        """Node annotations the scheduler sets, beside the node lock, when it binds a pod holding
        devices of this backend (HAMi's vendor ``LockNode``, e.g. Cambricon's ``cambricon.com/dsmlu.lock``).

        The default is none. The keys in :attr:`released_node_annotations` are removed again when the
        bind fails, and by this backend's device plugin when the pod's allocation ends.

        Args:
            node_annotations: the node's annotations, read when the bind holds the node lock.
            now: the bind time.

        Raises:
            LockError: the vendor's own lock is held for another pod; the bind fails with it.
        """
        return {}

    @property
    def released_node_annotations(self) -> tuple[str, ...]:
        """Keys of :meth:`bind_node_annotations` to remove when the allocation ends or the bind fails."""
        return ()

    # --- node (device plugin) -----------------------------------------------------------------

    @abc.abstractmethod
    def discover(self, node_name: str) -> list[DeviceInfo]:
        """The devices on this node, as the device plugin registers them.

        Only the device-plugin process calls this; it is where vendor SDKs are used.

        Args:
            node_name: the node the plugin runs on (per-node settings may apply).
        """

    def encode_node_devices(self, devices: Sequence[DeviceInfo]) -> str:
        """The register annotation value for ``devices``; the default is HAMi's JSON format."""
        return codec.encode_node_devices(devices)

    def extra_node_annotations(self, devices: Sequence[DeviceInfo]) -> Mapping[str, str]:
        """Node annotations the device plugin publishes beside the register annotation.

        The default is none; a vendor returns what its scheduler side reads from the node (HAMi's
        NVIDIA plugin publishes GPU pair scores). They are written with the register annotation,
        whenever one of them changes.

        Args:
            devices: the devices :meth:`discover` returned.
        """
        return {}

    def health(self, devices: Sequence[DeviceInfo]) -> Mapping[str, bool]:
        """Whether each device is healthy now, by device id.

        The default reports the health recorded at discovery; vendors with health events
        (NVIDIA XIDs) override it.
        """
        return {device.id: device.health for device in devices}

    @abc.abstractmethod
    def allocate(
        self, devices: ContainerDevices, container: ContainerView, pod: PodView
    ) -> ContainerAllocation:
        """What kubelet must give a container the scheduler assigned ``devices`` to.

        Args:
            devices: this container's entry of the pod's to-allocate annotation.
            container: the container spec (its env may switch isolation off).
            pod: the pod (name, namespace, uid for per-container paths).

        Returns:
            Environment, mounts and device nodes for the container.

        Raises:
            BackendError: the devices cannot be handed out on this node.
        """
