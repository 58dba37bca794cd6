"""The mutating admission webhook: AdmissionReview in, JSONPatch out, and its TLS certificates.

``mutating`` decides (pure), ``review`` speaks the AdmissionReview wire format (pure), ``server``
answers HTTP bodies (the scheduler's HTTPS server mounts :class:`~hami_core.webhook.server.AdmissionHandler`
at ``/webhook``), ``tls`` reloads a rotated serving certificate, ``certs`` makes and checks
certificates, ``certs_sync`` keeps them in the cluster (``hami certs``), and ``registration``
builds the MutatingWebhookConfiguration.
"""

from __future__ import annotations
