"""Fleet files: node counts, YAML documents, defaults and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hami_core.errors import ConfigError
from hami_core.localcluster.fleet import Fleet
from hami_core.localcluster.fleet import NodeSpec
from hami_core.localcluster.fleet import load_fleet


def test_a_count_gives_default_nodes_named_by_index() -> None:
    fleet = load_fleet(3)
    assert [node.name for node in fleet.nodes] == ["node-0", "node-1", "node-2"]
    assert fleet.nodes[0].allocatable() == {"cpu": "16", "memory": "64Gi", "pods": "110"}


def test_a_yaml_file_describes_each_node(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "nodes:\n"
        "- name: gpu-a\n"
        "  cpu: 32\n"
        "  labels: {gpu: 'on'}\n"
        "  resources: {nvidia.com/gpu: 40}\n"
        "  backend: nvidia\n"
        "- memory: 8Gi\n"
    )
    first, second = load_fleet(path).nodes
    assert first == NodeSpec(
        "gpu-a",
        cpu="32",
        labels={"gpu": "on"},
        resources={"nvidia.com/gpu": "40"},
        extra={"backend": "nvidia"},
    )
    assert first.allocatable()["nvidia.com/gpu"] == "40"
    assert (second.name, second.memory) == ("node-1", "8Gi")


def test_a_fleet_object_is_used_as_is() -> None:
    fleet = Fleet((NodeSpec("only"),))
    assert load_fleet(fleet) is fleet


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param(0, "at least one node", id="no-nodes"),
        pytest.param({"nodes": []}, "nodes: expected a non-empty list", id="empty"),
        pytest.param({"nodes": [{"cpu": "many"}]}, r"nodes\[0\].cpu", id="bad-quantity"),
        pytest.param({"nodes": [{"name": "a"}, {"name": "a"}]}, "duplicate", id="duplicate-names"),
        pytest.param(
            {"nodes": [{"labels": ["x"]}]}, r"nodes\[0\].labels: expected a mapping", id="bad-labels"
        ),
    ],
)
def test_malformed_fleets_name_the_key(source: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_fleet(source)  # type: ignore[arg-type]
