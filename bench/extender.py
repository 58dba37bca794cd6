"""Benchmark of the scheduler extender's filter and bind (not a test: it prints figures).

Builds an in-memory API (``FakeKube``) with N nodes x G mock devices, pre-fills them with bound pods
holding realistic shares (sampled from the Alibaba GPU trace's ``num_gpu`` / ``gpu_milli`` columns
when ``--trace-dir`` is given, from a built-in approximation of that mix otherwise), starts the real
scheduler (watches, cache, filtering, binding, node lock) on it, then sends a stream of new pods
through filter and bind, either by calling the extender verbs in process or over HTTP as
kube-scheduler does (``NodeNames`` with every node, keep-alive connection). After each bind the bench
plays the device plugin (bind-phase ``success``, node lock released), outside the timed window.

CPU is live, so CPU-aware placement policies are measured as in production: each node has an
allocatable CPU (a trace node's ``cpu_milli`` with as many GPUs when ``--trace-dir`` is given, else
12 cores per device) and every pod a CPU request (the trace pod's ``cpu_milli``, else a sampled mix
of 3 to 18 cores per GPU). Pre-filled pods stop at the node's CPU; each stream pod is offered only
the nodes with enough free CPU, as kube-scheduler's own ``NodeResourcesFit`` would (worked out
outside the timed window).

``pods_per_s`` is pods divided by the time spent inside filter and bind; ``filter_p50_ms`` and
``filter_p99_ms`` are per-call filter latencies (wall clock, so on a loaded machine they include the
time other processes held the CPU); ``filter_cpu_p50_ms`` and ``filter_cpu_p99_ms`` are the same
calls' CPU time in the calling thread (in process only: over HTTP the server thread does the work),
which load barely moves. ``phases_mean_ms`` says where a filter's time goes: body decode, choose,
commit and reply encode (decode and encode over HTTP only), from the scheduler's own
``hami_scheduler_filter_phase_duration_seconds`` histogram. ``peak_rss_mb`` is the process's peak
RSS (FakeKube and its event history included; ``peak_rss_mb_built_synced`` gives it once the fake
cluster is built and once the scheduler has synced); ``rss_mb_by_quarter`` is the current RSS after each
quarter of the stream, which stays flat when nothing but the pods' bookings grows.

Usage: ``python bench/extender.py --nodes 5000 --devices-per-node 8 --pods 2000 [--mode http] [--json]``;
``--pods 20000 --lifetime 2000`` runs a long stream in steady state (pods finish and are deleted, and
the fake API drops Events instead of storing them) to show that memory stays flat.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import random
import resource
import statistics
import sys
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from pathlib import Path

import orjson

from hami_core import codec
from hami_core.config import HamiConfig
from hami_core.config import parse_config
from hami_core.devices import ContainerDevice
from hami_core.kube.nodelock import NodeLock
from hami_core.plugins import load_backends
from hami_core.pods import PodView
from hami_core.scheduler.app import SchedulerApp
from hami_core.scheduler.app import build_scheduler
from hami_core.scheduler.policies.registry import PlacementPolicies
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_node
from hami_core.testing.builders import make_pod
from hami_core.testing.fake_kube import FakeKube

#: The pod-aware node policies (registered by the scheduler next to binpack and spread).
PLACEMENT_POLICIES = tuple(PlacementPolicies().placements())
MEMORY_MIB = 24576
SPLIT = 10
#: Allocatable CPU per device of a node when no trace gives one (96 cores for 8 devices).
CPU_PER_DEVICE = 12_000
#: (cores per GPU, weight) approximating the trace's default pod list when no data dir is given.
DEFAULT_CPU_MIX = [(3, 16), (4, 8), (6, 2), (8, 7), (11, 23), (12, 3), (16, 2), (18, 2)]
#: (num_gpu, gpu_milli) weights approximating the trace's default pod list when no data dir is given.
DEFAULT_MIX = [
    ((1, 1000), 30),
    ((1, 810), 11),
    ((1, 470), 8),
    ((1, 320), 4),
    ((1, 650), 3),
    ((1, 230), 2),
    ((1, 500), 10),
    ((2, 1000), 2),
    ((4, 1000), 1),
    ((8, 1000), 1),
]


def shapes(trace_dir: Path | None, rng: random.Random) -> Iterator[tuple[int, int, int]]:
    """An endless stream of (devices, share in 1/1000, CPU in milli-cores) pod shapes."""
    if trace_dir is not None:
        rows = []
        with (trace_dir / "openb_pod_list_default.csv").open(newline="") as handle:
            for row in csv.DictReader(handle):
                count, milli = int(row["num_gpu"]), int(row["gpu_milli"])
                if count > 0:
                    rows.append((count, min(1000, milli), int(row["cpu_milli"])))
        while True:
            yield rng.choice(rows)
    population = [shape for shape, _ in DEFAULT_MIX]
    weights = [weight for _, weight in DEFAULT_MIX]
    cores = [core for core, _ in DEFAULT_CPU_MIX]
    core_weights = [weight for _, weight in DEFAULT_CPU_MIX]
    while True:
        count, milli = rng.choices(population, weights)[0]
        yield count, milli, count * rng.choices(cores, core_weights)[0] * 1000


def node_cpus(trace_dir: Path | None, devices: int, rng: random.Random) -> Iterator[int]:
    """An endless stream of node allocatable CPUs (milli-cores) for nodes of ``devices`` devices."""
    found = []
    if trace_dir is not None:
        with (trace_dir / "openb_node_list_gpu_node.csv").open(newline="") as handle:
            found = [int(row["cpu_milli"]) for row in csv.DictReader(handle) if int(row["gpu"]) == devices]
    while True:
        yield rng.choice(found) if found else CPU_PER_DEVICE * devices


def resources_of(count: int, milli: int) -> dict[str, str | int]:
    percent = max(1, milli // 10)
    return {
        "mock.hami.io/gpu": count,
        "mock.hami.io/gpumem-percentage": percent,
        "mock.hami.io/gpucores": percent,
    }


def build(args: argparse.Namespace) -> tuple[FakeKube, HamiConfig, dict[str, int]]:
    """The cluster: nodes with registered devices and pods already holding shares of them.

    Returns the API, the config and each node's free CPU (milli-cores) after the pre-fill.
    """
    rng = random.Random(args.seed)
    config = parse_config(
        {
            "version": "v1",
            "scheduler": {"node_scheduler_policy": args.policy, "gpu_scheduler_policy": "spread"},
            "backends": {
                "mock": {
                    "enabled": True,
                    "devices": [{"count": args.devices_per_node, "memory_mib": MEMORY_MIB, "split": SPLIT}],
                }
            },
        },
        "bench",
    )
    kube = FakeKube(history=max(1000, min(args.pods, 2000) * 8))
    mock = load_backends(config).get("mock")
    names = [f"node-{i:05d}" for i in range(args.nodes)]
    stream = shapes(args.trace_dir, rng)
    cpus = node_cpus(args.trace_dir, args.devices_per_node, rng)
    cpu_free: dict[str, int] = {}
    placed = 0
    for name in names:
        devices = mock.discover(name)
        cpu_free[name] = next(cpus)
        kube.create_node(
            make_node(
                name,
                annotations={
                    mock.keys.register: mock.encode_node_devices(devices),
                    mock.keys.handshake: codec.format_handshake_requesting(datetime.now(UTC)),
                },
                allocatable={"mock.hami.io/gpu": args.devices_per_node * SPLIT, "cpu": f"{cpu_free[name]}m"},
            )
        )
        free = {d.id: [SPLIT, MEMORY_MIB, 100] for d in devices}
        # Pre-fill each node towards the target share of its memory with trace-shaped pods.
        target = args.fill * MEMORY_MIB * len(devices) * rng.uniform(0.3, 1.7)
        used = 0.0
        while used < target:
            count, milli, cpu = next(stream)
            need_mem, need_cores = MEMORY_MIB * milli // 1000, milli // 10
            if cpu > cpu_free[name]:
                break
            fitting = [
                uid
                for uid, (slots, mem, cores) in free.items()
                if slots > 0 and mem >= need_mem and cores >= need_cores
            ]
            if len(fitting) < count:
                break
            chosen = rng.sample(fitting, count)
            entry = [
                ContainerDevice(uuid=uid, type="MOCK", usedmem=need_mem, usedcores=need_cores)
                for uid in chosen
            ]
            for uid in chosen:
                free[uid][0] -= 1
                free[uid][1] -= need_mem
                free[uid][2] -= need_cores
            value = codec.encode_pod_devices([entry])
            cpu_free[name] -= cpu
            pod = make_pod(
                f"pre-{placed}",
                containers=[make_container(limits=resources_of(count, milli), requests={"cpu": f"{cpu}m"})],
                annotations={codec.VGPU_NODE: name, mock.keys.allocated: value, mock.keys.to_allocate: value},
                node_name=name,
                phase="Running",
            )
            kube.create_pod("default", pod)
            placed += 1
            used += need_mem * count
    print(
        f"# built {args.nodes} nodes x {args.devices_per_node} devices with {placed} running pods",
        file=sys.stderr,
    )
    return kube, config, cpu_free


class HttpVerbs:
    """POSTs the extender JSON the way kube-scheduler does, over one keep-alive connection.

    Bodies are encoded and replies decoded with orjson, so the client's own share of a round trip
    stays small, as Go's is for kube-scheduler.
    """

    def __init__(self, port: int) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, verb: str, body: object) -> dict[str, object]:
        data = orjson.dumps(body)
        self._connection.request("POST", f"/{verb}", body=data, headers={"Content-Type": "application/json"})
        response = self._connection.getresponse()
        reply: dict[str, object] = orjson.loads(response.read())
        return reply

    def close(self) -> None:
        self._connection.close()


def run(args: argparse.Namespace) -> dict[str, object]:
    kube, config, cpu_free = build(args)
    app: SchedulerApp = build_scheduler(
        config, kube, serve=args.mode == "http", bind="127.0.0.1:0", metrics_bind="", resync=3600.0
    )
    started = time.perf_counter()
    built_rss = _peak_rss_mb()
    app.start(sync_timeout=600)
    synced_rss = _peak_rss_mb()
    print(f"# cache synced in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    if args.lifetime:
        # A long run keeps the fake API's size steady: its stored Events would grow without end.
        kube.create_event = lambda namespace, event: event  # type: ignore[method-assign]
    lock = NodeLock(kube)
    client = HttpVerbs(app.server.port) if app.server is not None else None
    stream = shapes(args.trace_dir, random.Random(args.seed + 1))
    kube.create_namespace({"metadata": {"name": "bench"}})
    filter_times: list[float] = []
    cpu_times: list[float] = []
    rss_samples: list[float] = []
    scheduled_times: list[float] = []
    unschedulable_times: list[float] = []
    verb_time = 0.0
    running: deque[tuple[str, str, int]] = deque()
    scheduled = unschedulable = 0
    try:
        for i in range(args.pods):
            count, milli, cpu = next(stream)
            container = make_container(limits=resources_of(count, milli), requests={"cpu": f"{cpu}m"})
            # kube-scheduler's NodeResourcesFit has passed only the nodes with room for the CPU.
            names = [name for name, free in cpu_free.items() if free >= cpu]
            pod = kube.create_pod("bench", make_pod(f"stream-{i}", namespace="bench", containers=[container]))
            metadata = pod["metadata"]
            if (i + 1) % max(1, args.pods // 4) == 0:
                rss_samples.append(_current_rss_mb())
            c0 = time.thread_time()
            t0 = time.perf_counter()
            if client is not None:
                reply = client.post("filter", {"Pod": pod, "Nodes": None, "NodeNames": names})
            else:
                reply = dict(app.extender.filter(PodView.from_object(pod), names, None))
            t1 = time.perf_counter()
            cpu_times.append(time.thread_time() - c0)
            filter_times.append(t1 - t0)
            chosen = reply.get("NodeNames") or []
            if not chosen:
                if reply.get("Error"):
                    print(f"# filter failed: {reply['Error']}", file=sys.stderr)
                unschedulable += 1
                unschedulable_times.append(t1 - t0)
                verb_time += t1 - t0
                continue
            node = chosen[0]  # type: ignore[index]
            if client is not None:
                bound = client.post(
                    "bind",
                    {
                        "PodName": metadata["name"],
                        "PodNamespace": "bench",
                        "PodUID": metadata["uid"],
                        "Node": node,
                    },
                )
            else:
                bound = dict(app.extender.bind("bench", metadata["name"], metadata["uid"], node))
            verb_time += time.perf_counter() - t0
            if bound.get("Error"):
                print(f"# bind failed: {bound['Error']}", file=sys.stderr)
                continue
            scheduled += 1
            scheduled_times.append(t1 - t0)
            # The device plugin's part, untimed: allocation done, lock released.
            kube.patch_pod(
                "bench",
                metadata["name"],
                {"metadata": {"annotations": {codec.BIND_PHASE: codec.BIND_PHASE_SUCCESS}}},
            )
            lock.release(str(node), "bench", metadata["name"])
            cpu_free[str(node)] -= cpu
            running.append((str(metadata["name"]), str(node), cpu))
            if args.lifetime and len(running) > args.lifetime:
                gone, where, freed = running.popleft()
                kube.delete_pod("bench", gone)  # it finished; its devices and CPU are free
                cpu_free[where] += freed
    finally:
        if client is not None:
            client.close()
        app.stop()
    ordered = sorted(filter_times)
    return {
        "nodes": args.nodes,
        "devices_per_node": args.devices_per_node,
        "mode": args.mode,
        "policy": args.policy,
        "pods": args.pods,
        "scheduled": scheduled,
        "unschedulable": unschedulable,
        "pods_per_s": round(args.pods / verb_time, 1) if verb_time else 0.0,
        "filter_p50_ms": round(statistics.median(ordered) * 1000, 3),
        "filter_p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
        "filter_cpu_p50_ms": round(statistics.median(cpu_times) * 1000, 3) if client is None else None,
        "filter_cpu_p99_ms": _p99_ms(cpu_times) if client is None else None,
        "phases_mean_ms": _phases(app),
        "peak_rss_mb": _peak_rss_mb(),
        "peak_rss_mb_built_synced": [built_rss, synced_rss],
        "rss_mb_by_quarter": rss_samples,
        "scheduled_filter_p99_ms": _p99_ms(scheduled_times),
        "unschedulable_filter_mean_ms": round(statistics.fmean(unschedulable_times) * 1000, 3)
        if unschedulable_times
        else 0.0,
    }


def _phases(app: SchedulerApp) -> dict[str, float]:
    """Mean milliseconds per filter call spent in each phase, from the scheduler's histogram."""
    registry = app.metrics.registry
    means = {}
    for phase in ("decode", "choose", "commit", "encode"):
        labels = {"phase": phase}
        count = registry.get_sample_value("hami_scheduler_filter_phase_duration_seconds_count", labels)
        total = registry.get_sample_value("hami_scheduler_filter_phase_duration_seconds_sum", labels)
        if count:
            means[phase] = round((total or 0.0) / count * 1000, 3)
    return means


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _current_rss_mb() -> float:
    """The process's resident set now (Linux), in MiB."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return round(pages * resource.getpagesize() / 2**20, 1)


def _p99_ms(times: list[float]) -> float:
    ordered = sorted(times)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3) if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--devices-per-node", type=int, default=8)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--mode", choices=("inprocess", "http"), default="inprocess")
    parser.add_argument(
        "--policy",
        choices=("binpack", "spread", *PLACEMENT_POLICIES),
        default="binpack",
        help="node policy; the placement policies (fgd, bestfit, ...) keep per-kind rankings",
    )
    parser.add_argument("--fill", type=float, default=0.5, help="mean share of device memory pre-allocated")
    parser.add_argument(
        "--trace-dir",
        type=Path,
        help="the Alibaba GPU trace directory (openb_pod_list_default.csv, openb_node_list_gpu_node.csv)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--lifetime",
        type=int,
        default=0,
        help="delete each scheduled stream pod this many pods later (steady state for long runs); 0 keeps all",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>18}: {value}")


if __name__ == "__main__":
    main()
