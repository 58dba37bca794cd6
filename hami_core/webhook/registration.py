"""The MutatingWebhookConfiguration that sends pod creations to the webhook, as HAMi's chart renders it.

HAMi's chart (hami-wire.md section 4) registers webhook ``vgpu.hami.io`` for ``CREATE`` of
``pods``, with ``sideEffects: None`` and namespace and object selectors that skip anything
labelled ``hami.io/webhook: ignore``; that selector is how labelled *namespaces* are skipped,
since an AdmissionReview carries no namespace labels. This module builds the same document for
the local cluster, the demo and tests (the chart keeps its own template). It only builds data.
"""

from __future__ import annotations

import base64
from typing import Literal

from hami_core import codec
from hami_core.kube.objects import LabelSelector
from hami_core.kube.objects import MutatingWebhook
from hami_core.kube.objects import MutatingWebhookConfiguration
from hami_core.kube.objects import ServiceReference
from hami_core.kube.objects import WebhookClientConfig
from hami_core.webhook.server import WEBHOOK_PATH

#: The webhook's name inside the configuration (HAMi's chart).
WEBHOOK_NAME = "vgpu.hami.io"


def _skip_ignored() -> LabelSelector:
    return {
        "matchExpressions": [
            {"key": codec.WEBHOOK_LABEL, "operator": "NotIn", "values": [codec.WEBHOOK_IGNORE]}
        ]
    }


def webhook_configuration(
    name: str,
    *,
    service: ServiceReference | None = None,
    url: str = "",
    ca_bundle: bytes = b"",
    failure_policy: Literal["Ignore", "Fail"] = "Ignore",
    timeout_seconds: int = 10,
) -> MutatingWebhookConfiguration:
    """The configuration called ``name`` pointing kube-apiserver at the webhook.

    Args:
        name: the object's name (the chart's ``<fullname>-webhook``).
        service: the Service in front of the scheduler; its ``path`` defaults to ``/webhook``
            and its ``port`` to 443.
        url: a direct ``https://`` URL instead of a Service (HAMi's ``customURL``).
        ca_bundle: PEM of the CA that signed the serving certificate; ``hami certs`` fills it in.
        failure_policy: ``Ignore`` (HAMi's default) or ``Fail`` (refuse pods while the webhook is down).
        timeout_seconds: 1 to 30.

    Raises:
        ValueError: neither or both of ``service`` and ``url`` are given.
    """
    if (service is None) == (not url):
        raise ValueError("give exactly one of service and url")
    client_config: WebhookClientConfig = {}
    if service is not None:
        client_config["service"] = {"path": WEBHOOK_PATH, "port": 443, **service}
    else:
        client_config["url"] = url
    if ca_bundle:
        client_config["caBundle"] = base64.b64encode(ca_bundle).decode()
    webhook: MutatingWebhook = {
        "name": WEBHOOK_NAME,
        "clientConfig": client_config,
        "rules": [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
                "scope": "*",
            }
        ],
        "failurePolicy": failure_policy,
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1", "v1beta1"],
        "timeoutSeconds": timeout_seconds,
        "namespaceSelector": _skip_ignored(),
        "objectSelector": _skip_ignored(),
        "reinvocationPolicy": "Never",
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [webhook],
    }
