"""Where the monitor learns the node's pods: the kubelet's ``/pods`` (the node's own view, no API
load) or, when the kubelet cannot be reached, the API server's list of pods bound to the node."""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hami_core.errors import HamiError
from hami_core.kube.client import KubeClient

log = logging.getLogger(__name__)

#: The service-account token a pod is given; the kubelet accepts it for ``/pods`` with RBAC ``nodes/proxy``.
TOKEN_PATH = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class KubeletPods:
    """``GET <url>/pods`` on the kubelet.

    Args:
        url: e.g. ``https://127.0.0.1:10250``.
        token_path: bearer token file; missing means no token.
        verify: check the kubelet's serving certificate (kubelets often serve a self-signed one).
    """

    def __init__(
        self, url: str, *, token_path: Path = TOKEN_PATH, verify: bool = False, timeout: float = 5.0
    ) -> None:
        self._url = url.rstrip("/") + "/pods"
        self._token_path = token_path
        self._timeout = timeout
        self._context = ssl.create_default_context()
        if not verify:
            self._context.check_hostname = False
            self._context.verify_mode = ssl.CERT_NONE

    def __call__(self) -> list[Mapping[str, Any]]:
        request = urllib.request.Request(self._url)
        with contextlib.suppress(OSError):
            request.add_header("Authorization", f"Bearer {self._token_path.read_text().strip()}")
        with urllib.request.urlopen(request, timeout=self._timeout, context=self._context) as answer:
            body = json.load(answer)
        items = body.get("items") if isinstance(body, Mapping) else None
        if not isinstance(items, list):
            raise HamiError(f"{self._url}: not a pod list")
        return items


class ApiPods:
    """The API server's pods with ``spec.nodeName=<node>``."""

    def __init__(self, kube: KubeClient, node: str) -> None:
        self._kube = kube
        self._node = node

    def __call__(self) -> list[Mapping[str, Any]]:
        return list(self._kube.list_pods(field_selector=f"spec.nodeName={self._node}")["items"])


class FirstAvailable:
    """Asks each source in turn; the first that answers wins (the kubelet first, then the API)."""

    def __init__(self, *sources: KubeletPods | ApiPods) -> None:
        self._sources = sources

    def __call__(self) -> list[Mapping[str, Any]]:
        errors = []
        for source in self._sources:
            try:
                return source()
            except (OSError, HamiError, ValueError) as err:
                errors.append(f"{type(source).__name__}: {err}")
        raise HamiError("no pod source answered: " + "; ".join(errors))
