"""Label and field selectors, parsed and matched as kube-apiserver does (``specs/kube-wire.md`` 1.2).

Label selectors take the query-string grammar (``=``, ``==``, ``!=``, ``in``, ``notin``,
``key``, ``!key``, ``>``, ``<``) or a ``metav1.LabelSelector`` object (``matchLabels`` and
``matchExpressions``, as webhooks use). Field selectors take ``=``, ``==`` and ``!=`` on the
labels a resource declares (:func:`field_labels`). Parse errors are :class:`SelectorError`, a
400 ``BadRequest``. Pure: the API server emulator and ``FakeKube`` both select through here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import attrs

from hami_core.errors import KubeError

JsonObj = dict[str, Any]

#: Every resource supports these field selectors (apimachinery's DefaultMetaV1FieldSelectorConversion).
META_FIELDS = ("metadata.name", "metadata.namespace")
#: Field labels whose Go type is bool: an unset field selects as "false", not "".
BOOL_FIELDS = frozenset({"spec.unschedulable", "spec.hostNetwork"})
#: Field labels that do not spell their JSON path (core/v1 Event: "source" is source.component).
FIELD_PATHS = {"source": "source.component"}

POD_FIELDS = (
    "spec.nodeName",
    "spec.schedulerName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
)
EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)
#: The field labels of core/v1 resources beyond :data:`META_FIELDS`, by plural.
CORE_FIELDS: dict[str, tuple[str, ...]] = {
    "namespaces": ("status.phase",),
    "nodes": ("spec.unschedulable",),
    "pods": POD_FIELDS,
    "secrets": ("type",),
    "events": EVENT_FIELDS,
}


def field_labels(plural: str) -> tuple[str, ...]:
    """Every field-selector label a core/v1 resource accepts."""
    return META_FIELDS + CORE_FIELDS.get(plural, ())


class SelectorError(KubeError):
    """A selector that does not parse, or names a field the resource has no label for (400 BadRequest)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=400, reason="BadRequest")


_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY = rf"(?:[a-z0-9](?:[-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_NAME}"
_VALUE = rf"(?:{_NAME})?"
_NOT_EXISTS = re.compile(rf"\s*!\s*({_KEY})\s*")
_SET = re.compile(rf"\s*({_KEY})\s+(in|notin)\s*\((.*)\)\s*")
_COMPARE = re.compile(rf"\s*({_KEY})\s*(==|=|!=|>|<)\s*({_VALUE})\s*")
_EXISTS = re.compile(rf"\s*({_KEY})\s*")
_EXPRESSION_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


@attrs.frozen
class Requirement:
    """One label requirement; ``operator`` is ``=``, ``!=``, ``in``, ``notin``, ``exists``, ``!``, ``>`` or ``<``."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label map satisfies this requirement (absent keys satisfy ``!=`` and ``notin``)."""
        present = self.key in labels
        value = labels.get(self.key, "")
        match self.operator:
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
            case "exists":
                return present
            case "!":
                return not present
        if not present or not value.lstrip("-").isdigit():
            return False
        bound = int(self.values[0])
        return int(value) > bound if self.operator == ">" else int(value) < bound


@attrs.frozen
class LabelSelector:
    """A conjunction of label requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether every requirement holds for ``labels``."""
        return all(req.matches(labels or {}) for req in self.requirements)


@attrs.frozen
class FieldRequirement:
    """``field=value`` or, with ``negate``, ``field!=value``."""

    field: str
    value: str
    negate: bool = False


@attrs.frozen
class FieldSelector:
    """A conjunction of field requirements; the empty selector matches everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: JsonObj) -> bool:
        """Whether ``obj`` satisfies every requirement."""
        return all((field_value(obj, req.field) == req.value) != req.negate for req in self.requirements)


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a ``labelSelector`` query value.

    Raises:
        SelectorError: when the text is not a valid selector.
    """
    if not text.strip():
        return LabelSelector()
    return LabelSelector(tuple(_parse_requirement(part) for part in _split_top_level(text)))


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _parse_requirement(part: str) -> Requirement:
    if m := _NOT_EXISTS.fullmatch(part):
        return Requirement(m[1], "!")
    if m := _SET.fullmatch(part):
        values = tuple(v.strip() for v in m[3].split(","))
        if all(re.fullmatch(_VALUE, v) for v in values):
            return Requirement(m[1], m[2], values)
    elif m := _COMPARE.fullmatch(part):
        operator = "=" if m[2] == "==" else m[2]
        if operator not in "<>" or m[3].lstrip("-").isdigit():
            return Requirement(m[1], operator, (m[3],))
    elif m := _EXISTS.fullmatch(part):
        return Requirement(m[1], "exists")
    raise SelectorError(f"unable to parse requirement: invalid label selector {part.strip()!r}")


def label_selector_from_object(selector: JsonObj | None) -> LabelSelector:
    """Build a selector from a ``metav1.LabelSelector`` (``matchLabels`` + ``matchExpressions``).

    Raises:
        SelectorError: for an unknown operator.
    """
    selector = selector or {}
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        operator = _EXPRESSION_OPERATORS.get(expr.get("operator", ""))
        if operator is None:
            raise SelectorError(f"{expr.get('operator')!r} is not a valid label selector operator")
        reqs.append(Requirement(expr.get("key", ""), operator, tuple(expr.get("values") or ())))
    return LabelSelector(tuple(reqs))


def parse_field_selector(text: str, allowed: Sequence[str]) -> FieldSelector:
    """Parse a ``fieldSelector`` query value against the labels a resource supports.

    Raises:
        SelectorError: for bad syntax or a field the resource does not support.
    """
    if not text.strip():
        return FieldSelector()
    reqs = []
    for part in re.split(r"(?<!\\),", text):
        m = re.fullmatch(r"\s*([^=!\s]+)\s*(!=|==|=)(.*)", part)
        if m is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, operator, value = m[1], m[2], re.sub(r"\\(.)", r"\1", m[3])
        if field not in allowed:
            known = ", ".join(f'"{name}"' for name in allowed)
            raise SelectorError(f'"{field}" is not a known field selector: only {known}')
        reqs.append(FieldRequirement(field, value, operator == "!="))
    return FieldSelector(tuple(reqs))


def field_value(obj: JsonObj, label: str) -> str:
    """The string a field selector compares for ``label`` (unset bools read "false")."""
    value: Any = obj
    for step in FIELD_PATHS.get(label, label).split("."):
        value = value.get(step) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "false" if label in BOOL_FIELDS else ""
    return str(value)
