"""``backends.nvidia`` (HAMi's device-config keys) and the per-node ``config.json``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hami_backend_nvidia.settings import MigAllowlistEntry
from hami_backend_nvidia.settings import NodeSettings
from hami_backend_nvidia.settings import parse_node_config
from hami_backend_nvidia.settings import parse_settings

from hami_core.sdk import ConfigError
from hami_core.sdk import parse_config


def _settings(section: dict[str, object], source: str = "cluster.yaml"):  # type: ignore[no-untyped-def]
    return parse_settings(parse_config({"version": "v1", "backends": {"nvidia": section}}, source))


def test_an_empty_section_gets_hamis_chart_defaults() -> None:
    settings = _settings({"enabled": True})
    names = settings.resource_names
    assert (names.count, names.memory, names.memory_percentage, names.cores, names.priority) == (
        "nvidia.com/gpu",
        "nvidia.com/gpumem",
        "nvidia.com/gpumem-percentage",
        "nvidia.com/gpucores",
        "nvidia.com/priority",
    )
    assert (settings.default_memory, settings.default_cores, settings.default_gpu_num) == (0, 0, 1)
    assert (settings.memory_factor, settings.gpu_core_policy, settings.runtime_class_name) == (
        1,
        "default",
        "",
    )
    assert (settings.overwrite_env, settings.disable_core_limit) == (False, False)
    assert settings.node_defaults == NodeSettings(split_count=10, memory_scaling=1.0, core_scaling=1.0)
    assert len(settings.mig_allowlist) == 9
    assert settings.mig_allowlist[0] == MigAllowlistEntry(("A30",), ("1g.6gb", "2g.12gb", "4g.24gb"))
    assert settings.ignored_xids == frozenset({13, 31, 43, 45, 68, 109})


def test_hamis_keys_are_read() -> None:
    settings = _settings(
        {
            "deviceSplitCount": 4,
            "deviceMemoryScaling": 1.5,
            "deviceCoreScaling": 2,
            "defaultMemory": 1000,
            "defaultCores": 20,
            "defaultGPUNum": 2,
            "memoryFactor": 1024,
            "gpuCorePolicy": "force",
            "runtimeClassName": "nvidia",
            "resourceCountName": "example.com/vgpu",
            "ignoredXids": [79],
        }
    )
    assert (settings.node_defaults.split_count, settings.node_defaults.memory_scaling) == (4, 1.5)
    assert settings.node_defaults.core_scaling == 2.0
    assert (settings.default_memory, settings.default_cores, settings.default_gpu_num) == (1000, 20, 2)
    assert (settings.memory_factor, settings.gpu_core_policy, settings.runtime_class_name) == (
        1024,
        "force",
        "nvidia",
    )
    assert settings.resource_names.count == "example.com/vgpu"
    assert 79 in settings.ignored_xids
    assert 13 in settings.ignored_xids


@pytest.mark.parametrize(
    ("section", "key"),
    [
        pytest.param({"resourceCount": "x"}, "resourceCount", id="unknown-key"),
        pytest.param({"memoryFactor": "2"}, "memoryFactor", id="int-as-string"),
        pytest.param({"memoryFactor": 0}, "memoryFactor", id="factor-zero"),
        pytest.param({"defaultCores": 101}, "defaultCores", id="cores-above-100"),
        pytest.param({"deviceSplitCount": True}, "deviceSplitCount", id="bool-as-int"),
        pytest.param({"deviceMemoryScaling": -1}, "deviceMemoryScaling", id="negative-scaling"),
        pytest.param({"gpuCorePolicy": "sometimes"}, "gpuCorePolicy", id="unknown-policy"),
        pytest.param({"overwriteEnv": "false"}, "overwriteEnv", id="bool-as-string"),
        pytest.param({"libCudaLogLevel": 9}, "libCudaLogLevel", id="log-level"),
        pytest.param({"resourceCountName": ""}, "resourceCountName", id="empty-count-name"),
        pytest.param({"migProfileAllowlist": [{"models": ["A30"]}]}, "migProfileAllowlist", id="allowlist"),
        pytest.param({"ignoredXids": [0]}, "ignoredXids", id="xid-zero"),
        pytest.param({"nodeConfigFile": "/does/not/exist.json"}, "nodeConfigFile", id="missing-node-config"),
    ],
)
def test_bad_values_name_the_file_and_key(section: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=f"^config cluster\\.yaml: backends\\.nvidia\\.{re.escape(key)}: "):
        _settings(section)


CHART_EXAMPLE = {
    "nodeconfig": [
        {
            "name": "your-node-name",
            "operatingmode": "hami-core",
            "devicememoryscaling": 1,
            "devicesplitcount": 10,
            "preconfigureddevicememory": 0,
            "enablenumatopology": False,
            "migstrategy": "none",
            "filterdevices": {"uuid": [], "index": []},
            "enablegetpreferredallocation": False,
        }
    ]
}


def test_the_charts_node_config_example_reads() -> None:
    nodes = parse_node_config(json.dumps(CHART_EXAMPLE), "config.json", NodeSettings(split_count=4))
    assert nodes["your-node-name"].split_count == 10


def test_a_node_entry_overrides_the_device_config_for_that_node_only(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    entry = {
        "name": "gpu-1",
        "devicesplitcount": 3,
        "devicecorescaling": 2,
        "operatingmode": "mig",
        "filterdevices": {"uuid": ["GPU-x"], "index": [2]},
    }
    path.write_text(json.dumps({"nodeconfig": [entry]}))
    settings = _settings({"deviceSplitCount": 7, "nodeConfigFile": str(path)})
    node = settings.for_node("gpu-1")
    assert (node.split_count, node.core_scaling, node.mode) == (3, 2.0, "mig")
    assert (node.filter_uuids, node.filter_indexes) == (frozenset({"GPU-x"}), frozenset({2}))
    assert settings.for_node("other").split_count == 7


@pytest.mark.parametrize(
    ("document", "key"),
    [
        pytest.param(
            {"nodeconfig": [{"name": "a", "devicesplitcount": "3"}]}, "nodeconfig[0].devicesplitcount"
        ),
        pytest.param({"nodeconfig": [{"name": "a", "operatingmode": "vgpu"}]}, "nodeconfig[0].operatingmode"),
        pytest.param(
            {"nodeconfig": [{"name": "a", "filterdevices": {"uuid": "GPU-x"}}]}, "nodeconfig[0].filterdevices"
        ),
        pytest.param({"nodeconfig": [{"devicesplitcount": 3}]}, "nodeconfig[0].name"),
        pytest.param({"nodeconfig": [{"name": "a"}, {"name": "b", "bogus": 1}]}, "nodeconfig[1].bogus"),
        pytest.param({"nodeconfig": {}}, "nodeconfig"),
    ],
)
def test_bad_node_config_names_the_file_and_key(document: object, key: str) -> None:
    with pytest.raises(ConfigError, match=f"^node config /etc/config.json: {re.escape(key)}: "):
        parse_node_config(json.dumps(document), "/etc/config.json", NodeSettings())


def test_node_config_that_is_not_json_says_so() -> None:
    with pytest.raises(ConfigError, match=r"^node config c\.json: <top level>: not valid JSON"):
        parse_node_config("{", "c.json", NodeSettings())
