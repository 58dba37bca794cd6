"""BackendSection: a backend's config section, read with the core's messages."""

from __future__ import annotations

import re

import pytest

from hami_core.sdk import BackendSection
from hami_core.sdk import ConfigError
from hami_core.sdk import ResourceNames
from hami_core.sdk import parse_config


def _section(**settings: object) -> BackendSection:
    config = parse_config({"version": "v1", "backends": {"acme": settings}}, "hami.yaml")
    return BackendSection.read(config, "acme", ("size", "label", "on", "resourceCountName"))


def test_an_unknown_key_is_refused_with_the_known_ones() -> None:
    known = "enabled, size, label, on, resourceCountName"
    message = f"config hami.yaml: backends.acme.sise: unknown key (known keys: {known})"
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        _section(sise=1)


def test_values_are_read_with_their_dotted_key() -> None:
    section = _section(enabled=True, size=3, label="", on=False)
    assert "size" in section
    assert "missing" not in section
    assert sorted(section) == ["enabled", "label", "on", "size"]
    assert section.integer("size", section["size"], low=1, high=4) == 3
    assert section.string("label", section["label"]) == ""
    assert section.boolean("on", section["on"]) is False
    assert section.get("missing", 7) == 7
    assert section.positive_number("size", section["size"]) == 3.0
    assert section.choice("label", "b", ("a", "b")) == "b"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.integer("size", True), "backends.acme.size: expected an integer, got True"),
        (lambda s: s.integer("size", 2**31), "backends.acme.size: must be between 0 and 2147483647"),
        (lambda s: s.integer("list[0].n", 0, low=1), r"backends.acme.list\[0\].n: must be between 1 and"),
        (lambda s: s.string("label", "", empty=False), "backends.acme.label: expected a non-empty string"),
        (lambda s: s.string("label", 3), "backends.acme.label: expected a string, got 3"),
        (lambda s: s.boolean("on", "yes"), "backends.acme.on: expected true or false, got 'yes'"),
        (lambda s: s.string("label", "  ", empty=False), "backends.acme.label: expected a non-empty string"),
        (lambda s: s.positive_number("size", "1"), "backends.acme.size: expected a number, got '1'"),
        (lambda s: s.positive_number("size", float("inf")), "backends.acme.size: expected a number, got inf"),
        (lambda s: s.positive_number("size", -1), "backends.acme.size: must be greater than 0, got -1"),
        (lambda s: s.choice("on", "some", ("a", "b")), "backends.acme.on: expected one of a, b, got 'some'"),
    ],
)
def test_a_bad_value_names_the_file_and_the_key(call: object, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^config hami.yaml: {message}"):
        call(_section())  # type: ignore[operator]


def test_resource_names_are_renamed_by_the_keys_the_section_sets() -> None:
    defaults = ResourceNames(count="acme.com/gpu", memory="acme.com/mem")
    names = {"resourceCountName": "count"}
    assert _section().resource_names(defaults, names) == defaults
    renamed = _section(resourceCountName="acme.com/card").resource_names(defaults, names)
    assert renamed == ResourceNames(count="acme.com/card", memory="acme.com/mem")
    with pytest.raises(ConfigError, match="resourceCountName: expected a non-empty string"):
        _section(resourceCountName="").resource_names(defaults, names)
