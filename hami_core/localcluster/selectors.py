"""Label and field selectors, parsed and matched as kube-apiserver does.

Label selectors take the query-string grammar (``=``, ``==``, ``!=``, ``in``, ``notin``,
``key``, ``!key``, ``>``, ``<``) or a ``metav1.LabelSelector`` object (``matchLabels`` and
``matchExpressions``, as webhooks use). Field selectors take ``=``, ``==`` and ``!=`` on the
labels a resource declares. Parse errors are 400 ``ApiError``s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import attrs

from hami_core.localcluster import statuses
from hami_core.localcluster.resources import BOOL_FIELDS
from hami_core.localcluster.resources import FIELD_PATHS
from hami_core.localcluster.resources import JsonObj

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
        ApiError: 400 when the text is not a valid selector.
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
    raise statuses.bad_request(f"unable to parse requirement: invalid label selector {part.strip()!r}")


def label_selector_from_object(selector: JsonObj | None) -> LabelSelector:
    """Build a selector from a ``metav1.LabelSelector`` (``matchLabels`` + ``matchExpressions``).

    Raises:
        ApiError: 400 for an unknown operator.
    """
    selector = selector or {}
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        operator = _EXPRESSION_OPERATORS.get(expr.get("operator", ""))
        if operator is None:
            raise statuses.bad_request(f"{expr.get('operator')!r} is not a valid label selector operator")
        reqs.append(Requirement(expr.get("key", ""), operator, tuple(expr.get("values") or ())))
    return LabelSelector(tuple(reqs))


def parse_field_selector(text: str, allowed: Sequence[str]) -> FieldSelector:
    """Parse a ``fieldSelector`` query value against the labels a resource supports.

    Raises:
        ApiError: 400 for bad syntax or a field the resource does not support.
    """
    if not text.strip():
        return FieldSelector()
    reqs = []
    for part in re.split(r"(?<!\\),", text):
        m = re.fullmatch(r"\s*([^=!\s]+)\s*(!=|==|=)(.*)", part)
        if m is None:
            raise statuses.bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, operator, value = m[1], m[2], re.sub(r"\\(.)", r"\1", m[3])
        if field not in allowed:
            known = ", ".join(f'"{name}"' for name in allowed)
            raise statuses.bad_request(f'"{field}" is not a known field selector: only {known}')
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
