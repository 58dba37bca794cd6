"""The NVIDIA facts live here: the core spells no NVIDIA name, and its scheduler never loads NVML.

These read the core itself (its source files, and the modules its scheduler side imports), so
they reach past the SDK on purpose.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import hami_core

CORE = Path(hami_core.__file__).parent


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _nvidia_names(path: Path) -> list[str]:
    """Identifiers and string literals (docstrings aside) in ``path`` that name NVIDIA."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names = [node.name]
        elif isinstance(node, ast.arg):
            names = [node.arg]
        elif isinstance(node, ast.alias):
            names = [node.name, node.asname or ""]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            names = [node.value]
        found.extend(
            f"{path.relative_to(CORE)}:{node.lineno}: {name!r}" for name in names if "nvidia" in name.lower()
        )  # type: ignore[attr-defined]
    return found


def test_the_core_spells_no_nvidia_name() -> None:
    offenders = [hit for path in sorted(CORE.rglob("*.py")) for hit in _nvidia_names(path)]
    assert offenders == [], "NVIDIA names belong in plugins/nvidia:\n" + "\n".join(offenders)


def test_the_scheduler_process_loads_no_nvml() -> None:
    """Building the scheduler side with the NVIDIA backend enabled imports neither pynvml nor discovery."""
    script = textwrap.dedent(
        """
        import json, sys
        from hami_core import plugins
        from hami_core.config import HamiConfig
        from hami_core.pods import ContainerView
        from hami_core.scheduler import app, filtering
        from hami_core.webhook import mutating
        backends = plugins.load_backends(HamiConfig().with_enabled(["nvidia"]))
        nvidia = backends.get("nvidia")
        nvidia.parse_request(ContainerView.from_object({"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}))
        print(json.dumps(sorted(m for m in sys.modules if "pynvml" in m or m == "hami_backend_nvidia.discovery")))
        """
    )
    env = {key: value for key, value in os.environ.items() if key != "LD_PRELOAD"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []
