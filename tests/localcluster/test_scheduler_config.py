"""Reading KubeSchedulerConfiguration the way HAMi's chart writes it."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from hami_core.errors import ConfigError
from hami_core.localcluster.scheduler_config import ManagedResource
from hami_core.localcluster.scheduler_config import SchedulerConfig
from hami_core.localcluster.scheduler_config import load_scheduler_config
from hami_core.localcluster.scheduler_config import parse_duration

HAMI_CHART = """
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection: {leaderElect: false}
profiles:
- schedulerName: hami-scheduler
extenders:
- urlPrefix: "https://127.0.0.1:443"
  filterVerb: filter
  bindVerb: bind
  weight: 1
  enableHTTPS: true
  tlsConfig: {insecure: true}
  httpTimeout: 30s
  nodeCacheCapable: true
  ignorable: false
  managedResources:
  - {name: nvidia.com/gpu, ignoredByScheduler: true}
  - {name: nvidia.com/gpumem, ignoredByScheduler: true}
"""


def test_hami_charts_configuration_is_read_completely() -> None:
    config = load_scheduler_config(HAMI_CHART)
    assert config.scheduler_names == ("hami-scheduler",)
    (extender,) = config.extenders
    assert extender.url_prefix == "https://127.0.0.1:443"
    assert (extender.filter_verb, extender.prioritize_verb, extender.bind_verb) == ("filter", "", "bind")
    assert extender.enable_https
    assert extender.tls is not None
    assert extender.tls.insecure
    assert extender.http_timeout == 30.0
    assert extender.node_cache_capable
    assert extender.managed_resources == (
        ManagedResource("nvidia.com/gpu", ignored_by_scheduler=True),
        ManagedResource("nvidia.com/gpumem", ignored_by_scheduler=True),
    )
    assert config.ignored_resources == {"nvidia.com/gpu", "nvidia.com/gpumem"}


def test_a_file_is_read_and_defaults_fill_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("extenders:\n- urlPrefix: http://127.0.0.1:8080\n")
    config = load_scheduler_config(path)
    assert config.scheduler_names == ("default-scheduler",)
    assert config.extenders[0].http_timeout == 5.0
    assert config.extenders[0].weight == 1


def test_no_configuration_means_the_default_profile_without_extenders() -> None:
    assert load_scheduler_config(None) == SchedulerConfig()


def test_tls_data_is_base64_decoded() -> None:
    encoded = base64.b64encode(b"-----BEGIN CERTIFICATE-----").decode()
    config = load_scheduler_config(
        {"extenders": [{"urlPrefix": "https://x", "tlsConfig": {"caData": encoded}}]}
    )
    tls = config.extenders[0].tls
    assert tls is not None
    assert tls.ca_data == b"-----BEGIN CERTIFICATE-----"
    assert tls.has_ca


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("30s", 30.0, id="seconds"),
        pytest.param("1m30s", 90.0, id="compound"),
        pytest.param("500ms", 0.5, id="millis"),
        pytest.param("0", 0.0, id="zero"),
    ],
)
def test_go_durations_are_parsed(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param(
            {"extenders": [{"filterVerb": "filter"}]}, r"extenders\[0\].urlPrefix: required", id="no-url"
        ),
        pytest.param({"extenders": [{"urlPrefix": "http://x", "bogus": 1}]}, "unknown key", id="unknown-key"),
        pytest.param(
            {"extenders": [{"urlPrefix": "http://x", "httpTimeout": "soon"}]},
            "not a duration",
            id="bad-timeout",
        ),
        pytest.param(
            {
                "extenders": [
                    {"urlPrefix": "http://a", "bindVerb": "b"},
                    {"urlPrefix": "http://b", "bindVerb": "b"},
                ]
            },
            "only one extender can implement bind",
            id="two-binders",
        ),
        pytest.param({"kind": "Pod"}, "kind", id="wrong-kind"),
        pytest.param(
            {"profiles": [{"schedulerName": "a"}, {"schedulerName": "a"}]}, "duplicate", id="duplicates"
        ),
    ],
)
def test_malformed_configurations_name_the_key(document: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_scheduler_config(document)
