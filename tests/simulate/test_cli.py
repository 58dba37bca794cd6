from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hami_core.cli import hami
from hami_core.scheduler.policies.registry import PlacementPolicies
from hami_core.simulate.command import parse_policies

DATA = Path("/work/shared/data/alibaba-gpu-v2023")


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(
        yaml.safe_dump(
            {
                "nodes": [
                    {
                        "name": "g2",
                        "count": 3,
                        "cpu_milli": 96000,
                        "memory_mib": 393216,
                        "gpu": 8,
                        "model": "G2",
                    },
                    {
                        "name": "t4",
                        "count": 4,
                        "cpu_milli": 16000,
                        "memory_mib": 65536,
                        "gpu": 2,
                        "model": "T4",
                    },
                ]
            }
        )
    )
    workload = tmp_path / "workload.yaml"
    workload.write_text(
        yaml.safe_dump(
            {
                "pods": [
                    {
                        "name": "share",
                        "count": 20,
                        "cpu_milli": 4000,
                        "memory_mib": 8192,
                        "num_gpu": 1,
                        "gpu_milli": 470,
                    },
                    {
                        "name": "whole",
                        "count": 8,
                        "cpu_milli": 8000,
                        "memory_mib": 8192,
                        "num_gpu": 1,
                        "gpu_milli": 1000,
                    },
                    {"name": "cpu", "count": 4, "cpu_milli": 8000, "memory_mib": 8192},
                    {
                        "name": "t4",
                        "count": 4,
                        "cpu_milli": 2000,
                        "num_gpu": 1,
                        "gpu_milli": 300,
                        "gpu_spec": "T4",
                    },
                ]
            }
        )
    )
    return cluster, workload


def test_json_has_the_documented_shape(files: tuple[Path, Path]) -> None:
    cluster, workload = files
    args = ["simulate", "--cluster", str(cluster), "--workload", str(workload), "--policy", "fgd,random"]
    result = CliRunner().invoke(hami, [*args, "--seeds", "1-2", "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert list(document) == ["policies"]
    assert list(document["policies"]) == ["fgd", "random"]
    fgd = document["policies"]["fgd"]
    assert list(fgd) == ["unallocated_gpu_pct", "sd", "seeds", "cpu_seconds"]
    assert list(fgd["unallocated_gpu_pct"]) == [str(x) for x in range(0, 131, 5)]
    assert fgd["seeds"] == [1, 2]
    assert 0 <= fgd["unallocated_gpu_pct"]["100"] < fgd["unallocated_gpu_pct"]["50"] <= 100


def test_table_csv_and_errors(files: tuple[Path, Path], tmp_path: Path) -> None:
    cluster, workload = files
    out = tmp_path / "csv"
    args = ["simulate", "--cluster", str(cluster), "--workload", str(workload), "--policy", "bestfit"]
    result = CliRunner().invoke(hami, [*args, "--csv", str(out), "--arrive", "110"])
    assert result.exit_code == 0, result.output
    assert "bestfit" in result.output
    assert "@110 %" in result.output
    with (out / "analysis_allo_discrete.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:6] == ["workload", "sc_policy", "tune", "seed", "total_gpus", "0"]
    assert rows[0][-1] == "110"
    assert rows[1][:5] == ["workload", "bestfit", "1.1", "42", "32"]
    assert sorted(p.name for p in out.iterdir()) == [
        "analysis_allo_discrete.csv",
        "analysis_frag_discrete.csv",
        "analysis_frag_ratio_discrete.csv",
    ]
    bad = CliRunner().invoke(hami, [*args[:5], "--policy", "nope"])
    assert bad.exit_code == 1
    assert "unknown nope" in bad.output
    bad = CliRunner().invoke(hami, [*args, "--seeds", "9-3"])
    assert bad.exit_code == 1
    assert "runs backwards" in bad.output
    bad = CliRunner().invoke(hami, ["simulate", "--cluster", str(cluster)])
    assert bad.exit_code == 2
    assert "--pods CSV or --workload FILE" in bad.output


@pytest.mark.skipif(not DATA.is_dir(), reason="the Alibaba trace is not in the shared data folder")
def test_a_slice_of_the_real_trace(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.csv"
    lines = (DATA / "openb_node_list_gpu_node.csv").read_text().splitlines()
    nodes.write_text("\n".join([lines[0], *lines[1:1214:20]]) + "\n")  # every 20th node: 61 nodes
    pods = tmp_path / "pods.csv"
    rows = (DATA / "openb_pod_list_default.csv").read_text().splitlines()
    pods.write_text("\n".join([rows[0], *rows[1:8153:20]]) + "\n")  # every 20th pod: 408 pods
    args = ["simulate", "--nodes", str(nodes), "--pods", str(pods), "--policy", "random,fgd"]
    result = CliRunner().invoke(hami, [*args, "--seeds", "1", "--json"])
    assert result.exit_code == 0, result.output
    at_100 = {
        name: entry["unallocated_gpu_pct"]["100"]
        for name, entry in json.loads(result.stdout)["policies"].items()
    }
    assert at_100["fgd"] < at_100["random"]


def test_plot_needs_the_plot_extra_or_draws_the_file(files: tuple[Path, Path], tmp_path: Path) -> None:
    cluster, workload = files
    target = tmp_path / "out.png"
    args = ["simulate", "--cluster", str(cluster), "--workload", str(workload), "--policy", "fgd"]
    result = CliRunner().invoke(hami, [*args, "--plot", str(target)])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert result.exit_code == 1
        assert "pip install 'hami[plot]'" in result.output
        assert not target.exists()
    else:
        assert result.exit_code == 0, result.output
        assert target.read_bytes().startswith(b"\x89PNG")


def test_policy_all_runs_every_registered_node_policy() -> None:
    assert parse_policies("all") == ["binpack", "spread", *PlacementPolicies().placements()]
    assert parse_policies("fgd,fgd-strand") == ["fgd", "fgd-strand"]
