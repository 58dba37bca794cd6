"""Mutating admission on CREATE, against a real HTTPS webhook server built with trustme certificates."""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trustme

from hami_core.localcluster import ApiServer
from hami_core.localcluster import admission
from hami_core.localcluster.resources import require
from hami_core.scheduler.server import ExtenderServer
from tests.tools import KUBECTL
from tests.tools import kubectl_binary  # noqa: F401 (a fixture)
from tests.webhook.fakes import WebhookOnly

Review = dict[str, Any]
Responder = Callable[[Review], Any]
PODS = require("", "v1", "pods")


def allow(review: Review) -> dict[str, Any]:
    return {"uid": review["request"]["uid"], "allowed": True}


def patching(*ops: dict[str, Any], warnings: tuple[str, ...] = ()) -> Responder:
    def respond(review: Review) -> dict[str, Any]:
        patch = base64.b64encode(json.dumps(list(ops)).encode()).decode()
        reply = allow(review) | {"patchType": "JSONPatch", "patch": patch}
        return reply | ({"warnings": list(warnings)} if warnings else {})

    return respond


class Webhook:
    """An HTTPS AdmissionReview endpoint at ``/webhook``; each test decides the answer and sees the reviews.

    Served by the server production serves the webhook with (the scheduler's), as an admission handler.
    """

    verifies_clients = False

    def __init__(self, cert: trustme.LeafCert) -> None:
        self.reviews: list[Review] = []
        self.respond: Responder = allow
        self.delay = 0.0
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(self._context)
        self._server = ExtenderServer(WebhookOnly(), admission=self, tls=self).start()
        self.url = self._server.url

    def context(self) -> ssl.SSLContext:
        return self._context

    def handle(self, body: bytes) -> tuple[int, bytes]:
        review = json.loads(body)
        self.reviews.append(review)
        time.sleep(self.delay)
        answer = self.respond(review)
        if isinstance(answer, dict):
            answer = {"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": answer}
        return 200, answer if isinstance(answer, bytes) else json.dumps(answer).encode()

    def close(self) -> None:
        self._server.stop()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def webhook(ca: trustme.CA) -> Iterator[Webhook]:
    hook = Webhook(ca.issue_cert("127.0.0.1", "hook.hami.svc"))
    yield hook
    hook.close()


@pytest.fixture(scope="module")
def server(webhook: Webhook) -> Iterator[ApiServer]:
    with ApiServer(service_urls={("hami", "hook", 443): webhook.url}) as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh_webhook(webhook: Webhook) -> None:
    webhook.reviews.clear()
    webhook.respond = allow
    webhook.delay = 0.0


def call(
    server: ApiServer, method: str, path: str, body: Any = None
) -> tuple[int, http.client.HTTPMessage, Any]:
    conn = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=30)
    try:
        data = None if body is None else json.dumps(body)
        conn.request(method, path, data, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.headers, json.loads(resp.read())
    finally:
        conn.close()


@pytest.fixture
def ns(server: ApiServer) -> str:
    name = f"a-{uuid.uuid4().hex[:8]}"
    assert (
        call(server, "POST", "/api/v1/namespaces", {"metadata": {"name": name, "labels": {"gpu": "on"}}})[0]
        == 201
    )
    return name


@pytest.fixture
def configure(server: ApiServer, ca: trustme.CA) -> Iterator[Callable[..., None]]:
    """Register one webhook (fields override a matching-everything default) for the test's duration."""
    names: list[str] = []
    path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"

    def register(config_name: str = "", **fields: Any) -> None:
        name = config_name or f"cfg-{uuid.uuid4().hex[:8]}"
        hook = {
            "name": "gpu.hami.io",
            "clientConfig": {"service": {"namespace": "hami", "name": "hook", "path": "/webhook"}},
            "rules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
            ],
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 5,
        }
        hook["clientConfig"]["caBundle"] = base64.b64encode(ca.cert_pem.bytes()).decode()
        hook |= fields
        assert call(server, "POST", path, {"metadata": {"name": name}, "webhooks": [hook]})[0] == 201
        names.append(name)

    yield register
    for name in names:
        call(server, "DELETE", f"{path}/{name}")


def create_pod(
    server: ApiServer, ns: str, name: str = "p", **meta: Any
) -> tuple[int, http.client.HTTPMessage, Any]:
    body = {"metadata": {"name": name, **meta}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    if not name:
        body["metadata"].pop("name")
    return call(server, "POST", f"/api/v1/namespaces/{ns}/pods", body)


def stored(server: ApiServer, ns: str, name: str = "p") -> Any:
    code, _, body = call(server, "GET", f"/api/v1/namespaces/{ns}/pods/{name}")
    return body if code == 200 else None


def test_the_returned_json_patch_is_applied_before_storing(
    server: ApiServer, webhook: Webhook, configure: Callable[..., None], ns: str
) -> None:
    configure()
    webhook.respond = patching(
        {"op": "add", "path": "/metadata/annotations", "value": {}},
        {"op": "add", "path": "/metadata/annotations/hami.io~1vgpu-node", "value": "n1"},
        {"op": "replace", "path": "/spec/schedulerName", "value": "hami-scheduler"},
    )
    code, _, pod = create_pod(server, ns)
    assert code == 201
    assert pod["metadata"]["annotations"] == {"hami.io/vgpu-node": "n1"}
    assert pod["spec"]["schedulerName"] == "hami-scheduler"
    assert stored(server, ns)["spec"]["schedulerName"] == "hami-scheduler"


def test_the_review_is_an_admission_review_v1_for_a_pod_create(
    server: ApiServer, webhook: Webhook, configure: Callable[..., None], ns: str
) -> None:
    configure()
    create_pod(server, ns, name="", generateName="gen-")
    [review] = webhook.reviews
    request = review["request"]
    assert (review["apiVersion"], review["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
    assert request["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert request["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert (request["operation"], request["namespace"], request["name"]) == ("CREATE", ns, "")
    assert request["object"]["metadata"]["generateName"] == "gen-"
    assert "uid" not in request["object"]["metadata"]
    assert request["object"]["spec"]["schedulerName"] == "default-scheduler"
    assert request["oldObject"] is None
    assert uuid.UUID(request["uid"])


def test_a_url_client_config_is_called_directly(
    server: ApiServer, webhook: Webhook, configure: Callable[..., None], ca: trustme.CA, ns: str
) -> None:
    bundle = base64.b64encode(ca.cert_pem.bytes()).decode()
    configure(clientConfig={"url": f"{webhook.url}/webhook", "caBundle": bundle})
    assert create_pod(server, ns)[0] == 201
    assert len(webhook.reviews) == 1


def test_v1beta1_only_webhooks_get_a_v1beta1_review(
    server: ApiServer, webhook: Webhook, configure: Callable[..., None], ns: str
) -> None:
    configure(admissionReviewVersions=["v1beta1"])
    assert create_pod(server, ns)[0] == 201
    assert webhook.reviews[0]["apiVersion"] == "admission.k8s.io/v1beta1"


def test_configurations_run_in_name_order_each_seeing_the_previous_patch(
    server: ApiServer, webhook: Webhook, configure: Callable[..., None], ns: str
) -> None:
    configure("b-second")
    configure("a-first")

    def label_with_count(review: Review) -> dict[str, Any]:
        count = len(review["request"]["object"]["metadata"].get("labels") or {})
        op = {"op": "add", "path": "/metadata/labels", "value": {f"seen{count}": "y"}}
        if count:
            op = {"op": "add", "path": f"/metadata/labels/seen{count}", "value": "y"}
        return patching(op)(review)

    webhook.respond = label_with_count
    code, _, pod = create_pod(server, ns)
    assert code == 201
    assert pod["metadata"]["labels"] == {"seen0": "y", "seen1": "y"}


def test_a_denial_refuses_the_create_with_the_webhook_code_and_message(
    server: ApiServer, webhook: Webhook, configure: Callable[..., None], ns: str
) -> None:
    configure(failurePolicy="Ignore")
    webhook.respond = lambda review: {
        "uid": review["request"]["uid"],
        "allowed": False,
        "status": {"code": 403, "message": "no GPUs for you"},
    }
    code, _, status = create_pod(server, ns)
    assert code == 403
    assert status["message"] == 'admission webhook "gpu.hami.io" denied the request: no GPUs for you'
    assert stored(server, ns) is None


def test_a_denial_without_a_code_is_400(
    server: ApiServer, webhook: Webhook, configure: Callable[..., None], ns: str
) -> None:
    configure()
    webhook.respond = lambda review: {"uid": review["request"]["uid"], "allowed": False}
    code, _, status = create_pod(server, ns)
    assert code == 400
    assert status["message"] == 'admission webhook "gpu.hami.io" denied the request without explanation'


def test_warnings_come_back_as_warning_headers(
    server: ApiServer, webhook: Webhook, configure: Callable[..., None], ns: str
) -> None:
    configure()
    webhook.respond = patching(warnings=('gpumem "99" exceeds every card', "second"))
    code, headers, _ = create_pod(server, ns)
    assert code == 201
    assert headers.get_all("Warning") == ['299 - "gpumem \\"99\\" exceeds every card"', '299 - "second"']


@pytest.mark.usefixtures("kubectl_binary")
def test_kubectl_prints_admission_warnings(
    server: ApiServer, webhook: Webhook, configure: Callable[..., None], ns: str, tmp_path: Path
) -> None:
    configure()
    webhook.respond = patching(warnings=("requested gpucores are capped",))
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: warned\nspec:\n  containers:\n  - {name: c, image: busybox}\n"
    done = subprocess.run(
        [
            str(KUBECTL),
            "--kubeconfig",
            str(kubeconfig),
            "--cache-dir",
            str(tmp_path / "c"),
            "-n",
            ns,
            "apply",
            "-f",
            "-",
        ],
        input=manifest,
        capture_output=True,
        text=True,
        env={"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")},
        timeout=60,
        check=True,
    )
    assert "Warning: requested gpucores are capped" in done.stderr


@pytest.mark.parametrize(
    ("policy", "created"), [pytest.param("Fail", False, id="fail"), pytest.param("Ignore", True, id="ignore")]
)
def test_an_untrusted_certificate_follows_the_failure_policy(
    server: ApiServer, webhook: Webhook, configure: Callable[..., None], ns: str, policy: str, created: bool
) -> None:
    other = base64.b64encode(trustme.CA().cert_pem.bytes()).decode()
    configure(failurePolicy=policy, clientConfig={"url": webhook.url, "caBundle": other})
    code, _, body = create_pod(server, ns)
    assert webhook.reviews == []
    if created:
        assert code == 201
        assert body["spec"]["schedulerName"] == "default-scheduler"
    else:
        assert code == 500
        assert body["message"].startswith(
            'Internal error occurred: failed calling webhook "gpu.hami.io": failed to call webhook'
        )
        assert "CERTIFICATE_VERIFY_FAILED" in body["message"]
        assert stored(server, ns) is None


@pytest.mark.parametrize(
    ("policy", "created"), [pytest.param("Fail", False, id="fail"), pytest.param("Ignore", True, id="ignore")]
)
def test_a_webhook_slower_than_its_timeout_follows_the_failure_policy(
    server: ApiServer, webhook: Webhook, configure: Callable[..., None], ns: str, policy: str, created: bool
) -> None:
    configure(failurePolicy=policy, timeoutSeconds=1)
    webhook.delay = 3.0
    webhook.respond = patching({"op": "replace", "path": "/spec/schedulerName", "value": "late"})
    started = time.monotonic()
    code, _, _ = create_pod(server, ns)
    assert time.monotonic() - started < 2.5  # the emulator gave up; it did not wait for the answer
    assert code == (201 if created else 500)
    assert (stored(server, ns) is not None) is created
    if created:
        assert stored(server, ns)["spec"]["schedulerName"] == "default-scheduler"


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda review: {"uid": "someone-else", "allowed": True}, id="wrong-uid"),
        pytest.param(lambda review: b"not json", id="not-json"),
        pytest.param(
            lambda review: {"kind": "AdmissionReview", "response": allow(review)}, id="no-api-version"
        ),
    ],
)
def test_malformed_replies_are_call_failures(
    server: ApiServer, webhook: Webhook, configure: Callable[..., None], ns: str, answer: Responder
) -> None:
    configure()
    webhook.respond = answer
    code, _, body = create_pod(server, ns)
    assert code == 500
    assert "failed calling webhook" in body["message"]


def test_an_unmapped_service_follows_the_failure_policy(
    server: ApiServer, configure: Callable[..., None], ns: str
) -> None:
    configure(clientConfig={"service": {"namespace": "hami", "name": "missing"}}, failurePolicy="Ignore")
    assert create_pod(server, ns, name="ignored")[0] == 201
    configure(clientConfig={"service": {"namespace": "hami", "name": "missing"}})
    code, _, body = create_pod(server, ns, name="refused")
    assert code == 500
    assert 'service "hami/missing:443" has no address' in body["message"]


def test_a_service_is_called_while_it_is_mapped(
    server: ApiServer, webhook: Webhook, configure: Callable[..., None], ns: str, ca: trustme.CA
) -> None:
    bundle = base64.b64encode(ca.cert_pem.bytes()).decode()
    # The module's Service at another port: its own route, the same certificate name.
    service = {"namespace": "hami", "name": "hook", "port": 8443, "path": "/webhook"}
    configure(clientConfig={"service": service, "caBundle": bundle})
    server.map_service("hami", "hook", 8443, webhook.url)
    assert create_pod(server, ns, name="mapped")[0] == 201
    assert len(webhook.reviews) == 1
    server.unmap_service("hami", "hook", 8443)
    code, _, body = create_pod(server, ns, name="unmapped")
    assert code == 500
    assert 'service "hami/hook:8443" has no address' in body["message"]


def test_a_patch_that_cannot_be_applied_refuses_even_under_ignore(
    server: ApiServer, webhook: Webhook, configure: Callable[..., None], ns: str
) -> None:
    configure(failurePolicy="Ignore")
    webhook.respond = patching({"op": "remove", "path": "/metadata/annotations/absent"})
    code, _, body = create_pod(server, ns)
    assert code == 500
    assert "cannot be applied" in body["message"]
    assert stored(server, ns) is None


@pytest.mark.parametrize(
    ("fields", "called"),
    [
        pytest.param(
            {"namespaceSelector": {"matchLabels": {"gpu": "on"}}}, True, id="namespace-labels-match"
        ),
        pytest.param(
            {"namespaceSelector": {"matchLabels": {"gpu": "off"}}}, False, id="namespace-labels-miss"
        ),
        pytest.param(
            {
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}
                    ]
                }
            },
            True,
            id="namespace-expression-match",
        ),
        pytest.param({"objectSelector": {"matchLabels": {"app": "train"}}}, True, id="object-labels-match"),
        pytest.param(
            {
                "objectSelector": {
                    "matchExpressions": [
                        {"key": "hami.io/webhook", "operator": "NotIn", "values": ["ignore"]}
                    ]
                }
            },
            False,
            id="object-expression-miss",
        ),
        pytest.param(
            {"objectSelector": {"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}},
            False,
            id="object-not-exists",
        ),
        pytest.param(
            {
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["UPDATE"],
                        "resources": ["pods"],
                    }
                ]
            },
            False,
            id="other-operation",
        ),
        pytest.param(
            {"rules": [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*"]}]},
            True,
            id="wildcards",
        ),
        pytest.param(
            {
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["configmaps"],
                    }
                ]
            },
            False,
            id="other-resource",
        ),
    ],
)
def test_rules_and_selectors_decide_whether_the_webhook_is_called(
    server: ApiServer,
    webhook: Webhook,
    configure: Callable[..., None],
    ns: str,
    fields: dict[str, Any],
    called: bool,
) -> None:
    configure(**fields)
    labels = {"app": "train", "hami.io/webhook": "ignore"}
    assert create_pod(server, ns, labels=labels)[0] == 201
    assert bool(webhook.reviews) is called


def test_creates_of_other_resources_are_admitted_by_their_rules(
    server: ApiServer, webhook: Webhook, configure: Callable[..., None], ns: str
) -> None:
    configure(
        rules=[
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}
        ]
    )
    webhook.respond = patching({"op": "add", "path": "/data", "value": {"injected": "yes"}})
    code, _, cm = call(server, "POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "c"}})
    assert code == 201
    assert cm["data"] == {"injected": "yes"}
    assert webhook.reviews[0]["request"]["resource"]["resource"] == "configmaps"


class TestMatching:
    """webhook_matches without HTTP."""

    POD = {"metadata": {"name": "p", "labels": {"app": "x"}}}

    @pytest.mark.parametrize(
        ("rule", "matches"),
        [
            pytest.param(
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]},
                True,
                id="exact",
            ),
            pytest.param(
                {
                    "apiGroups": ["apps"],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE"],
                    "resources": ["pods"],
                },
                False,
                id="group",
            ),
            pytest.param(
                {"apiGroups": [""], "apiVersions": ["v2"], "operations": ["CREATE"], "resources": ["pods"]},
                False,
                id="version",
            ),
            pytest.param(
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["*"], "resources": ["*/*"]},
                True,
                id="all",
            ),
            pytest.param(
                {
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE"],
                    "resources": ["pods/status"],
                },
                False,
                id="subresource-only",
            ),
            pytest.param(
                {
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE"],
                    "resources": ["pods"],
                    "scope": "Cluster",
                },
                False,
                id="scope",
            ),
        ],
    )
    def test_rules(self, rule: dict[str, Any], matches: bool) -> None:
        hook = {"rules": [rule]}
        result = admission.webhook_matches(
            hook, rt=PODS, operation="CREATE", obj=self.POD, namespace_labels={}
        )
        assert result is matches

    def test_build_review_refuses_unknown_review_versions(self) -> None:
        with pytest.raises(Exception, match="AdmissionReview versions"):
            admission.build_review(
                {"admissionReviewVersions": ["v2"]}, rt=PODS, operation="CREATE", obj=self.POD
            )
