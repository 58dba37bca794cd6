"""The shim installer init container: a new library never rewrites the one running containers map."""

from __future__ import annotations

import mmap
import subprocess
from pathlib import Path

from tests.chart.chart import KUBE_VERSIONS
from tests.chart.chart import render

IMAGE_LIB = "/usr/local/lib/hami"


def installer(tmp_path: Path) -> tuple[list[str], str, str]:
    """The rendered install-shim container's argv, its host mount path and the host path it mounts."""
    docs = render(tmp_path / "helm", {"backends.nvidia.shim.enabled": True}, kube_version=KUBE_VERSIONS[-1])
    (daemonset,) = [d for d in docs if d["kind"] == "DaemonSet"]
    pod = daemonset["spec"]["template"]["spec"]
    (container,) = [c for c in pod["initContainers"] if c["name"] == "install-shim"]
    (mount,) = container["volumeMounts"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    device_plugin = next(c for c in pod["containers"] if c["name"] == "device-plugin")
    assert {"name": mount["name"], "mountPath": volume["hostPath"]["path"]} in device_plugin["volumeMounts"]
    return [*container["command"], *container["args"]], mount["mountPath"], volume["hostPath"]["path"]


def run(argv: list[str], mount: str, host: Path, image: Path) -> None:
    script = argv[-1].replace(mount, str(host)).replace(IMAGE_LIB, str(image))
    subprocess.run([*argv[:-1], script], check=True, timeout=30)


def test_upgrade_renames_a_new_library_into_place_leaving_mapped_ones_intact(tmp_path: Path) -> None:
    argv, mount, host_path = installer(tmp_path)
    assert host_path == "/usr/local/vgpu"
    image, host = tmp_path / "image", tmp_path / "host" / "vgpu"
    image.mkdir()
    (image / "libvgpu.so").write_bytes(b"version-1" * 1000)
    run(argv, mount, host, image)
    installed = host / "libvgpu.so"
    assert installed.read_bytes() == b"version-1" * 1000

    # A running container has the old library mapped; the DaemonSet is upgraded.
    with installed.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        old_inode = installed.stat().st_ino
        (image / "libvgpu.so").write_bytes(b"version-2" * 1000)
        run(argv, mount, host, image)
        assert mapped[:9] == b"version-1"
        assert mapped[-9:] == b"version-1"
    assert installed.read_bytes() == b"version-2" * 1000
    assert installed.stat().st_ino != old_inode
    assert sorted(p.name for p in host.iterdir()) == ["libvgpu.so"]


def test_a_missing_library_fails_the_init_container(tmp_path: Path) -> None:
    argv, mount, _ = installer(tmp_path)
    image, host = tmp_path / "image", tmp_path / "host"
    image.mkdir()
    result = subprocess.run(
        [*argv[:-1], argv[-1].replace(mount, str(host)).replace(IMAGE_LIB, str(image))], capture_output=True
    )
    assert result.returncode != 0
    assert not (host / "libvgpu.so").exists()
