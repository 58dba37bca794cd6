"""Run by the ``hami backend new`` acceptance test inside the scaffolded backend's venv.

Deploys hami onto a local cluster the way the chart does (``hami scheduler`` and one
``hami device-plugin --backend NAME`` process, each loading the backend through its installed
entry point, on ``fake_devices``), runs one pod asking the backend's resources and prints what
``Allocate`` gave it as JSON: ``{"node": ..., "env": {...}}``.

Usage: ``python deployed_pod.py NAME DOMAIN``
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from hami_core.localcluster.fleet import Fleet
from hami_core.localcluster.stack import HamiStack
from hami_core.testing import make_container
from hami_core.testing import make_pod
from hami_core.testing import run_pod


def main(name: str, domain: str) -> None:
    document = {"version": "v1", "backends": {name: {"enabled": True, "fake_devices": 2}}}
    workdir = Path(tempfile.mkdtemp(prefix="h"))
    try:
        with HamiStack(document, Fleet.of_size(1), workdir) as stack:
            limits = {f"{domain}/device": 1, f"{domain}/device-memory": 2048, f"{domain}/device-cores": 25}
            run = run_pod(stack.kube, make_pod("deployed", containers=[make_container(limits=limits)]))
            print(json.dumps({"node": run.node, "env": dict(run.env())}))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
