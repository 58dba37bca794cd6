"""Label and field selectors parse and match as kube-apiserver's do."""

from __future__ import annotations

from typing import Any

import pytest

from hami_core.kube import selectors
from hami_core.kube.selectors import SelectorError

LABELS = {"app": "web", "tier": "front", "size": "5"}
POD_FIELDS = selectors.field_labels("pods")


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        pytest.param("", True, id="empty-matches-all"),
        pytest.param("app=web", True, id="equals"),
        pytest.param("app==web", True, id="double-equals"),
        pytest.param("app=db", False, id="equals-other-value"),
        pytest.param("app!=db", True, id="not-equals"),
        pytest.param("missing!=x", True, id="not-equals-absent-key"),
        pytest.param("app in (db, web)", True, id="in"),
        pytest.param("app in (db)", False, id="in-miss"),
        pytest.param("app notin (db,cache)", True, id="notin"),
        pytest.param("missing notin (a)", True, id="notin-absent-key"),
        pytest.param("app notin (web)", False, id="notin-miss"),
        pytest.param("tier", True, id="exists"),
        pytest.param("missing", False, id="exists-miss"),
        pytest.param("!missing", True, id="not-exists"),
        pytest.param("!app", False, id="not-exists-miss"),
        pytest.param("size>4", True, id="greater-than"),
        pytest.param("size<4", False, id="less-than"),
        pytest.param("app=web,tier in (front,back),!missing", True, id="conjunction"),
        pytest.param("app=web,tier=back", False, id="conjunction-miss"),
        pytest.param("example.com/app!=x", True, id="prefixed-key"),
    ],
)
def test_label_selector_grammar(text: str, matches: bool) -> None:
    assert selectors.parse_label_selector(text).matches(LABELS) is matches


def test_an_empty_value_is_a_valid_label_value() -> None:
    assert selectors.parse_label_selector("app=").matches({"app": ""})
    assert not selectors.parse_label_selector("app=").matches({"app": "web"})


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("app=web,", id="trailing-comma"),
        pytest.param("app in web", id="set-without-parens"),
        pytest.param("app = a b", id="space-in-value"),
        pytest.param("-app=x", id="bad-key"),
        pytest.param("size>x", id="non-numeric-bound"),
        pytest.param("app in (a b)", id="bad-set-value"),
    ],
)
def test_malformed_label_selectors_are_bad_requests(text: str) -> None:
    with pytest.raises(SelectorError, match="unable to parse requirement") as caught:
        selectors.parse_label_selector(text)
    assert (caught.value.status, caught.value.reason) == (400, "BadRequest")


def test_label_selector_objects_combine_match_labels_and_expressions() -> None:
    selector = selectors.label_selector_from_object(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "size", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        }
    )
    assert selector.matches(LABELS)
    assert not selector.matches({**LABELS, "legacy": "1"})
    assert not selector.matches({**LABELS, "app": "db"})


def test_an_absent_label_selector_object_matches_everything() -> None:
    assert selectors.label_selector_from_object(None).matches(None)


def test_an_unknown_expression_operator_is_a_bad_request() -> None:
    with pytest.raises(SelectorError, match="not a valid label selector operator"):
        selectors.label_selector_from_object({"matchExpressions": [{"key": "a", "operator": "Near"}]})


POD: dict[str, Any] = {
    "metadata": {"name": "p1", "namespace": "team"},
    "spec": {"schedulerName": "hami-scheduler", "hostNetwork": True},
    "status": {"phase": "Pending"},
}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        pytest.param("metadata.name=p1", True, id="name"),
        pytest.param("metadata.namespace==team", True, id="namespace-double-equals"),
        pytest.param("spec.nodeName=", True, id="empty-node-name-is-unscheduled"),
        pytest.param("spec.nodeName!=", False, id="scheduled-only"),
        pytest.param("spec.schedulerName=hami-scheduler,status.phase!=Running", True, id="conjunction"),
        pytest.param("status.phase=Running", False, id="phase-miss"),
        pytest.param("spec.hostNetwork=true", True, id="bool-true"),
        pytest.param("status.podIP=", True, id="absent-string"),
    ],
)
def test_field_selector_on_pods(text: str, matches: bool) -> None:
    assert selectors.parse_field_selector(text, POD_FIELDS).matches(POD) is matches


def test_unset_bool_fields_select_as_false() -> None:
    node_fields = selectors.field_labels("nodes")
    assert selectors.parse_field_selector("spec.unschedulable=false", node_fields).matches({"metadata": {}})


def test_escaped_commas_belong_to_the_value() -> None:
    selector = selectors.parse_field_selector(r"metadata.name=a\,b", POD_FIELDS)
    assert selector.matches({"metadata": {"name": "a,b"}})


def test_event_source_selects_the_reporting_component() -> None:
    event_fields = selectors.field_labels("events")
    selector = selectors.parse_field_selector("source=kubelet,involvedObject.name=p1", event_fields)
    assert selector.matches({"source": {"component": "kubelet"}, "involvedObject": {"name": "p1"}})


def test_unknown_fields_are_rejected_with_the_known_list() -> None:
    with pytest.raises(
        SelectorError, match=r'"spec.color" is not a known field selector: only "metadata.name"'
    ) as caught:
        selectors.parse_field_selector("spec.color=red", POD_FIELDS)
    assert (caught.value.status, caught.value.reason) == (400, "BadRequest")


def test_a_field_requirement_without_an_operator_is_a_bad_request() -> None:
    with pytest.raises(SelectorError, match="invalid selector"):
        selectors.parse_field_selector("metadata.name", POD_FIELDS)
