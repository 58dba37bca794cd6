"""What containers actually use, read from ``hami monitor`` endpoints (``/metrics`` text).

Parsing is pure (:func:`parse_usage`); :func:`fetch_usage` does the HTTP and reports unreachable
monitors instead of raising, so a down node never hides the rest of the view.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterable
from collections.abc import Mapping

import attrs
from prometheus_client.parser import text_string_to_metric_families

MIB = 1 << 20


@attrs.frozen
class Used:
    """Memory in use (bytes) and SM utilization (percent)."""

    memory_bytes: int = 0
    utilization: int = 0

    def __add__(self, other: Used) -> Used:
        return Used(self.memory_bytes + other.memory_bytes, self.utilization + other.utilization)

    @property
    def memory_mib(self) -> int:
        return -(-self.memory_bytes // MIB)


@attrs.frozen
class UsageReport:
    """Per pod (``namespace/name``) and device UUID, and per device from the host's own figures."""

    pods: Mapping[tuple[str, str], Used] = attrs.field(factory=dict)
    devices: Mapping[str, Used] = attrs.field(factory=dict)
    errors: tuple[str, ...] = ()

    def pod(self, pod: str, uuid: str) -> Used | None:
        return self.pods.get((pod, uuid))

    def device(self, uuid: str) -> Used | None:
        """The host's figures when a monitor exports them, else the sum of its pods' usage."""
        if uuid in self.devices:
            return self.devices[uuid]
        found = [used for (_, device), used in self.pods.items() if device == uuid]
        return sum(found, Used()) if found else None


def parse_usage(texts: Iterable[str], errors: Iterable[str] = ()) -> UsageReport:
    """Merge the metrics of several monitors."""
    pods: dict[tuple[str, str], Used] = {}
    devices: dict[str, Used] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                value = int(sample.value)
                if sample.name in ("hami_vgpu_memory_used_bytes", "hami_container_device_utilization_ratio"):
                    key = (
                        f"{labels.get('namespace', '')}/{labels.get('pod', '')}",
                        labels.get("device_uuid", ""),
                    )
                    extra = (
                        Used(memory_bytes=value)
                        if sample.name == "hami_vgpu_memory_used_bytes"
                        else Used(utilization=value)
                    )
                    pods[key] = pods.get(key, Used()) + extra
                elif sample.name == "hami_host_gpu_memory_used_bytes":
                    uuid = labels.get("device_uuid", "")
                    devices[uuid] = attrs.evolve(devices.get(uuid, Used()), memory_bytes=value)
                elif sample.name == "hami_host_gpu_utilization_ratio":
                    uuid = labels.get("device_uuid", "")
                    devices[uuid] = attrs.evolve(devices.get(uuid, Used()), utilization=value)
    return UsageReport(pods, devices, tuple(errors))


def fetch_usage(urls: Iterable[str], timeout: float = 3.0) -> UsageReport:
    """Scrape every monitor in ``urls`` (``http://node:9394/metrics``); failures become ``errors``."""
    texts, errors = [], []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                texts.append(answer.read().decode())
        except (OSError, ValueError) as err:
            errors.append(f"monitor {url}: {err}")
    try:
        return parse_usage(texts, errors)
    except ValueError as err:
        return UsageReport(errors=(*errors, f"unreadable monitor metrics: {err}"))
