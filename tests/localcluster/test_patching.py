"""Strategic merge and JSON patch as kube-apiserver applies them (JSON merge: tests/kube/test_merge_patch.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hami_core.localcluster import patching
from hami_core.localcluster.statuses import ApiError


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}, "spec": spec}


def container(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, **fields}


class TestStrategicMergePatch:
    def test_metadata_maps_merge_and_null_deletes(self) -> None:
        out = patching.strategic_merge_patch(pod(), {"metadata": {"labels": {"a": None, "c": "3"}}}, "Pod")
        assert out["metadata"]["labels"] == {"b": "2", "c": "3"}

    def test_containers_merge_by_name(self) -> None:
        target = pod(containers=[container("a", image="x"), container("b", image="y")])
        out = patching.strategic_merge_patch(
            target, {"spec": {"containers": [{"name": "b", "image": "z"}]}}, "Pod"
        )
        assert out["spec"]["containers"] == [container("a", image="x"), container("b", image="z")]

    def test_new_list_element_is_appended(self) -> None:
        target = pod(initContainers=[container("a")])
        out = patching.strategic_merge_patch(target, {"spec": {"initContainers": [container("b")]}}, "Pod")
        assert [c["name"] for c in out["spec"]["initContainers"]] == ["a", "b"]

    def test_env_inside_a_container_merges_by_name(self) -> None:
        env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
        target = pod(containers=[container("c", env=env)])
        patch = {
            "spec": {
                "containers": [
                    {"name": "c", "env": [{"name": "B", "value": "9"}, {"name": "C", "value": "3"}]}
                ]
            }
        }
        out = patching.strategic_merge_patch(target, patch, "Pod")
        assert out["spec"]["containers"][0]["env"] == [
            {"name": "A", "value": "1"},
            {"name": "B", "value": "9"},
            {"name": "C", "value": "3"},
        ]

    def test_volumes_merge_by_name_and_retain_keys_drops_the_old_source(self) -> None:
        target = pod(volumes=[{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}])
        patch = {
            "spec": {
                "volumes": [{"name": "v", "hostPath": {"path": "/x"}, "$retainKeys": ["hostPath", "name"]}]
            }
        }
        out = patching.strategic_merge_patch(target, patch, "Pod")
        assert out["spec"]["volumes"] == [
            {"name": "v", "hostPath": {"path": "/x"}},
            {"name": "w", "emptyDir": {}},
        ]

    def test_patch_delete_directive_removes_one_element(self) -> None:
        target = pod(containers=[container("a"), container("b")])
        out = patching.strategic_merge_patch(
            target, {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}, "Pod"
        )
        assert out["spec"]["containers"] == [container("b")]

    def test_patch_replace_directive_in_a_list_replaces_the_list(self) -> None:
        target = pod(containers=[container("a"), container("b")])
        patch = {"spec": {"containers": [container("c"), {"$patch": "replace"}]}}
        assert patching.strategic_merge_patch(target, patch, "Pod")["spec"]["containers"] == [container("c")]

    def test_patch_replace_directive_on_a_map_replaces_the_map(self) -> None:
        patch = {"metadata": {"labels": {"z": "9", "$patch": "replace"}}}
        assert patching.strategic_merge_patch(pod(), patch, "Pod")["metadata"]["labels"] == {"z": "9"}

    def test_patch_delete_directive_on_a_map_removes_it(self) -> None:
        out = patching.strategic_merge_patch(pod(), {"metadata": {"labels": {"$patch": "delete"}}}, "Pod")
        assert "labels" not in out["metadata"]

    def test_set_element_order_orders_the_merged_list(self) -> None:
        target = pod(containers=[container("a"), container("b"), container("c")])
        patch = {
            "spec": {
                "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}],
                "containers": [{"name": "a", "image": "new"}],
            }
        }
        out = patching.strategic_merge_patch(target, patch, "Pod")
        assert [c["name"] for c in out["spec"]["containers"]] == ["c", "a", "b"]
        assert out["spec"]["containers"][1]["image"] == "new"

    def test_set_element_order_keeps_server_only_elements_before_later_server_elements(self) -> None:
        # apimachinery's normalizeElementOrder: "server" sat before "b" on the server, so it stays before it.
        target = pod(containers=[container("a"), container("server"), container("b")])
        patch = {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}], "containers": []}}
        out = patching.strategic_merge_patch(target, patch, "Pod")
        assert [c["name"] for c in out["spec"]["containers"]] == ["server", "b", "a"]

    def test_finalizers_merge_as_a_set_and_delete_from_primitive_list_removes(self) -> None:
        target = {"metadata": {"name": "p", "finalizers": ["a", "b"]}}
        out = patching.strategic_merge_patch(target, {"metadata": {"finalizers": ["b", "c"]}}, "ConfigMap")
        assert out["metadata"]["finalizers"] == ["a", "b", "c"]
        patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}
        assert patching.strategic_merge_patch(out, patch, "ConfigMap")["metadata"]["finalizers"] == ["b", "c"]

    def test_lists_without_a_merge_key_are_replaced(self) -> None:
        target = pod(tolerations=[{"key": "a"}, {"key": "b"}])
        out = patching.strategic_merge_patch(target, {"spec": {"tolerations": [{"key": "c"}]}}, "Pod")
        assert out["spec"]["tolerations"] == [{"key": "c"}]

    def test_node_conditions_merge_by_type(self) -> None:
        node = {"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}
        patch = {
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "True"}]}
        }
        out = patching.strategic_merge_patch(node, patch, "Node")
        assert out["status"]["conditions"] == patch["status"]["conditions"]

    def test_inputs_are_left_untouched(self) -> None:
        target = pod(containers=[container("a", env=[{"name": "A"}])])
        patch = {"spec": {"containers": [{"name": "a", "env": [{"name": "B"}]}]}}
        before_target, before_patch = copy.deepcopy(target), copy.deepcopy(patch)
        patching.strategic_merge_patch(target, patch, "Pod")
        assert (target, patch) == (before_target, before_patch)

    @pytest.mark.parametrize(
        "patch",
        [
            pytest.param({"metadata": {"$patch": "explode"}}, id="unknown-directive"),
            pytest.param({"spec": {"containers": [{"image": "x"}]}}, id="element-without-merge-key"),
            pytest.param({"spec": {"$setElementOrder/containers": "a"}}, id="order-not-a-list"),
        ],
    )
    def test_malformed_patches_are_bad_requests(self, patch: dict[str, Any]) -> None:
        with pytest.raises(ApiError) as caught:
            patching.strategic_merge_patch(pod(containers=[container("a")]), patch, "Pod")
        assert caught.value.code == 400


class TestJsonPatch:
    def test_operations_apply_in_order(self) -> None:
        ops = [
            {"op": "test", "path": "/metadata/name", "value": "p"},
            {"op": "add", "path": "/metadata/annotations", "value": {}},
            {"op": "add", "path": "/metadata/annotations/hami~1x", "value": "1"},
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "replace", "path": "/metadata/labels/b", "value": "3"},
        ]
        out = patching.json_patch(pod(), ops)
        assert out["metadata"]["annotations"] == {"hami/x": "1"}
        assert out["metadata"]["labels"] == {"b": "3"}

    @pytest.mark.parametrize(
        ("ops", "code"),
        [
            pytest.param({"op": "add"}, 400, id="not-a-list"),
            pytest.param([{"op": "frobnicate", "path": "/a"}], 400, id="unknown-op"),
            pytest.param([{"path": "/a"}], 400, id="missing-op"),
            pytest.param([{"op": "test", "path": "/metadata/name", "value": "q"}], 422, id="failed-test"),
            pytest.param([{"op": "remove", "path": "/spec/nothing"}], 422, id="missing-path"),
            pytest.param([{"op": "add", "path": "/x/y/z", "value": 1}], 422, id="missing-parent"),
        ],
    )
    def test_bad_patches_have_the_apiserver_status_code(self, ops: Any, code: int) -> None:
        target = pod()
        with pytest.raises(ApiError) as caught:
            patching.json_patch(target, ops)
        assert caught.value.code == code
        assert target == pod()


class TestWorkloadTemplates:
    """Helm upgrades patch Deployments and DaemonSets strategically: pod-template lists merge by key."""

    def deployment(self) -> dict[str, Any]:
        template = pod(
            containers=[container("a", image="a:1", args=["x"]), container("b", image="b:1")],
            volumes=[{"name": "config", "configMap": {"name": "c"}}],
        )
        return {"metadata": {"name": "d"}, "spec": {"replicas": 1, "template": template}}

    @pytest.mark.parametrize("kind", ["Deployment", "DaemonSet", "Job"])
    def test_a_named_container_is_patched_in_place(self, kind: str) -> None:
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}}
        merged = patching.strategic_merge_patch(self.deployment(), patch, kind)
        containers = merged["spec"]["template"]["spec"]["containers"]
        assert containers == [container("a", image="a:1", args=["x"]), container("b", image="b:2")]
        assert merged["spec"]["template"]["spec"]["volumes"] == [
            {"name": "config", "configMap": {"name": "c"}}
        ]

    def test_service_ports_merge_by_port(self) -> None:
        service = {
            "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 443, "name": "https"}, {"port": 80}]},
        }
        merged = patching.strategic_merge_patch(
            service, {"spec": {"ports": [{"port": 80, "name": "http"}]}}, "Service"
        )
        assert merged["spec"]["ports"] == [{"port": 443, "name": "https"}, {"port": 80, "name": "http"}]
