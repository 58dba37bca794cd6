"""Constants of the kubelet device-plugin API v1beta1 (k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1/constants.go).

Both sides use them: hami's device plugin and the local cluster's simulated kubelet. Paths are defaults only;
every component takes its socket directory from a flag or an argument.
"""

from __future__ import annotations

VERSION = "v1beta1"
"""The API version a plugin sends in ``RegisterRequest.version``."""

SUPPORTED_VERSIONS = (VERSION,)
"""Versions a kubelet accepts at registration."""

DEVICE_PLUGIN_PATH = "/var/lib/kubelet/device-plugins/"
"""Default directory holding the kubelet socket and every plugin socket."""

KUBELET_SOCKET_NAME = "kubelet.sock"
"""File name of the kubelet's ``Registration`` socket inside the device plugin directory."""

KUBELET_SOCKET = DEVICE_PLUGIN_PATH + KUBELET_SOCKET_NAME
"""Default full path of the kubelet's ``Registration`` socket."""

HEALTHY = "Healthy"
"""``Device.health`` of a usable device."""

UNHEALTHY = "Unhealthy"
"""``Device.health`` of a device the kubelet must not hand out."""

PRE_START_CONTAINER_RPC_TIMEOUT_SECONDS = 30
"""How long the kubelet waits for ``PreStartContainer``."""
