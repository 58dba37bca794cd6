"""Benchmark of one ``hami monitor`` tick (not a test: it prints figures).

Places N copies of HAMi-core's own region file (``tests/monitor/data``, two processes) under a node
directory, maps them all to pods, and times ticks: find, copy and decode every region, build the
snapshot, plan and write priorities, and render the Prometheus text of a scrape.

Usage: ``python bench/monitor_scan.py --containers 110 [--ticks 20]``
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import tempfile
import time
from pathlib import Path

from prometheus_client import generate_latest

from hami_core.monitor.app import registry_for
from hami_core.monitor.service import Monitor

DATA = Path(__file__).resolve().parents[1] / "tests" / "monitor" / "data" / "two-procs-300-200.cache.gz"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=110)
    parser.add_argument("--ticks", type=int, default=20)
    args = parser.parse_args()
    region = gzip.decompress(DATA.read_bytes())
    with tempfile.TemporaryDirectory() as root:
        pods = []
        for i in range(args.containers):
            uid = f"{i:08x}-0000-4000-8000-000000000000"
            directory = Path(root) / "containers" / f"{uid}_main"
            directory.mkdir(parents=True)
            (directory / "r.cache").write_bytes(region)
            pods.append({"metadata": {"uid": uid, "namespace": "bench", "name": f"pod-{i}"}})
        monitor = Monitor(Path(root) / "containers", lambda: pods)
        registry = registry_for(monitor, "bench-node")
        ticks, scrapes = [], []
        for _ in range(args.ticks):
            started = time.perf_counter()
            monitor.tick()
            ticks.append(time.perf_counter() - started)
            started = time.perf_counter()
            text = generate_latest(registry)
            scrapes.append(time.perf_counter() - started)
    print(f"containers={args.containers}")
    print(f"tick_p50_ms={statistics.median(ticks) * 1000:.1f} tick_max_ms={max(ticks) * 1000:.1f}")
    print(f"scrape_p50_ms={statistics.median(scrapes) * 1000:.1f} scrape_bytes={len(text)}")


if __name__ == "__main__":
    main()
