"""The webhook's protocol edge: AdmissionReview bytes in, HTTP status and AdmissionReview bytes out.

:class:`AdmissionHandler` is what the scheduler's HTTPS server mounts at ``/webhook``. It turns
every outcome into a reply and never raises: a body that is not an AdmissionReview is HTTP 400
with a ``Status`` body; a pod the webhook refuses (malformed, denied by rule, or a fault inside
hami) is an AdmissionReview with ``allowed: false``, a code and a message, so kube-apiserver
refuses it whatever the ``failurePolicy``; anything that is not a pod CREATE is allowed untouched.

One HTTP server serves it, in production and in tests: the scheduler's
(:class:`hami_core.scheduler.server.ExtenderServer`, given the handler as ``admission`` and a
:class:`~hami_core.webhook.tls.ReloadingCertificate` as ``tls``), which bounds every connection with
a timeout and every body with a size limit, so a client can neither crash nor hang it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from hami_core.backend import DeviceBackend
from hami_core.errors import CodecError
from hami_core.webhook import review
from hami_core.webhook.mutating import Capacity
from hami_core.webhook.mutating import QuotaCheck
from hami_core.webhook.mutating import WebhookSettings
from hami_core.webhook.mutating import mutate_pod

log = logging.getLogger(__name__)

#: Where kube-apiserver posts reviews (HAMi's chart: ``clientConfig.service.path``).
WEBHOOK_PATH = "/webhook"
#: Larger bodies are refused; kube-apiserver's own request limit is 3 MiB, a review wraps one object.
MAX_BODY_BYTES = 8 * 1024 * 1024


class AdmissionHandler:
    """Answers AdmissionReview requests for pods with the enabled backends.

    Args:
        backends: the enabled backends (a :class:`~hami_core.plugins.Backends` will do).
        settings: scheduler name and overwrite rule.
        capacity: registered devices now, for warnings about requests nothing can satisfy.
        quota: the namespace quota pre-check; ``None`` skips it.
        max_body: bodies longer than this are refused with 413.
    """

    def __init__(
        self,
        backends: Iterable[DeviceBackend],
        settings: WebhookSettings,
        capacity: Capacity | None = None,
        *,
        quota: QuotaCheck | None = None,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self._backends = tuple(backends)
        self._settings = settings
        self._capacity = capacity
        self._quota = quota
        self._max_body = max_body

    def handle(self, body: bytes) -> tuple[int, bytes]:
        """The HTTP status and JSON body answering ``body``; never raises."""
        if len(body) > self._max_body:
            return 413, review.bad_request(f"the body has {len(body)} bytes, more than {self._max_body}", 413)
        try:
            request = review.parse_review(body)
        except CodecError as err:
            log.info("refused a webhook call that is not an AdmissionReview: %s", err)
            return 400, review.bad_request(str(err))
        try:
            reply = self._answer(request)
        except Exception as err:  # a fault of hami's must refuse this pod, not take the server down
            log.exception("admission of request %s failed", request.uid)
            reply = review.deny(request, 500, f"the hami webhook failed: {type(err).__name__}: {err}")
        return 200, review.encode(reply)

    def _answer(self, request: review.AdmissionRequest) -> review.AdmissionReview:
        if request.problem:
            return review.deny(request, 400, request.problem)
        if not request.is_pod_create:
            return review.allow(request)
        outcome = mutate_pod(
            request.object,
            self._backends,
            self._settings,
            namespace=request.namespace,
            capacity=self._capacity,
            quota=self._quota,
        )
        if not outcome.allowed:
            log.info(
                "denied pod %s/%s: %s", request.namespace, request.name or "<generated>", outcome.message
            )
            return review.deny(request, outcome.code, outcome.message, outcome.warnings)
        return review.allow(request, outcome.patch, outcome.warnings)
