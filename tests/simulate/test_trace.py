from __future__ import annotations

import json
from pathlib import Path

import pytest

from hami_core.simulate.trace import TraceError
from hami_core.simulate.trace import load_nodes
from hami_core.simulate.trace import load_pods

DATA = Path(__file__).parent / "data"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_trace_csvs_are_read_with_their_columns(tmp_path: Path) -> None:
    nodes = load_nodes(
        write(
            tmp_path / "n.csv",
            "sn,cpu_milli,memory_mib,gpu,model\nopenb-node-0001,96000,393216,8,G2\nx,8000,1024,0,\n",
        )
    )
    assert [(n.name, n.cpu_milli, n.memory_mib, n.gpus, n.model) for n in nodes] == [
        ("openb-node-0001", 96000, 393216, 8, "G2"),
        ("x", 8000, 1024, 0, ""),
    ]
    assert nodes[0].gpu_memory_mib == 20_000
    pods = load_pods(
        write(
            tmp_path / "p.csv",
            "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"
            "a,6000,12288,1,460,V100M16|V100M32\nb,4000,100,0,0,\nc,1000,10,2,1000,\n",
        )
    )
    assert [(p.name, p.num_gpu, p.gpu_milli, p.gpu_spec, p.gpu_demand) for p in pods] == [
        ("a", 1, 460, ("V100M16", "V100M32"), 460),
        ("b", 0, 0, (), 0),
        ("c", 2, 1000, (), 2000),
    ]


def test_multigpu_layout_without_spec_columns_is_read(tmp_path: Path) -> None:
    pods = load_pods(write(tmp_path / "p.csv", "name,cpu_milli,memory_mib,num_gpu,gpu_milli\na,1,1,1,1000\n"))
    assert pods[0].gpu_spec == ()


def test_yaml_and_json_files_expand_counts(tmp_path: Path) -> None:
    cluster = write(
        tmp_path / "c.yaml",
        "nodes:\n- {name: big, count: 3, cpu_milli: 96000, memory_mib: 1000, gpu: 8, model: G2}\n"
        "- {name: solo, cpu_milli: 1000, memory_mib: 10, gpu: 1, model: T4}\n",
    )
    assert [n.name for n in load_nodes(cluster)] == ["big-0000", "big-0001", "big-0002", "solo"]
    workload = tmp_path / "w.json"
    workload.write_text(
        json.dumps(
            {
                "pods": [
                    {
                        "name": "s",
                        "count": 2,
                        "cpu_milli": 1,
                        "num_gpu": 1,
                        "gpu_milli": 500,
                        "gpu_spec": ["T4"],
                    }
                ]
            }
        )
    )
    pods = load_pods(workload)
    assert [(p.name, p.gpu_spec, p.memory_mib) for p in pods] == [
        ("s-0000", ("T4",), 0),
        ("s-0001", ("T4",), 0),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sn,cpu_milli,memory_mib,gpu\nx,1,1,1\n", "missing column(s) model"),
        (
            "sn,cpu_milli,memory_mib,gpu,model\nx,lots,1,1,G2\n",
            "row 2: cpu_milli must be an integer, got 'lots'",
        ),
        ("sn,cpu_milli,memory_mib,gpu,model\nx,1,1,4,\n", "node x has 4 GPUs but no model"),
        ("sn,cpu_milli,memory_mib,gpu,model\nx,-1,1,1,G2\n", "cpu_milli must be at least 0"),
        ("sn,cpu_milli,memory_mib,gpu,model\nx,1,1,1,G2\nx,1,1,1,G2\n", "two nodes are named 'x'"),
        ("sn,cpu_milli,memory_mib,gpu,model\n", "no nodes"),
    ],
)
def test_bad_node_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_nodes(write(tmp_path / "n.csv", text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,cpu_milli,memory_mib,num_gpu,gpu_milli\na,1,1,2,500\n", "fraction of each of 2 GPUs"),
        ("name,cpu_milli,memory_mib,num_gpu,gpu_milli\na,1,1,1,0\n", "asks 1 GPUs with gpu_milli 0"),
        ("name,cpu_milli,memory_mib,num_gpu\na,1,1,1\n", "missing column(s) gpu_milli"),
    ],
)
def test_bad_pod_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_pods(write(tmp_path / "p.csv", text))


def test_unreadable_and_malformed_documents(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read"):
        load_nodes(tmp_path / "missing.csv")
    with pytest.raises(TraceError, match="not valid YAML"):
        load_nodes(write(tmp_path / "c.yaml", "nodes: [\n"))
    with pytest.raises(TraceError, match="a list under 'pods'"):
        load_pods(write(tmp_path / "w.yaml", "pod: []\n"))
