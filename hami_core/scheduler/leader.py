"""Leader election on a ``coordination.k8s.io/v1`` Lease, the way client-go's ``leaderelection`` does it.

Only the leader serves filter and bind and writes handshakes and retries; every replica keeps its
cache warm from the watches, so a new leader can serve at once. The timings are client-go's defaults
(lease 15 s, renew deadline 10 s, retry period 2 s). As in client-go, expiry is judged by when this
replica last *saw* the lease change (its own monotonic clock), never by comparing the holder's
timestamps with the local wall clock, so clock skew between replicas does not matter. A leader that
cannot renew within the renew deadline steps down; one that stops releases the lease (client-go's
``ReleaseOnCancel``) so a follower takes over without waiting out the lease. Clocks are injectable:
tests call :meth:`LeaderElector.step` under a virtual clock instead of starting the thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC
from datetime import datetime

from hami_core.errors import ConflictError
from hami_core.errors import KubeError
from hami_core.errors import NotFoundError
from hami_core.kube.client import KubeClient
from hami_core.kube.objects import Lease
from hami_core.kube.objects import LeaseSpec
from hami_core.looping import Loop

_log = logging.getLogger(__name__)

LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0


def micro_time(when: datetime) -> str:
    """A ``MicroTime`` as the API writes it: RFC 3339 in UTC with microseconds."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Campaigns for one Lease and reports whether this replica leads.

    Args:
        kube: the API client.
        namespace: the Lease's namespace.
        name: the Lease's name.
        identity: this replica's holder identity (its pod name, unique per replica).
        lease_duration: seconds a follower waits after the lease last changed before taking it.
        renew_deadline: seconds a leader may go without a successful renewal before stepping down.
        retry_period: seconds between attempts.
        monotonic: a monotonic clock in seconds (injectable).
        wall: the current time, written into the Lease (injectable).
        on_change: called with ``True`` when this replica starts leading and ``False`` when it stops.
    """

    def __init__(
        self,
        kube: KubeClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = LEASE_DURATION,
        renew_deadline: float = RENEW_DEADLINE,
        retry_period: float = RETRY_PERIOD,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self._kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self._duration = lease_duration
        self._deadline = renew_deadline
        self._monotonic = monotonic
        self._wall = wall
        self._on_change = on_change
        self._leading = False
        self._observed: LeaseSpec | None = None
        self._observed_at = 0.0
        self._renewed_at = 0.0
        self._loop = Loop(
            "hami-leader",
            self._campaign,
            interval=retry_period,
            retry=retry_period,
            max_retry=retry_period,
            log=_log,
        )

    @property
    def is_leader(self) -> bool:
        return self._leading

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        """Stop campaigning; a leader releases the lease so another replica takes over at once."""
        self._loop.stop()
        if self._leading:
            self._release()
            self._set_leading(False)

    def _campaign(self) -> None:
        self.step()  # then wait the retry period

    def step(self) -> bool:
        """One attempt to acquire or renew; returns whether this replica leads afterwards."""
        now = self._monotonic()
        if self._try_acquire_or_renew(now):
            self._renewed_at = now
            self._set_leading(True)
        elif self._leading and now - self._renewed_at >= self._deadline:
            _log.warning(
                "lease %s/%s: not renewed for %ss, stepping down", self.namespace, self.name, self._deadline
            )
            self._set_leading(False)
        return self._leading

    def _set_leading(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        _log.info(
            "lease %s/%s: %s is %s",
            self.namespace,
            self.name,
            self.identity,
            "leading" if leading else "following",
        )
        if self._on_change is not None:
            self._on_change(leading)

    def _record(self, previous: LeaseSpec | None) -> LeaseSpec:
        now = micro_time(self._wall())
        record: LeaseSpec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self._duration)),
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": 0,
        }
        if previous is not None:
            transitions = int(previous.get("leaseTransitions") or 0)
            if previous.get("holderIdentity") == self.identity:
                record["acquireTime"] = previous.get("acquireTime") or now
                record["leaseTransitions"] = transitions
            else:
                record["leaseTransitions"] = transitions + 1
        return record

    def _try_acquire_or_renew(self, now: float) -> bool:
        try:
            lease = self._kube.get_lease(self.namespace, self.name)
        except NotFoundError:
            body: Lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._record(None),
            }
            try:
                created = self._kube.create_lease(self.namespace, body)
            except KubeError as err:
                _log.info("lease %s/%s: cannot create: %s", self.namespace, self.name, err)
                return False
            self._observe(created.get("spec") or {}, now)
            return True
        except KubeError as err:
            _log.info("lease %s/%s: cannot read: %s", self.namespace, self.name, err)
            return False
        spec: LeaseSpec = lease.get("spec") or {}
        if spec != self._observed:
            self._observe(spec, now)
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity and self._observed_at + self._duration > now:
            return False
        updated: Lease = {**lease, "spec": self._record(spec)}
        try:
            replaced = self._kube.replace_lease(self.namespace, self.name, updated)
        except (ConflictError, KubeError) as err:
            _log.info("lease %s/%s: cannot update: %s", self.namespace, self.name, err)
            return False
        self._observe(replaced.get("spec") or {}, now)
        return True

    def _observe(self, spec: LeaseSpec, now: float) -> None:
        self._observed = spec
        self._observed_at = now

    def _release(self) -> None:
        try:
            lease = self._kube.get_lease(self.namespace, self.name)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            released: LeaseSpec = {
                **spec,
                "holderIdentity": "",
                "leaseDurationSeconds": 1,
                "renewTime": micro_time(self._wall()),
            }
            self._kube.replace_lease(self.namespace, self.name, {**lease, "spec": released})
        except KubeError as err:
            _log.info("lease %s/%s: cannot release: %s", self.namespace, self.name, err)
