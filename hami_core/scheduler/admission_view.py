"""The webhook's narrow, read-only window on the scheduler cache: :class:`AdmissionView`.

Admission asks two kinds of question (``specs/hami-wire.md`` 3.10, 4): how large the registered
devices are (to warn about requests nothing can satisfy) and whether a pod would exceed its
namespace's device quota now. It gets exactly those, and nothing that could change the cache.
"""

from __future__ import annotations

from hami_core.scheduler.cache import ClusterCache
from hami_core.scheduler.quota import Usage


class AdmissionView:
    """Fleet capacity and the quota pre-check, read from ``cache``; implements the webhook's
    ``Capacity`` and ``QuotaCheck`` protocols."""

    def __init__(self, cache: ClusterCache) -> None:
        self._cache = cache

    def largest_device_memory(self, backend: str) -> int | None:
        """The most memory (MiB) of any healthy registered device of ``backend``; ``None`` if none."""
        return self._cache.largest_device_memory(backend)

    def largest_node_device_count(self, backend: str) -> int | None:
        """The most devices of ``backend`` any healthy registered node has; ``None`` if none."""
        return self._cache.largest_node_device_count(backend)

    def quota_exceeded(self, namespace: str, backend: str, memory: int, cores: int) -> str | None:
        """Why a pod asking ``memory`` MiB and ``cores`` of ``backend`` would exceed the namespace's
        device quota now, or ``None`` (the webhook's admission pre-check)."""
        limit = self._cache.quotas.limit(namespace, backend)
        if limit is None:
            return None
        used = self._cache.namespace_usage(namespace, backend)
        if limit.admits(used, Usage(memory, cores)):
            return None
        return (
            f"namespace {namespace} device quota of {backend}: {used.memory} MiB and {used.cores} cores in use, "
            f"limits {limit.memory if limit.memory is not None else 'none'} MiB and "
            f"{limit.cores if limit.cores is not None else 'none'} cores; the pod asks {memory} MiB and {cores} cores"
        )
