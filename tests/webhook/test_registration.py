"""The MutatingWebhookConfiguration hami registers: HAMi's chart shape, by Service or by URL."""

from __future__ import annotations

import base64

import pytest

from hami_core import codec
from hami_core.webhook.registration import WEBHOOK_NAME
from hami_core.webhook.registration import webhook_configuration

SKIP_IGNORED = {"matchExpressions": [{"key": codec.WEBHOOK_LABEL, "operator": "NotIn", "values": ["ignore"]}]}


def test_a_service_webhook_follows_hamis_chart() -> None:
    configuration = webhook_configuration(
        "hami-webhook", service={"namespace": "kube-system", "name": "hami-scheduler"}, ca_bundle=b"PEM"
    )
    assert configuration["metadata"] == {"name": "hami-webhook"}
    (webhook,) = configuration["webhooks"]
    assert webhook == {
        "name": WEBHOOK_NAME,
        "clientConfig": {
            "service": {
                "path": "/webhook",
                "port": 443,
                "namespace": "kube-system",
                "name": "hami-scheduler",
            },
            "caBundle": base64.b64encode(b"PEM").decode(),
        },
        "rules": [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
                "scope": "*",
            }
        ],
        "failurePolicy": "Ignore",
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1", "v1beta1"],
        "timeoutSeconds": 10,
        "namespaceSelector": SKIP_IGNORED,
        "objectSelector": SKIP_IGNORED,
        "reinvocationPolicy": "Never",
    }


def test_a_url_webhook_has_no_service_and_no_cabundle_until_certs_sets_it() -> None:
    (webhook,) = webhook_configuration("w", url="https://127.0.0.1:31998/webhook", failure_policy="Fail")[
        "webhooks"
    ]
    assert webhook["clientConfig"] == {"url": "https://127.0.0.1:31998/webhook"}
    assert webhook["failurePolicy"] == "Fail"


@pytest.mark.parametrize(
    "target",
    [
        pytest.param({}, id="neither"),
        pytest.param({"service": {"name": "s", "namespace": "n"}, "url": "https://x"}, id="both"),
    ],
)
def test_exactly_one_of_service_and_url_is_required(target: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        webhook_configuration("w", **target)  # type: ignore[arg-type]
