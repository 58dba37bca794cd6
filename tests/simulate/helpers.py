"""Small synthetic clusters and workloads for the simulator tests."""

from __future__ import annotations

from hami_core.simulate.trace import NodeSpec
from hami_core.simulate.trace import PodSpec


def node(name: str, gpus: int = 4, model: str = "G2", cpu: int = 32_000, memory: int = 131_072) -> NodeSpec:
    return NodeSpec(name=name, cpu_milli=cpu, memory_mib=memory, gpus=gpus, model=model)


def pod(
    name: str,
    gpus: int = 1,
    milli: int = 1000,
    cpu: int = 4000,
    memory: int = 8192,
    spec: tuple[str, ...] = (),
) -> PodSpec:
    return PodSpec(
        name=name,
        cpu_milli=cpu,
        memory_mib=memory,
        num_gpu=gpus,
        gpu_milli=milli if gpus else 0,
        gpu_spec=spec,
    )


def mixed_cluster() -> list[NodeSpec]:
    """Twelve nodes of three shapes and two models."""
    return [
        *(node(f"a-{i}", gpus=8, model="G2", cpu=96_000) for i in range(4)),
        *(node(f"b-{i}", gpus=2, model="T4", cpu=16_000, memory=65_536) for i in range(6)),
        *(node(f"c-{i}", gpus=4, model="V100M32", cpu=48_000) for i in range(2)),
    ]


def mixed_pods() -> list[PodSpec]:
    """A workload with shares, whole and multi-GPU pods, CPU-only pods and a model constraint."""
    shapes = [
        (1, 500, 4000, ()),
        (1, 250, 2000, ()),
        (1, 1000, 8000, ()),
        (2, 1000, 16_000, ()),
        (0, 0, 6000, ()),
        (1, 810, 6000, ()),
        (8, 1000, 64_000, ()),
        (1, 300, 3000, ("T4",)),
        (4, 1000, 24_000, ("V100M32", "G2")),
    ]
    return [
        pod(f"p-{i}", gpus=gpus, milli=milli, cpu=cpu, spec=spec)
        for i, (gpus, milli, cpu, spec) in enumerate(shapes * 6)
    ]
