"""Test doubles for the webhook: what the scheduler's cache would tell it about registered devices."""

from __future__ import annotations

import attrs


@attrs.frozen
class FixedCapacity:
    """A fixed view of registered devices (the scheduler cache implements ``Capacity`` for real).

    Args:
        memory: MiB of the largest registered device; ``None`` means unknown.
        count: most devices on one node; ``None`` means unknown.
        backend: the backend these figures are for; others are unknown.
    """

    memory: int | None
    count: int | None
    backend: str = "mock"

    def largest_device_memory(self, backend: str) -> int | None:
        return self.memory if backend == self.backend else None

    def largest_node_device_count(self, backend: str) -> int | None:
        return self.count if backend == self.backend else None
