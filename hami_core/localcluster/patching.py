"""The three PATCH flavours of kube-apiserver: JSON merge, strategic merge and JSON patch.

Pure functions over decoded JSON; they never modify their inputs. Strategic merge follows
apimachinery's ``strategicpatch`` for the lists of the served kinds: lists with a merge key
merge element by element, primitive lists with the merge strategy take the union, every other
list is replaced. The directives ``$patch`` (replace / delete / merge), ``$retainKeys``,
``$setElementOrder/<list>`` and ``$deleteFromPrimitiveList/<list>`` are honoured, which is what
``kubectl apply`` sends.
"""

from __future__ import annotations

import logging
from typing import Any

import jsonpatch
import jsonpointer

from hami_core.localcluster import statuses
from hami_core.localcluster.resources import JsonObj

_log = logging.getLogger(__name__)

#: kube-apiserver's whole message for a JSON patch that cannot be applied or whose ``test`` fails.
PATCH_NOT_APPLIED = "the server rejected our request due to an error in our request"

_CONTAINER_LISTS = {
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "resizePolicy": "resourceName",
}
_POD_SPEC_LISTS = {
    "volumes": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "schedulingGates": "name",
    "resourceClaims": "name",
}
_COMMON_LISTS = {"metadata.finalizers": "", "metadata.ownerReferences": "uid", "status.conditions": "type"}


def _pod_lists() -> dict[str, str]:
    lists = {f"spec.{field}": key for field, key in _POD_SPEC_LISTS.items()}
    for group in ("containers", "initContainers", "ephemeralContainers"):
        lists[f"spec.{group}"] = "name"
        lists |= {f"spec.{group}.{field}": key for field, key in _CONTAINER_LISTS.items()}
    return lists | {"status.podIPs": "ip", "status.hostIPs": "ip"}


def _template_lists(prefix: str) -> dict[str, str]:
    """A pod template's merging lists under ``prefix`` (its pod's ``metadata``/``spec`` lists)."""
    return {prefix + path: key for path, key in _pod_lists().items() if not path.startswith("status.")}


MERGE_KEYS: dict[str, dict[str, str]] = {
    "Pod": _COMMON_LISTS | _pod_lists(),
    "Node": _COMMON_LISTS | {"spec.podCIDRs": "", "status.addresses": "type"},
    "MutatingWebhookConfiguration": _COMMON_LISTS | {"webhooks": "name"},
    # The workloads keep a pod template; its lists merge as a pod's do (helm upgrade patches them).
    "Deployment": _COMMON_LISTS | _template_lists("spec.template."),
    "DaemonSet": _COMMON_LISTS | _template_lists("spec.template."),
    "Job": _COMMON_LISTS | _template_lists("spec.template."),
    "CronJob": _COMMON_LISTS | _template_lists("spec.jobTemplate.spec.template."),
    "Service": _COMMON_LISTS | {"spec.ports": "port"},
    "ServiceAccount": _COMMON_LISTS | {"secrets": "name", "imagePullSecrets": "name"},
}
"""Per kind, the dotted path of every list that merges (list indices omitted) to its merge key;
"" marks a primitive list merged as a set (the Go types' ``patchStrategy:"merge"`` tags)."""

_ORDER = "$setElementOrder/"
_DELETE_FROM = "$deleteFromPrimitiveList/"


def json_patch(target: JsonObj, operations: Any) -> JsonObj:
    """Apply an RFC 6902 JSON patch.

    Raises:
        ApiError: 400 for a malformed patch, 422 for one that cannot be applied or whose
            ``test`` fails.
    """
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise statuses.bad_request("json patch must be a JSON array of operation objects")
    try:
        patch = jsonpatch.JsonPatch(operations)
        result: JsonObj = patch.apply(target, in_place=False)
    except jsonpatch.InvalidJsonPatch as err:
        raise statuses.bad_request(str(err)) from err
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as err:
        # kube-apiserver names neither the operation nor the path, only that the request was at fault.
        _log.debug("json patch not applied: %s", err)
        raise statuses.unprocessable(PATCH_NOT_APPLIED) from err
    if not isinstance(result, dict):
        raise statuses.unprocessable("json patch replaced the object with a non-object")
    return result


def strategic_merge_patch(target: JsonObj, patch: JsonObj, kind: str) -> JsonObj:
    """Apply a strategic merge patch to an object of ``kind``.

    Raises:
        ApiError: 400 for an unknown directive or a list element without its merge key.
    """
    merged = _merge_map(target, patch, "", MERGE_KEYS.get(kind, _COMMON_LISTS))
    return merged if merged is not None else {}


def _merge_map(original: JsonObj, patch: JsonObj, path: str, keys: dict[str, str]) -> JsonObj | None:
    """Merge ``patch`` into ``original``; None means the patch deletes the map."""
    directive = patch.get("$patch", "merge")
    if directive == "delete":
        return None
    if directive == "replace":
        stripped: JsonObj = _strip(patch)
        return stripped
    if directive != "merge":
        raise statuses.bad_request(f"unknown patch type: {directive!r}")
    return _merge_fields(original, patch, path, keys)


def _merge_fields(original: JsonObj, patch: JsonObj, path: str, keys: dict[str, str]) -> JsonObj:
    result = dict(original)
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        sub = f"{path}.{key}" if path else key
        current = result.get(key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = _merge_map(current if isinstance(current, dict) else {}, value, sub, keys)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(current if isinstance(current, list) else [], value, sub, keys)
        else:
            result[key] = value
    for key, value in patch.items():
        if key.startswith(_DELETE_FROM):
            field = key.removeprefix(_DELETE_FROM)
            _check_list(key, value)
            result[field] = [item for item in result.get(field) or [] if item not in value]
    for key, value in patch.items():
        field = key.removeprefix(_ORDER)
        if key.startswith(_ORDER) and isinstance(result.get(field), list):
            _check_list(key, value)
            server = original.get(field)
            merge_key = keys.get(f"{path}.{field}" if path else field, "")
            result[field] = _apply_order(
                result[field], value, server if isinstance(server, list) else [], merge_key
            )
    if "$retainKeys" in patch:
        retain = patch["$retainKeys"]
        _check_list("$retainKeys", retain)
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _check_list(key: str, value: Any) -> None:
    if not isinstance(value, list):
        raise statuses.bad_request(f"invalid patch: {key} must be a list")


def _merge_list(original: list[Any], patch: list[Any], path: str, keys: dict[str, str]) -> list[Any]:
    merge_key = keys.get(path)
    if merge_key is None:
        return [_strip(item) for item in patch]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [_strip(item) for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    if merge_key == "":
        return list(original) + [item for item in patch if item not in original]
    result = list(original)
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise statuses.bad_request(f"map: {item} does not contain declared merge key: {merge_key}")
        found = next((i for i, old in enumerate(result) if _key(old, merge_key) == item[merge_key]), None)
        if item.get("$patch") == "delete":
            result = [old for old in result if _key(old, merge_key) != item[merge_key]]
        elif found is None:
            result.append(_merge_fields({}, item, path, keys))
        else:
            result[found] = _merge_fields(result[found], item, path, keys)
    return result


def _key(item: Any, merge_key: str) -> Any:
    return item.get(merge_key) if isinstance(item, dict) else None


def _apply_order(merged: list[Any], order: list[Any], server: list[Any], merge_key: str) -> list[Any]:
    """Order a merged list as ``$setElementOrder`` says.

    Elements named in ``order`` come in that order; elements only the server has keep their
    place relative to the server's list (apimachinery's ``normalizeElementOrder``).
    """

    def ident(item: Any) -> Any:
        return _key(item, merge_key) if merge_key else item

    wanted = [ident(item) for item in order]
    on_server = {repr(ident(item)): i for i, item in enumerate(server)}
    named = sorted((x for x in merged if ident(x) in wanted), key=lambda x: wanted.index(ident(x)))
    server_only = [x for x in merged if ident(x) not in wanted]
    out: list[Any] = []
    while named and server_only:
        left = on_server.get(repr(ident(named[0])))
        right = on_server.get(repr(ident(server_only[0])))
        later = left is not None and right is not None and left > right
        out.append(server_only.pop(0) if later else named.pop(0))
    return out + named + server_only


def _strip(value: Any) -> Any:
    """Drop patch directives from a value that is taken as-is."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip(item) for item in value]
    return value
