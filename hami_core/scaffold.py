"""What ``hami backend new NAME`` writes: a ``hami-backend-NAME`` project rendered from templates.

Pure: :func:`check_name` validates, :func:`render` turns a :class:`BackendSpec` and the templates
into ``{relative path: text}``; the CLI checks the target directory and writes the files. The
templates are package data (``hami_core/templates/backend/*.tmpl``) in :mod:`string.Template`
syntax, read with :func:`load_templates`. The project is a complete backend distribution: the
entry point, a backend written against :mod:`hami_core.sdk` only, a discovery adapter with its
fake, tests wired to the kit (``BackendContract``, ``admit`` and the ``hami_cluster`` fixture), a
README and a Dockerfile stub for the device-plugin image; it passes its own tests as generated.
"""

from __future__ import annotations

import importlib.resources
import re
import string
from collections.abc import Mapping

import attrs

from hami_core.backend import CONTRACT_VERSION
from hami_core.config import BACKEND_NAME

#: The longest name whose annotation keys stay within Kubernetes' 63 characters
#: (``hami.io/<name>-devices-to-allocate``) with room to spare.
MAX_NAME_LENGTH = 40

# A DNS subdomain (RFC 1123) with at least one dot, as extended resource prefixes need.
_DOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+")

#: Output path (``{name}`` is the backend's name) to its template file, for every file written.
FILES: Mapping[str, str] = {
    "pyproject.toml": "pyproject.toml.tmpl",
    "README.md": "README.md.tmpl",
    "Dockerfile": "Dockerfile.tmpl",
    ".gitignore": "gitignore.tmpl",
    "hami_backend_{name}/__init__.py": "package_init.py.tmpl",
    "hami_backend_{name}/py.typed": "py.typed.tmpl",
    "hami_backend_{name}/plugin.py": "plugin.py.tmpl",
    "hami_backend_{name}/resources.py": "resources.py.tmpl",
    "hami_backend_{name}/discovery.py": "discovery.py.tmpl",
    "hami_backend_{name}/backend.py": "backend.py.tmpl",
    "tests/conftest.py": "conftest.py.tmpl",
    "tests/test_contract.py": "test_contract.py.tmpl",
    "tests/test_admission.py": "test_admission.py.tmpl",
    "tests/test_discovery.py": "test_discovery.py.tmpl",
    "tests/test_pipeline.py": "test_pipeline.py.tmpl",
}


class ScaffoldError(ValueError):
    """A name or option ``hami backend new`` cannot use; the message says why and what would do."""


@attrs.frozen
class BackendSpec:
    """What varies between scaffolded backends.

    Args:
        name: the backend's one name (entry point, ``hami-backend-<name>``, Helm key).
        domain: the DNS prefix of its extended resources (``<domain>/device``).
        core_version: the hami-core version the project requires at least.
    """

    name: str
    domain: str
    core_version: str

    @property
    def directory(self) -> str:
        """The project's folder and distribution name, ``hami-backend-<name>``."""
        return f"hami-backend-{self.name}"

    def substitutions(self) -> dict[str, str]:
        """The template variables: ``$name``, ``$Name`` (class prefix), ``$NAME`` (device type), ..."""
        return {
            "name": self.name,
            "Name": self.name.capitalize(),
            "NAME": self.name.upper(),
            "domain": self.domain,
            "core_version": self.core_version,
            "contract_version": CONTRACT_VERSION,
        }


def check_name(name: str) -> str:
    """``name`` if it can name a backend on every surface, else why not.

    The name is the distribution suffix (PEP 508), the import package suffix (a Python
    identifier), the entry point, ``DeviceBackend.name`` and the Helm key ``backends.<name>``, so
    it must be lowercase letters and digits, starting with a letter.

    Raises:
        ScaffoldError: the name cannot be used; the message says which rule it breaks.
    """
    if not BACKEND_NAME.fullmatch(name):
        raise ScaffoldError(
            f"{name!r} is not a backend name: use lowercase letters and digits, starting with a letter "
            "(it becomes the distribution hami-backend-<name>, the package hami_backend_<name>, the "
            "entry point and the Helm key backends.<name>)"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise ScaffoldError(
            f"{name!r} is {len(name)} characters long; at most {MAX_NAME_LENGTH} keep its annotation keys valid"
        )
    return name


def check_domain(domain: str) -> str:
    """``domain`` if it can prefix extended resource names (a lowercase DNS subdomain).

    Raises:
        ScaffoldError: it cannot.
    """
    if len(domain) > 253 or not _DOMAIN.fullmatch(domain) or domain.endswith("kubernetes.io"):
        raise ScaffoldError(
            f"{domain!r} cannot prefix extended resource names: use a lowercase DNS name such as acme.com "
            "(not under kubernetes.io)"
        )
    return domain


def default_domain(name: str) -> str:
    """The placeholder resource domain, ``<name>.example.com``: a vendor replaces it with its own."""
    return f"{name}.example.com"


def load_templates() -> dict[str, str]:
    """Every template of :data:`FILES`, by file name, read from the package data."""
    folder = importlib.resources.files("hami_core").joinpath("templates", "backend")
    return {template: folder.joinpath(template).read_text(encoding="utf-8") for template in FILES.values()}


def render(spec: BackendSpec, templates: Mapping[str, str]) -> dict[str, str]:
    """The project's files for ``spec``: relative path (``/``-separated) to text.

    Args:
        spec: the backend to scaffold.
        templates: the template texts by file name (:func:`load_templates`).

    Raises:
        KeyError: a template uses a variable :meth:`BackendSpec.substitutions` does not define.
    """
    values = spec.substitutions()
    return {
        path.format(name=spec.name): string.Template(templates[template]).substitute(values)
        for path, template in FILES.items()
    }
