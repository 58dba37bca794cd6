"""``hami backend new``: the name rules, the rendered project, and the command's refusals."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from hami_core import scaffold
from hami_core.cli import hami
from hami_core.sdk import CONTRACT_VERSION

SPEC = scaffold.BackendSpec(name="acme", domain="acme.example.com", core_version="0.1.0")


@pytest.mark.parametrize("name", ["acme", "x", "gpu2", "a" * scaffold.MAX_NAME_LENGTH])
def test_lowercase_names_of_letters_and_digits_are_accepted(name: str) -> None:
    assert scaffold.check_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        pytest.param("Acme", "not a backend name", id="uppercase"),
        pytest.param("acme-gpu", "not a backend name", id="dash-not-a-python-identifier"),
        pytest.param("acme_gpu", "not a backend name", id="underscore-not-a-helm-key-word"),
        pytest.param("2acme", "not a backend name", id="leading-digit"),
        pytest.param("", "not a backend name", id="empty"),
        pytest.param("acme.io", "not a backend name", id="dot"),
        pytest.param("a" * (scaffold.MAX_NAME_LENGTH + 1), "characters long", id="too-long"),
    ],
)
def test_names_that_cannot_serve_every_surface_are_refused_with_the_reason(name: str, why: str) -> None:
    with pytest.raises(scaffold.ScaffoldError, match=why):
        scaffold.check_name(name)


@pytest.mark.parametrize("domain", ["acme.com", "gpu.acme.io"])
def test_dns_domains_are_accepted(domain: str) -> None:
    assert scaffold.check_domain(domain) == domain


@pytest.mark.parametrize("domain", ["acme", "Acme.com", "acme.com/", "-acme.com", "node.kubernetes.io"])
def test_domains_that_cannot_prefix_resource_names_are_refused(domain: str) -> None:
    with pytest.raises(scaffold.ScaffoldError, match="cannot prefix"):
        scaffold.check_domain(domain)


def test_the_project_has_every_file_with_its_names_substituted() -> None:
    files = scaffold.render(SPEC, scaffold.load_templates())
    assert set(files) == {path.format(name="acme") for path in scaffold.FILES}
    for path, text in files.items():
        assert "$" not in text.replace("${HAMI_IMAGE}", ""), f"{path} has an unsubstituted variable"
        if path.endswith(".py"):
            ast.parse(text, path)
    project = tomllib.loads(files["pyproject.toml"])
    assert project["project"]["name"] == "hami-backend-acme"
    assert project["project"]["entry-points"]["hami.backends"] == {"acme": "hami_backend_acme.plugin"}
    assert "class AcmeBackend(DeviceBackend):" in files["hami_backend_acme/backend.py"]
    assert 'count="acme.example.com/device"' in files["hami_backend_acme/resources.py"]


def test_the_backend_states_the_contract_version_of_the_core_that_scaffolded_it() -> None:
    """The literal is rendered from ``CONTRACT_VERSION``, so a contract bump cannot leave it behind."""
    files = scaffold.render(SPEC, scaffold.load_templates())
    stated = f'contract_version: ClassVar[str] = "{CONTRACT_VERSION}"'
    assert stated in files["hami_backend_acme/backend.py"]


def test_the_backend_imports_hami_only_through_the_sdk() -> None:
    files = scaffold.render(SPEC, scaffold.load_templates())
    for path, text in files.items():
        if path.startswith("hami_backend_acme/") and path.endswith(".py"):
            imported = {
                node.module
                for node in ast.walk(ast.parse(text))
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hami_core")
            }
            assert imported <= {"hami_core.sdk"}, f"{path} imports {imported}"


def test_the_project_is_clean_under_its_own_ruff_settings(tmp_path: Path) -> None:
    """Vendors start from code their linter accepts (the project's pyproject configures ruff)."""
    ruff = Path(sys.executable).with_name("ruff")  # make venv installs hami-core[lint]
    assert ruff.exists(), f"no ruff beside {sys.executable}: run make venv"
    for relative, text in scaffold.render(SPEC, scaffold.load_templates()).items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    for args in (["check"], ["format", "--check"]):
        checked = subprocess.run(
            [str(ruff), *args, "."], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


class TestCommand:
    def test_it_writes_the_project_into_the_current_directory(self, tmp_path: Path) -> None:
        result = CliRunner().invoke(hami, ["backend", "new", "acme", "-C", str(tmp_path)])
        assert result.exit_code == 0, result.output
        assert (tmp_path / "hami-backend-acme" / "hami_backend_acme" / "backend.py").is_file()
        assert "pip install -e '.[test]'" in result.output

    def test_a_domain_option_names_the_resources(self, tmp_path: Path) -> None:
        result = CliRunner().invoke(
            hami, ["backends", "new", "acme", "--domain", "acme.com", "-C", str(tmp_path)]
        )
        assert result.exit_code == 0, result.output
        assert "acme.com/device-memory" in (tmp_path / "hami-backend-acme/README.md").read_text()

    def test_an_invalid_name_is_a_usage_error_naming_the_rule(self, tmp_path: Path) -> None:
        result = CliRunner().invoke(hami, ["backend", "new", "Acme-GPU", "-C", str(tmp_path)])
        assert result.exit_code == 2
        assert "Invalid value for NAME" in result.output
        assert "lowercase letters and digits" in result.output
        assert list(tmp_path.iterdir()) == []

    def test_an_invalid_domain_is_a_usage_error(self, tmp_path: Path) -> None:
        result = CliRunner().invoke(hami, ["backend", "new", "acme", "--domain", "acme", "-C", str(tmp_path)])
        assert result.exit_code == 2
        assert "--domain" in result.output

    def test_an_existing_directory_is_left_alone(self, tmp_path: Path) -> None:
        (tmp_path / "hami-backend-acme").mkdir()
        (tmp_path / "hami-backend-acme" / "mine.txt").write_text("keep")
        result = CliRunner().invoke(hami, ["backend", "new", "acme", "-C", str(tmp_path)])
        assert result.exit_code == 2
        assert "already exists" in result.output
        assert [p.name for p in (tmp_path / "hami-backend-acme").iterdir()] == ["mine.txt"]

    def test_the_name_of_an_installed_backend_is_refused(self, tmp_path: Path) -> None:
        result = CliRunner().invoke(hami, ["backend", "new", "mock", "-C", str(tmp_path)])
        assert result.exit_code == 2
        assert "already installed" in result.output
