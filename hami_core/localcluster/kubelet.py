"""A simulated kubelet: the node object, the device-plugin Registration server and pod admission.

It speaks the real kubelet device-plugin API v1beta1 over unix sockets in its own directory:
``Registration`` on ``<dir>/kubelet.sock``; on ``Register`` it dials ``<dir>/<endpoint>``, reads the
plugin's options and keeps a ``ListAndWatch`` stream open, patching the node's capacity (all devices) and
allocatable (healthy devices) for that resource. When a pod is bound to its node it admits it as the
kubelet's device manager does: per container, init containers first, for each registered resource it
picks device IDs (devices of finished init containers first, then the plugin's preferred allocation,
then healthy free devices in ID order), calls ``Allocate`` (and ``PreStartContainer`` if required),
records the results in the pod annotation ``localcluster.hami.io/allocations`` and sets the pod
Running; or Failed with the kubelet's ``UnexpectedAdmissionError``. Pods asking for no registered
resource go straight to Running. Devices are freed when the pod is deleted or finishes. ``restart()``
wipes the directory's sockets and recreates ``kubelet.sock``, so plugins must register again.

Not emulated: containers (nothing runs), cpu/memory admission, topology alignment, the 5-minute grace
before a vanished resource leaves the node.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import grpc

from hami_core.deviceplugin import constants
from hami_core.deviceplugin.proto import deviceplugin_pb2
from hami_core.deviceplugin.proto import deviceplugin_pb2_grpc
from hami_core.deviceplugin.unixgrpc import UnixGrpcServer
from hami_core.errors import ConflictError
from hami_core.errors import HamiError
from hami_core.errors import KubeError
from hami_core.errors import PodFormatError
from hami_core.kube.client import KubeClient
from hami_core.kube.informer import Informer
from hami_core.kube.informer import InformerEvent
from hami_core.kube.informer import listed
from hami_core.kube.objects import Node
from hami_core.kube.objects import Pod
from hami_core.kube.objects import PodCondition
from hami_core.localcluster.fleet import NodeSpec
from hami_core.pods import ContainerView
from hami_core.pods import PodView
from hami_core.quantity import parse_quantity

_log = logging.getLogger(__name__)

ALLOCATIONS_ANNOTATION = "localcluster.hami.io/allocations"
"""Pod annotation: JSON ``{container: {deviceIDs, envs, mounts, devices, annotations, cdiDevices}}``."""

DIAL_TIMEOUT_SECONDS = 10.0
MAX_SOCKET_PATH = 107


class KubeletError(HamiError):
    """A plugin registration is refused, or a pod cannot be admitted (devices unavailable, a call failed)."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rpc_message(err: grpc.RpcError) -> str:
    """A gRPC failure as Go's ``status.Error`` prints it: ``rpc error: code = Unknown desc = ...``."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    name = "".join(part.title() for part in code.name.split("_"))
    return f"rpc error: code = {name} desc = {details}"


def is_extended_resource_name(name: str) -> bool:
    """Whether ``name`` may be advertised by a device plugin (a domain-prefixed, non-kubernetes.io name)."""
    domain, slash, rest = name.partition("/")
    return (
        bool(slash and domain and rest)
        and not domain.endswith("kubernetes.io")
        and not name.startswith("requests.")
    )


@attrs.define
class _Endpoint:
    """One registered plugin: its connection, options, devices and the ListAndWatch thread."""

    resource: str
    channel: grpc.Channel
    stub: deviceplugin_pb2_grpc.DevicePluginStub
    options: deviceplugin_pb2.DevicePluginOptions
    devices: dict[str, bool] = attrs.field(factory=dict)
    stream: Any = None
    thread: threading.Thread | None = None
    closed: bool = False

    def close(self) -> None:
        self.closed = True
        if self.stream is not None:
            self.stream.cancel()
        self.channel.close()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join()


class _RegistrationServicer(deviceplugin_pb2_grpc.RegistrationServicer):
    def __init__(self, kubelet: Kubelet) -> None:
        self._kubelet = kubelet

    def Register(  # the gRPC method's name
        self, request: deviceplugin_pb2.RegisterRequest, context: grpc.ServicerContext
    ) -> deviceplugin_pb2.Empty:
        try:
            self._kubelet.register(request.version, request.endpoint, request.resource_name)
        except KubeletError as err:
            context.abort(grpc.StatusCode.UNKNOWN, str(err))
        return deviceplugin_pb2.Empty()


class Kubelet:
    """One simulated node's kubelet.

    Args:
        kube: the API client.
        node: the node's name, allocatable basics, metadata and static resources.
        plugin_dir: the device-plugin directory (holds ``kubelet.sock`` and the plugins' sockets).
        dial_timeout: how long ``Register`` waits for the plugin's socket to answer (kubelet: 10 s).
    """

    def __init__(
        self,
        kube: KubeClient,
        node: NodeSpec,
        plugin_dir: str | os.PathLike[str],
        *,
        dial_timeout: float = DIAL_TIMEOUT_SECONDS,
    ) -> None:
        self.node = node
        self.plugin_dir = Path(plugin_dir)
        self.socket_path = self.plugin_dir / constants.KUBELET_SOCKET_NAME
        if len(os.fsencode(self.socket_path)) > MAX_SOCKET_PATH:
            raise HamiError(f"unix socket path {self.socket_path} is longer than {MAX_SOCKET_PATH} bytes")
        self._kube = kube
        self._dial_timeout = dial_timeout
        self._lock = threading.RLock()
        self._endpoints: dict[str, _Endpoint] = {}
        self._known_resources: set[str] = set()
        self._assigned: dict[str, dict[str, str]] = {}
        self._admitted: set[str] = set()
        self._grpc = UnixGrpcServer(
            self.socket_path,
            lambda server: deviceplugin_pb2_grpc.add_RegistrationServicer_to_server(
                _RegistrationServicer(self), server
            ),  # type: ignore[no-untyped-call,unused-ignore]
            name=f"kubelet-{node.name}",
        )
        self._pods: Informer[Pod] | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Create (or refresh) the Node, serve ``kubelet.sock`` and start admitting bound pods."""
        self._ensure_node()
        self._serve()
        kube = self._kube
        selector = f"spec.nodeName={self.node.name}"
        self._pods = Informer(
            f"kubelet-{self.node.name}",
            lambda: listed(kube.list_pods(field_selector=selector)),
            lambda version: kube.watch_pods(field_selector=selector, resource_version=version),
            self._on_pod,
        )
        self._pods.start()

    def stop(self) -> None:
        """Stop serving, drop every plugin connection and stop watching pods."""
        self._shutdown_server()
        if self._pods is not None:
            self._pods.stop()
            self._pods = None

    def restart(self) -> None:
        """Simulate a kubelet restart: connections drop, sockets are wiped, ``kubelet.sock`` comes back.

        Device assignments survive (the real kubelet keeps them in its checkpoint); plugins must
        register again before their resources can be allocated.
        """
        self._shutdown_server()
        self._serve()

    def registered_resources(self) -> list[str]:
        """Resource names with a live plugin connection, sorted."""
        with self._lock:
            return sorted(self._endpoints)

    def devices(self, resource: str) -> dict[str, bool]:
        """Device ID -> healthy, as the plugin's last ListAndWatch message said (empty before the first)."""
        with self._lock:
            endpoint = self._endpoints.get(resource)
            return dict(endpoint.devices) if endpoint else {}

    def assigned_devices(self, resource: str) -> dict[str, str]:
        """Device ID -> pod UID for the devices of ``resource`` currently held by pods."""
        with self._lock:
            return dict(self._assigned.get(resource, {}))

    def _serve(self) -> None:
        self.plugin_dir.mkdir(parents=True, exist_ok=True)
        self._remove_sockets()
        self._grpc.start()

    def _shutdown_server(self) -> None:
        self._grpc.stop()
        with self._lock:
            endpoints = list(self._endpoints.values())
            self._endpoints.clear()
        for endpoint in endpoints:
            endpoint.close()
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        """What kubelet's device manager does at start: clear the directory's sockets."""
        if not self.plugin_dir.is_dir():
            return
        for entry in self.plugin_dir.iterdir():
            try:
                if stat.S_ISSOCK(entry.lstat().st_mode):
                    entry.unlink()
            except FileNotFoundError:
                continue

    def _ensure_node(self) -> None:
        allocatable = self.node.allocatable()
        node: Node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node.name,
                "labels": {
                    "kubernetes.io/hostname": self.node.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    **self.node.labels,
                },
                "annotations": dict(self.node.annotations),
            },
            "spec": {},
            "status": {
                "capacity": dict(allocatable),
                "allocatable": dict(allocatable),
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": _now(),
                        "lastTransitionTime": _now(),
                    }
                ],
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": self.node.name},
                ],
            },
        }
        try:
            self._kube.create_node(node)
        except ConflictError:
            status = node["status"]
            self._kube.patch_node_status(
                self.node.name,
                {
                    "status": {
                        "capacity": status["capacity"],
                        "allocatable": status["allocatable"],
                        "conditions": status["conditions"],
                    }
                },
            )

    # ------------------------------------------------------------ registration

    def register(self, version: str, endpoint: str, resource: str) -> None:
        """Handle ``Registration.Register``: validate, dial the plugin, read its options, watch its devices.

        Raises:
            KubeletError: the request is invalid or the plugin cannot be reached.
        """
        if version not in constants.SUPPORTED_VERSIONS:
            raise KubeletError(
                f"requested API version {version!r} is not supported by kubelet. "
                f"Supported versions are {list(constants.SUPPORTED_VERSIONS)}"
            )
        if not is_extended_resource_name(resource):
            raise KubeletError(f"invalid extended resource name: {resource!r}")
        path = self.plugin_dir / endpoint
        if os.path.basename(endpoint) != endpoint or not endpoint:
            raise KubeletError(f"endpoint {endpoint!r} must be a file name in {self.plugin_dir}")
        channel = grpc.insecure_channel(f"unix://{path}")
        stub = deviceplugin_pb2_grpc.DevicePluginStub(channel)  # type: ignore[no-untyped-call,unused-ignore]
        try:
            grpc.channel_ready_future(channel).result(timeout=self._dial_timeout)
            plugin_options = stub.GetDevicePluginOptions(deviceplugin_pb2.Empty(), timeout=self._dial_timeout)
        except (grpc.FutureTimeoutError, grpc.RpcError) as err:
            channel.close()
            detail = _rpc_message(err) if isinstance(err, grpc.RpcError) else "timed out"
            raise KubeletError(f"failed to dial device plugin {path}: {detail}") from err
        fresh = _Endpoint(resource, channel, stub, plugin_options)
        with self._lock:
            previous = self._endpoints.get(resource)
            self._endpoints[resource] = fresh
            self._known_resources.add(resource)
        if previous is not None:
            previous.close()
        fresh.stream = stub.ListAndWatch(deviceplugin_pb2.Empty())
        fresh.thread = threading.Thread(
            target=self._list_and_watch,
            args=(fresh,),
            name=f"kubelet-{self.node.name}-{resource}",
            daemon=True,
        )
        fresh.thread.start()
        _log.info("node %s: registered %s at %s", self.node.name, resource, endpoint)

    def _list_and_watch(self, endpoint: _Endpoint) -> None:
        try:
            for response in endpoint.stream:
                devices = {device.ID: device.health == constants.HEALTHY for device in response.devices}
                with self._lock:
                    if endpoint.closed:
                        return
                    endpoint.devices = devices
                self._advertise(endpoint.resource, total=len(devices), healthy=sum(devices.values()))
        except grpc.RpcError as err:
            if not endpoint.closed:
                _log.info(
                    "node %s: ListAndWatch %s ended: %s", self.node.name, endpoint.resource, _rpc_message(err)
                )
        if endpoint.closed:
            return
        # The plugin went away: its devices are unhealthy until it registers again.
        with self._lock:
            endpoint.devices = dict.fromkeys(endpoint.devices, False)
            total = len(endpoint.devices)
        self._advertise(endpoint.resource, total=total, healthy=0)

    def _advertise(self, resource: str, *, total: int, healthy: int) -> None:
        patch = {"status": {"capacity": {resource: str(total)}, "allocatable": {resource: str(healthy)}}}
        try:
            self._kube.patch_node_status(self.node.name, patch)
        except KubeError as err:
            _log.info("node %s: cannot advertise %s: %s", self.node.name, resource, err)

    # ------------------------------------------------------------ pods

    def _on_pod(self, event: InformerEvent, raw: Pod, old: Pod | None) -> None:
        try:
            pod = PodView.from_object(raw)
        except PodFormatError as err:
            _log.warning("node %s: unreadable pod: %s", self.node.name, err)
            return
        uid = pod.uid
        phase = pod.phase or "Pending"
        if event == "DELETED" or pod.finished or pod.deleting:
            self._release(uid)
            return
        with self._lock:
            if uid in self._admitted:
                return
            self._admitted.add(uid)
        if phase == "Running":
            self._adopt(uid, pod)
            return
        self._admit(pod)

    def _release(self, uid: str) -> None:
        with self._lock:
            self._admitted.discard(uid)
            for devices in self._assigned.values():
                for device in [d for d, owner in devices.items() if owner == uid]:
                    del devices[device]

    def _adopt(self, uid: str, pod: PodView) -> None:
        """A pod already running here (state restored from a file): take back its recorded devices."""
        raw = pod.annotations.get(ALLOCATIONS_ANNOTATION)
        if not raw:
            return
        try:
            records = json.loads(raw)
        except ValueError:
            _log.info("node %s: unreadable %s on pod %s", self.node.name, ALLOCATIONS_ANNOTATION, uid)
            return
        with self._lock:
            for record in records.values():
                for resource, ids in (record.get("deviceIDs") or {}).items():
                    for device in ids:
                        self._assigned.setdefault(resource, {})[device] = uid

    def _admit(self, pod: PodView) -> None:
        uid = pod.uid
        try:
            records = self._allocate_pod(uid, pod)
        except KubeletError as err:
            self._release(uid)
            with self._lock:
                self._admitted.add(uid)
            self._set_failed(
                pod, "UnexpectedAdmissionError", f"Allocate failed due to {err}, which is unexpected"
            )
            return
        try:
            if records:
                self._kube.patch_pod(
                    pod.namespace,
                    pod.name,
                    {
                        "metadata": {
                            "annotations": {ALLOCATIONS_ANNOTATION: json.dumps(records, sort_keys=True)}
                        }
                    },
                )
            self._set_running(pod)
        except KubeError as err:
            _log.info("node %s: cannot record pod %s: %s", self.node.name, pod.key, err)

    def _allocate_pod(self, uid: str, pod: PodView) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}
        reusable: dict[str, list[str]] = {}
        pre_starts: list[tuple[_Endpoint, list[str]]] = []
        for container in pod.containers:
            record: dict[str, Any] = {
                "deviceIDs": {},
                "envs": {},
                "mounts": [],
                "devices": [],
                "annotations": {},
                "cdiDevices": [],
            }
            for resource, count in self._device_requests(container):
                endpoint, ids = self._pick(uid, resource, count, reusable.setdefault(resource, []))
                response = self._call_allocate(endpoint, ids)
                _merge_response(record, response)
                record["deviceIDs"][resource] = ids
                if container.init:
                    reusable[resource] += [device for device in ids if device not in reusable[resource]]
                else:
                    reusable[resource] = [device for device in reusable[resource] if device not in ids]
                if endpoint.options.pre_start_required:
                    pre_starts.append((endpoint, ids))
            if record["deviceIDs"]:
                records[container.name] = record
        for endpoint, ids in pre_starts:
            try:
                endpoint.stub.PreStartContainer(
                    deviceplugin_pb2.PreStartContainerRequest(devices_ids=ids),
                    timeout=constants.PRE_START_CONTAINER_RPC_TIMEOUT_SECONDS,
                )
            except grpc.RpcError as err:
                raise KubeletError(f"PreStartContainer failed: {_rpc_message(err)}") from err
        return records

    def _device_requests(self, container: ContainerView) -> list[tuple[str, int]]:
        wanted = {**container.requests, **container.limits}
        with self._lock:
            known = set(self._known_resources)
        requests = []
        for name, quantity in sorted(wanted.items()):
            if name in known:
                count = parse_quantity(quantity)
                if count > 0:
                    requests.append((name, int(count)))
        return requests

    def _pick(self, uid: str, resource: str, count: int, reusable: list[str]) -> tuple[_Endpoint, list[str]]:
        """kubelet's devicesToAllocate: reusable init-container devices, then the plugin's preference,
        then free healthy devices in ID order."""
        with self._lock:
            endpoint = self._endpoints.get(resource)
            healthy = sorted(d for d, ok in (endpoint.devices if endpoint else {}).items() if ok)
            in_use = self._assigned.get(resource, {})
            available = [device for device in healthy if device not in in_use]
        chosen = sorted(reusable)[:count]
        if len(chosen) == count and endpoint is not None:
            return endpoint, chosen
        needed = count - len(chosen)
        if endpoint is None or len(available) < needed:
            raise KubeletError(
                f"requested number of devices unavailable for {resource}. Requested: {needed}, "
                f"Available: {len(available)}"
            )
        if endpoint.options.get_preferred_allocation_available:
            request = deviceplugin_pb2.PreferredAllocationRequest(
                container_requests=[
                    deviceplugin_pb2.ContainerPreferredAllocationRequest(
                        available_deviceIDs=sorted({*available, *chosen}),
                        must_include_deviceIDs=chosen,
                        allocation_size=count,
                    )
                ]
            )
            try:
                reply = endpoint.stub.GetPreferredAllocation(request, timeout=self._dial_timeout)
            except grpc.RpcError as err:
                raise KubeletError(_rpc_message(err)) from err
            preferred = reply.container_responses[0].deviceIDs if reply.container_responses else []
            for device in sorted(set(preferred) & set(available)):
                if len(chosen) < count and device not in chosen:
                    chosen.append(device)
        for device in available:
            if len(chosen) == count:
                break
            if device not in chosen:
                chosen.append(device)
        with self._lock:
            holders = self._assigned.setdefault(resource, {})
            for device in chosen:
                holders.setdefault(device, uid)
        return endpoint, chosen

    def _call_allocate(
        self, endpoint: _Endpoint, ids: list[str]
    ) -> deviceplugin_pb2.ContainerAllocateResponse:
        request = deviceplugin_pb2.AllocateRequest(
            container_requests=[deviceplugin_pb2.ContainerAllocateRequest(devices_ids=ids)]
        )
        try:
            response: deviceplugin_pb2.AllocateResponse = endpoint.stub.Allocate(request, timeout=30)
        except grpc.RpcError as err:
            raise KubeletError(_rpc_message(err)) from err
        if len(response.container_responses) != 1:
            raise KubeletError(f"no containers return in allocation response {response}")
        result: deviceplugin_pb2.ContainerAllocateResponse = response.container_responses[0]
        return result

    def _set_running(self, pod: PodView) -> None:
        current = self._kube.get_pod(pod.namespace, pod.name)
        now = _now()
        kept = [
            c
            for c in (current.get("status") or {}).get("conditions") or []
            if c.get("type") == "PodScheduled"
        ]
        ready: list[PodCondition] = [
            {"type": kind, "status": "True", "lastTransitionTime": now}
            for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
        ]
        statuses = [
            {
                "name": container.name,
                "image": container.spec.get("image", ""),
                # Always present on a real API server (a Go string without omitempty); the official
                # client refuses a status without it. Nothing is pulled, so there is no digest.
                "imageID": "",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            }
            for container in pod.app_containers
        ]
        self._kube.patch_pod_status(
            pod.namespace,
            pod.name,
            {
                "status": {
                    "phase": "Running",
                    "hostIP": "127.0.0.1",
                    "podIP": "127.0.0.1",
                    "startTime": now,
                    "conditions": [*kept, *ready],
                    "containerStatuses": statuses,
                }
            },
        )

    def _set_failed(self, pod: PodView, reason: str, message: str) -> None:
        _log.info("node %s: pod %s rejected: %s", self.node.name, pod.key, message)
        try:
            self._kube.patch_pod_status(
                pod.namespace,
                pod.name,
                {"status": {"phase": "Failed", "reason": reason, "message": message}},
            )
        except KubeError as err:
            _log.info("node %s: cannot fail pod %s: %s", self.node.name, pod.key, err)


def _merge_response(record: dict[str, Any], response: deviceplugin_pb2.ContainerAllocateResponse) -> None:
    """Fold one ContainerAllocateResponse into a container's record (mounts deduplicated by path)."""
    record["envs"].update(dict(response.envs))
    record["annotations"].update(dict(response.annotations))
    paths = {mount["containerPath"] for mount in record["mounts"]}
    for mount in response.mounts:
        if mount.container_path not in paths:
            paths.add(mount.container_path)
            record["mounts"].append(
                {
                    "containerPath": mount.container_path,
                    "hostPath": mount.host_path,
                    "readOnly": mount.read_only,
                }
            )
    for device in response.devices:
        record["devices"].append(
            {
                "containerPath": device.container_path,
                "hostPath": device.host_path,
                "permissions": device.permissions,
            }
        )
    record["cdiDevices"] += [cdi.name for cdi in response.cdi_devices]
