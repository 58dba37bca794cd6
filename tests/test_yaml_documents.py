"""The one YAML loader: every reader parses safely and fails with the source's name first."""

from __future__ import annotations

from pathlib import Path

import pytest

from hami_core import yaml_documents
from hami_core.errors import ConfigError


def test_a_file_is_parsed_safely(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("version: v1\nlist: [1, 2]\n")
    assert yaml_documents.load_yaml(path) == {"version": "v1", "list": [1, 2]}
    path.write_text("!!python/object:os.system {}\n")
    with pytest.raises(ConfigError, match=f"^{path}: not valid YAML"):
        yaml_documents.load_yaml(path)


def test_several_documents_are_read_in_order_with_empty_ones_as_none(tmp_path: Path) -> None:
    path = tmp_path / "pods.yaml"
    path.write_text("a: 1\n---\n---\nb: 2\n")
    assert yaml_documents.load_yaml_all(path, "example pods") == [{"a": 1}, None, {"b": 2}]


@pytest.mark.parametrize("many", [False, True])
def test_errors_name_the_source_and_say_what_failed(tmp_path: Path, many: bool) -> None:
    load = yaml_documents.load_yaml_all if many else yaml_documents.load_yaml
    with pytest.raises(ConfigError, match=r"^fleet x: cannot be read: "):
        load(tmp_path / "absent.yaml", "fleet x")
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    with pytest.raises(ConfigError, match=r"^fleet x: not valid YAML: "):
        load(tmp_path / "bad.yaml", "fleet x")


def test_text_and_bytes_parse_alike() -> None:
    assert yaml_documents.parse_yaml(b"kind: Pod", "body") == yaml_documents.parse_yaml("kind: Pod", "body")
    assert yaml_documents.parse_yaml("", "body") is None
