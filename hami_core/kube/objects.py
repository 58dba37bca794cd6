"""Wire shapes of the Kubernetes objects and extender messages hami reads and writes, as TypedDicts.

Keys are spelled exactly as on the wire: camelCase for Kubernetes JSON, PascalCase for the scheduler
extender messages (``k8s.io/kube-scheduler/extender/v1`` has no json tags). Every dict is ``total=False``
because the API omits empty fields; read with ``.get``. Only the fields hami touches are listed; objects
keep any other field the server sent, untouched. Domain values are attrs classes elsewhere: conversion
happens in the edge modules.
"""

from __future__ import annotations

from typing import Literal
from typing import TypedDict

# ---------------------------------------------------------------- metadata


class OwnerReference(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool


class ObjectMeta(TypedDict, total=False):
    name: str
    generateName: str
    namespace: str
    uid: str
    resourceVersion: str
    generation: int
    creationTimestamp: str
    deletionTimestamp: str
    labels: dict[str, str]
    annotations: dict[str, str]
    ownerReferences: list[OwnerReference]
    finalizers: list[str]


class ListMeta(TypedDict, total=False):
    """List metadata; hami never paginates, so only the list's resourceVersion matters."""

    resourceVersion: str


class ObjectReference(TypedDict, total=False):
    apiVersion: str
    kind: str
    namespace: str
    name: str
    uid: str
    resourceVersion: str
    fieldPath: str


# ---------------------------------------------------------------- pods


class EnvVar(TypedDict, total=False):
    name: str
    value: str


class ResourceRequirements(TypedDict, total=False):
    requests: dict[str, str]
    limits: dict[str, str]


class VolumeMount(TypedDict, total=False):
    name: str
    mountPath: str
    readOnly: bool


class SecurityContext(TypedDict, total=False):
    privileged: bool


class Container(TypedDict, total=False):
    name: str
    image: str
    command: list[str]
    args: list[str]
    env: list[EnvVar]
    resources: ResourceRequirements
    volumeMounts: list[VolumeMount]
    restartPolicy: str
    securityContext: SecurityContext


class Toleration(TypedDict, total=False):
    key: str
    operator: str
    value: str
    effect: str


class PodSpec(TypedDict, total=False):
    containers: list[Container]
    initContainers: list[Container]
    nodeName: str
    nodeSelector: dict[str, str]
    schedulerName: str
    priority: int
    priorityClassName: str
    restartPolicy: str
    serviceAccountName: str
    tolerations: list[Toleration]
    overhead: dict[str, str]


class PodCondition(TypedDict, total=False):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    lastTransitionTime: str
    lastProbeTime: str | None


class ContainerStateRunning(TypedDict, total=False):
    startedAt: str


class ContainerState(TypedDict, total=False):
    running: ContainerStateRunning


class ContainerStatus(TypedDict, total=False):
    name: str
    image: str
    ready: bool
    started: bool
    restartCount: int
    state: ContainerState


PodPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"]


class PodStatus(TypedDict, total=False):
    phase: PodPhase
    conditions: list[PodCondition]
    message: str
    reason: str
    hostIP: str
    podIP: str
    startTime: str
    nominatedNodeName: str
    containerStatuses: list[ContainerStatus]
    initContainerStatuses: list[ContainerStatus]


class Pod(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: PodSpec
    status: PodStatus


class PodList(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ListMeta
    items: list[Pod]


# ---------------------------------------------------------------- nodes


class Taint(TypedDict, total=False):
    key: str
    value: str
    effect: str


class NodeSpec(TypedDict, total=False):
    unschedulable: bool
    taints: list[Taint]


class NodeCondition(TypedDict, total=False):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    lastHeartbeatTime: str
    lastTransitionTime: str


class NodeAddress(TypedDict, total=False):
    type: str
    address: str


class NodeStatus(TypedDict, total=False):
    capacity: dict[str, str]
    allocatable: dict[str, str]
    conditions: list[NodeCondition]
    addresses: list[NodeAddress]


class Node(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: NodeSpec
    status: NodeStatus


class NodeList(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ListMeta
    items: list[Node]


# ---------------------------------------------------------------- namespaces, events, leases, config objects


class Namespace(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta


class EventSource(TypedDict, total=False):
    component: str
    host: str


class Event(TypedDict, total=False):
    """A core/v1 Event (what ``kubectl describe`` shows)."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    involvedObject: ObjectReference
    reason: str
    message: str
    type: Literal["Normal", "Warning"]
    source: EventSource
    count: int
    firstTimestamp: str
    lastTimestamp: str
    reportingComponent: str
    reportingInstance: str


class EventList(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ListMeta
    items: list[Event]


class LeaseSpec(TypedDict, total=False):
    holderIdentity: str
    leaseDurationSeconds: int
    acquireTime: str
    renewTime: str
    leaseTransitions: int


class Lease(TypedDict, total=False):
    """A coordination.k8s.io/v1 Lease; times are RFC 3339 with microseconds (``MicroTime``)."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: LeaseSpec


class ConfigMap(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    data: dict[str, str]


class Secret(TypedDict, total=False):
    """A core/v1 Secret; ``data`` values are base64, ``stringData`` is write-only plain text."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    type: str
    data: dict[str, str]
    stringData: dict[str, str]


class ResourceQuotaSpec(TypedDict, total=False):
    hard: dict[str, str]


class ResourceQuotaStatus(TypedDict, total=False):
    hard: dict[str, str]
    used: dict[str, str]


class ResourceQuota(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: ResourceQuotaSpec
    status: ResourceQuotaStatus


class ResourceQuotaList(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ListMeta
    items: list[ResourceQuota]


class ServiceReference(TypedDict, total=False):
    namespace: str
    name: str
    path: str
    port: int


class WebhookClientConfig(TypedDict, total=False):
    url: str
    service: ServiceReference
    caBundle: str


class LabelSelectorRequirement(TypedDict, total=False):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str]


class LabelSelector(TypedDict, total=False):
    matchLabels: dict[str, str]
    matchExpressions: list[LabelSelectorRequirement]


class RuleWithOperations(TypedDict, total=False):
    operations: list[str]
    apiGroups: list[str]
    apiVersions: list[str]
    resources: list[str]
    scope: str


class MutatingWebhook(TypedDict, total=False):
    name: str
    clientConfig: WebhookClientConfig
    rules: list[RuleWithOperations]
    failurePolicy: Literal["Ignore", "Fail"]
    sideEffects: str
    admissionReviewVersions: list[str]
    timeoutSeconds: int
    namespaceSelector: LabelSelector
    objectSelector: LabelSelector
    reinvocationPolicy: str
    matchPolicy: Literal["Exact", "Equivalent"]


class MutatingWebhookConfiguration(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    webhooks: list[MutatingWebhook]


# ---------------------------------------------------------------- scheduler extender (PascalCase)


class ExtenderArgs(TypedDict, total=False):
    """Body of the filter and prioritize verbs: ``Nodes`` without nodeCacheCapable, else ``NodeNames``."""

    Pod: Pod
    Nodes: NodeList | None
    NodeNames: list[str] | None


class ExtenderFilterResult(TypedDict, total=False):
    """Reply of the filter verb; a non-empty ``Error`` fails the whole call."""

    Nodes: NodeList | None
    NodeNames: list[str] | None
    FailedNodes: dict[str, str] | None
    FailedAndUnresolvableNodes: dict[str, str] | None
    Error: str


class HostPriority(TypedDict):
    """One entry of the prioritize reply (a JSON array); ``Score`` is 0..10."""

    Host: str
    Score: int


class ExtenderBindingArgs(TypedDict):
    """Body of the bind verb."""

    PodName: str
    PodNamespace: str
    PodUID: str
    Node: str


class ExtenderBindingResult(TypedDict, total=False):
    """Reply of the bind verb; a non-empty ``Error`` means the pod was not bound."""

    Error: str


# ---------------------------------------------------------------- watch

WatchEventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
"""Event types a watch yields; ``ERROR`` events become exceptions in the client."""
