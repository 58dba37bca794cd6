"""Builders for the Kubernetes objects and devices tests feed to backends and components.

``make_pod``, ``make_container`` and ``make_node`` return plain dicts shaped exactly like the API's
JSON (typed with :mod:`hami_core.kube.objects`), with only the fields given plus what the API
server always sets. Quantities may be passed as ints for brevity; they are written as strings, as
the API returns them. UIDs are derived from namespace and name, so the same builder call gives the
same pod. ``make_config`` builds hami's configuration as the YAML file would give it; ``make_device`` and ``make_usage`` build the contract's device values, and
``registered_node`` a node whose register annotation lists devices the way a backend's device
plugin writes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import attrs

from hami_core.backend import DeviceBackend
from hami_core.config import HamiConfig
from hami_core.config import parse_config
from hami_core.devices import DeviceInfo
from hami_core.devices import DeviceUsage
from hami_core.kube import objects

_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "testing.hami")


def _quantities(values: Mapping[str, str | int]) -> dict[str, str]:
    return {name: str(value) for name, value in values.items()}


def make_container(
    name: str = "main",
    *,
    limits: Mapping[str, str | int] | None = None,
    requests: Mapping[str, str | int] | None = None,
    env: Mapping[str, str] | None = None,
    image: str = "busybox",
) -> objects.Container:
    """A container, e.g. ``make_container(limits={"nvidia.com/gpu": 1, "nvidia.com/gpumem": 4096})``.

    Args:
        name: the container's name.
        limits: resource limits; ints become quantity strings.
        requests: resource requests; ints become quantity strings.
        env: environment variables, in the given order.
        image: the image reference.
    """
    container: objects.Container = {"name": name, "image": image}
    resources: objects.ResourceRequirements = {}
    if limits is not None:
        resources["limits"] = _quantities(limits)
    if requests is not None:
        resources["requests"] = _quantities(requests)
    if resources:
        container["resources"] = resources
    if env is not None:
        container["env"] = [{"name": key, "value": value} for key, value in env.items()]
    return container


def make_pod(
    name: str = "pod",
    *,
    namespace: str = "default",
    containers: Sequence[objects.Container] | None = None,
    init_containers: Sequence[objects.Container] | None = None,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    node_name: str = "",
    scheduler_name: str = "",
    phase: objects.PodPhase = "Pending",
) -> objects.Pod:
    """A pod; without ``containers`` it has one plain container named ``main``.

    Args:
        name: the pod's name.
        namespace: its namespace.
        containers: the regular containers.
        init_containers: the init containers, if any.
        annotations: metadata annotations.
        labels: metadata labels.
        node_name: ``spec.nodeName`` (set once bound).
        scheduler_name: ``spec.schedulerName``; empty leaves it unset.
        phase: ``status.phase``.
    """
    metadata: objects.ObjectMeta = {
        "name": name,
        "namespace": namespace,
        "uid": str(uuid.uuid5(_UID_NAMESPACE, f"pod/{namespace}/{name}")),
    }
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    if labels is not None:
        metadata["labels"] = dict(labels)
    spec: objects.PodSpec = {"containers": list(containers) if containers is not None else [make_container()]}
    if init_containers:
        spec["initContainers"] = list(init_containers)
    if node_name:
        spec["nodeName"] = node_name
    if scheduler_name:
        spec["schedulerName"] = scheduler_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": {"phase": phase}}


def make_node(
    name: str = "node",
    *,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    allocatable: Mapping[str, str | int] | None = None,
) -> objects.Node:
    """A node, e.g. ``make_node("gpu-1", annotations={backend.keys.register: value})``.

    Args:
        name: the node's name.
        annotations: metadata annotations (device registrations, node lock, handshake).
        labels: metadata labels; ``kubernetes.io/hostname`` is always set.
        allocatable: ``status.allocatable`` and ``status.capacity``; ints become quantity strings.
    """
    metadata: objects.ObjectMeta = {
        "name": name,
        "uid": str(uuid.uuid5(_UID_NAMESPACE, f"node/{name}")),
        "labels": {"kubernetes.io/hostname": name, **(labels or {})},
    }
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    quantities = _quantities(allocatable or {})
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": metadata,
        "status": {"capacity": dict(quantities), "allocatable": quantities},
    }


def make_device(
    index: int = 0,
    *,
    device_type: str = "MOCK",
    memory_mib: int = 16384,
    cores: int = 100,
    split: int = 10,
    numa: int = 0,
    healthy: bool = True,
    device_id: str = "",
    vendor: str = "",
) -> DeviceInfo:
    """A device as a node registers it, e.g. ``make_device(1, device_type="ACME", memory_mib=40960)``.

    Args:
        index: its index on the node.
        device_type: its ``type``; it must contain the backend's ``device_type`` to belong to it.
        memory_mib: its memory (``devmem``).
        cores: its compute units (``devcore``, 100 is a whole device).
        split: how many containers may share it (``count``).
        numa: its NUMA node.
        healthy: its health.
        device_id: its UUID (``id``); by default ``<device_type>-<index>``.
        vendor: the backend name the scheduler stamps on it (``device_vendor``).
    """
    return DeviceInfo(
        id=device_id or f"{device_type}-{index}",
        index=index,
        count=split,
        devmem=memory_mib,
        devcore=cores,
        type=device_type,
        numa=numa,
        health=healthy,
        device_vendor=vendor,
    )


def make_usage(device: DeviceInfo, *, used: int = 0, used_mib: int = 0, used_cores: int = 0) -> DeviceUsage:
    """``device`` as the scheduler sees it with what pods already hold, for ``fit`` tests.

    Args:
        device: the registered device.
        used: how many containers share it already.
        used_mib: memory they hold.
        used_cores: compute units they hold.
    """
    return attrs.evolve(DeviceUsage.from_info(device), used=used, usedmem=used_mib, usedcores=used_cores)


def registered_node(
    backend: DeviceBackend, devices: Sequence[DeviceInfo], name: str = "node", **fields: Any
) -> objects.Node:
    """A node whose annotations register ``devices`` for ``backend``, as its device plugin writes them.

    Args:
        backend: whose register key and encoding to use.
        devices: the devices to register.
        name: the node's name.
        fields: further :func:`make_node` arguments; their ``annotations`` are kept beside the register one.
    """
    annotations = {
        **fields.pop("annotations", {}),
        **backend.extra_node_annotations(devices),
        backend.keys.register: backend.encode_node_devices(devices),
    }
    return make_node(name, annotations=annotations, **fields)


def make_config(
    backends: Mapping[str, Mapping[str, object]] | None = None,
    scheduler: Mapping[str, object] | None = None,
) -> HamiConfig:
    """hami's configuration, as ``load_config`` would read it from a file with these sections.

    ``make_config({"acme": {"enabled": True, "fake_devices": 2}})`` is a config whose ``acme`` section
    a backend's ``from_config`` reads.

    Args:
        backends: the ``backends:`` section: settings by backend name.
        scheduler: the ``scheduler:`` section.

    Raises:
        ConfigError: a section is invalid, as it would be in the file.
    """
    document: dict[str, object] = {"version": "v1"}
    if backends is not None:
        document["backends"] = {name: dict(section) for name, section in backends.items()}
    if scheduler is not None:
        document["scheduler"] = dict(scheduler)
    return parse_config(document, "<make_config>")
