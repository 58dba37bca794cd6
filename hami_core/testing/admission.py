"""``admit``: hami's admission decision for one pod, in the test's process, for admission tests.

A backend's ``mutate_container`` runs inside hami's webhook, which also hands the pod to hami's
scheduler, checks what the backend made of each container and turns a ``BackendError`` into a
denial. ``admit`` runs that same decision (no server, no cluster) and applies its patch, so a test
asserts on the pod as admitted, as a user would see it with ``kubectl get``, rather than on JSON
patch operations.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import jsonpatch

from hami_core.backend import DeviceBackend
from hami_core.kube import objects
from hami_core.webhook.mutating import WebhookSettings
from hami_core.webhook.mutating import mutate_pod


@attrs.frozen
class Admission:
    """What hami's webhook made of one pod.

    Args:
        allowed: whether the pod is admitted.
        pod: the pod as admitted (the webhook's patch applied); the pod as sent when refused.
        message: why it was refused, naming the container and the resource where there is one.
        warnings: what kubectl would print at apply time.
    """

    allowed: bool
    pod: objects.Pod = attrs.field(hash=False)
    message: str = ""
    warnings: tuple[str, ...] = ()

    def container(self, index: int = 0) -> objects.Container:
        """The admitted pod's regular container at ``index``."""
        return self.pod["spec"]["containers"][index]

    def limits(self, index: int = 0) -> Mapping[str, str]:
        """The resource limits of container ``index`` as admitted."""
        return self.container(index).get("resources", {}).get("limits") or {}

    def requests(self, index: int = 0) -> Mapping[str, str]:
        """The resource requests of container ``index`` as admitted."""
        return self.container(index).get("resources", {}).get("requests") or {}


def admit(pod: objects.Pod, *backends: DeviceBackend, scheduler_name: str = "hami-scheduler") -> Admission:
    """Admit ``pod`` as hami's webhook would with ``backends`` enabled (in that order).

    The webhook's defaults apply: it claims pods left to ``default-scheduler`` and writes
    ``scheduler_name``; no capacity warnings and no quota (those need a cluster: use
    ``hami_cluster``).

    Args:
        pod: the pod as a client sends it, e.g. from :func:`~hami_core.testing.make_pod`.
        backends: the enabled backends.
        scheduler_name: hami's scheduler name.
    """
    outcome = mutate_pod(pod, backends, WebhookSettings(scheduler_name=scheduler_name))
    if not outcome.allowed:
        return Admission(False, pod, outcome.message, outcome.warnings)
    admitted: objects.Pod = jsonpatch.JsonPatch(list(outcome.patch)).apply(pod, in_place=False)
    return Admission(True, admitted, "", outcome.warnings)
