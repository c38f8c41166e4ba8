"""The emulated API through the ``kubernetes`` Python client: the server semantics Kopf relies on."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from backendauth_testbed.sandbox import EmulatedClusterThread, emulator
from sandbox_helpers import GROUP, PLURAL, VERSION, backendauth, fixture_crd, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmulatedClusterThread]:
    with EmulatedClusterThread(crds=[fixture_crd()]) as running:
        yield running


@pytest.fixture(scope="module")
def api_client(cluster: EmulatedClusterThread, tmp_path_factory: pytest.TempPathFactory) -> client.ApiClient:
    path = cluster.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config")
    return config.new_client_from_config(config_file=str(path))


@pytest.fixture
def crs(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def create(crs: client.CustomObjectsApi, body: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
    result: dict[str, Any] = crs.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    return result


def get(crs: client.CustomObjectsApi, name: str, namespace: str = "default") -> dict[str, Any]:
    result: dict[str, Any] = crs.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return result


def patch(
    crs: client.CustomObjectsApi, name: str, body: Any, status: bool = False, content_type: str | None = None
) -> dict[str, Any]:
    method = crs.patch_namespaced_custom_object_status if status else crs.patch_namespaced_custom_object
    result: dict[str, Any] = method(GROUP, VERSION, "default", PLURAL, name, body, _content_type=content_type)
    return result


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def error_of(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.value.body)
    return body


def test_create_assigns_server_metadata_and_defaults(crs: client.CustomObjectsApi) -> None:
    obj = create(crs, backendauth("meta", deletionPolicy=None) | {"status": {"status": "FAKE"}})
    meta = obj["metadata"]
    assert len(meta["uid"]) == 36 and meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1 and rv(obj) > 0
    assert obj["spec"]["deletionPolicy"] == "Retain"  # the schema default, applied by the server
    assert "status" not in obj  # status is a subresource: ignored on create


def test_resource_version_is_global_and_bumped_only_by_changes(crs: client.CustomObjectsApi) -> None:
    first = create(crs, backendauth("rv-a"))
    second = create(crs, backendauth("rv-b"))
    assert rv(second) > rv(first)

    labelled = patch(crs, "rv-a", {"metadata": {"labels": {"team": "shop"}}})
    assert rv(labelled) > rv(second) and labelled["metadata"]["generation"] == 1

    changed = patch(crs, "rv-a", {"spec": {"backendEnvironmentName": "prod"}})
    assert changed["metadata"]["generation"] == 2 and rv(changed) > rv(labelled)

    status = patch(crs, "rv-a", {"status": {"status": "RUNNING"}}, status=True)
    assert status["metadata"]["generation"] == 2 and rv(status) > rv(changed)

    same = patch(crs, "rv-a", {"spec": {"backendEnvironmentName": "prod"}})
    assert rv(same) == rv(status)  # a no-op write changes nothing, not even the resourceVersion


def test_status_subresource_separates_status_from_the_rest(crs: client.CustomObjectsApi) -> None:
    create(crs, backendauth("sub"))
    patch(crs, "sub", {"status": {"status": "RUNNING"}}, status=True)

    body = patch(crs, "sub", {"spec": {"backendEnvironmentName": "x"}, "status": {"status": "HACKED"}})
    assert body["status"] == {"status": "RUNNING"} and body["spec"]["backendEnvironmentName"] == "x"

    body = patch(
        crs, "sub", {"spec": {"backendEnvironmentName": "y"}, "status": {"jobId": "j1"}}, status=True
    )
    assert body["spec"]["backendEnvironmentName"] == "x" and body["status"] == {
        "status": "RUNNING",
        "jobId": "j1",
    }

    # Kopf's JSON-patch to /status, guarded by a test of the resourceVersion.
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": body["metadata"]["resourceVersion"]},
        {"op": "add", "path": "/status/error", "value": "none"},
    ]
    body = patch(crs, "sub", ops, status=True, content_type="application/json-patch+json")
    assert body["status"]["error"] == "none"
    with pytest.raises(ApiException) as stale:
        patch(crs, "sub", ops, status=True, content_type="application/json-patch+json")
    assert stale.value.status == 422  # what Kopf expects when the object moved on meanwhile

    fetched = crs.get_namespaced_custom_object_status(GROUP, VERSION, "default", PLURAL, "sub")
    assert fetched["status"]["jobId"] == "j1"

    replaced = crs.replace_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "sub", {**fetched, "status": {"status": "PUT"}}
    )
    assert replaced["status"]["status"] == "RUNNING"  # PUT of the object never changes status


def test_replace_with_a_stale_resource_version_conflicts(crs: client.CustomObjectsApi) -> None:
    old = create(crs, backendauth("stale"))
    patch(crs, "stale", {"metadata": {"labels": {"a": "b"}}})
    with pytest.raises(ApiException) as conflict:
        crs.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "stale", old)
    assert conflict.value.status == 409 and error_of(conflict)["reason"] == "Conflict"


def test_admission_refuses_invalid_objects_with_field_paths(crs: client.CustomObjectsApi) -> None:
    bad = backendauth("bad", resourceConfig={"userPoolConfigs": {"signInMethod": "SMOKE_SIGNALS"}})
    del bad["spec"]["appId"]
    with pytest.raises(ApiException) as invalid:
        create(crs, bad)
    status = error_of(invalid)
    assert invalid.value.status == 422 and status["reason"] == "Invalid"
    assert status["message"].startswith('BackendAuth.amplifybackend.gitops.dev "bad" is invalid: [')
    fields = {cause["field"]: cause for cause in status["details"]["causes"]}
    assert fields["spec.appId"]["message"] == "Required value"
    assert fields["spec.resourceConfig.userPoolConfigs.signInMethod"]["reason"] == "FieldValueNotSupported"

    mfa = backendauth(
        "mfa", resourceConfig={"userPoolConfigs": {"signInMethod": "EMAIL", "mfa": {"mfaMode": "ON"}}}
    )
    with pytest.raises(ApiException) as cel:
        create(crs, mfa)
    assert error_of(cel)["message"] == (
        'BackendAuth.amplifybackend.gitops.dev "mfa" is invalid: '
        'spec.resourceConfig.userPoolConfigs.mfa.mfaTypes: Invalid value: "array": '
        "mfaTypes is required when mfaMode is ON"
    )


def test_transition_rule_makes_app_id_immutable(crs: client.CustomObjectsApi) -> None:
    create(crs, backendauth("immutable"))
    with pytest.raises(ApiException) as invalid:
        patch(crs, "immutable", {"spec": {"appId": "other"}})
    assert error_of(invalid)["message"] == (
        'BackendAuth.amplifybackend.gitops.dev "immutable" is invalid: spec.appId: Invalid value: "string": '
        "appId is immutable"
    )
    assert get(crs, "immutable")["spec"]["appId"] == "d1a2b3c4"


def test_undeclared_status_fields_are_pruned_with_a_warning(
    cluster: EmulatedClusterThread, crs: client.CustomObjectsApi
) -> None:
    create(crs, backendauth("pruned"))
    request = urllib.request.Request(
        f"{cluster.url}/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}/pruned/status",
        method="PATCH",
        data=json.dumps({"status": {"status": "OK", "phase": "Lost"}}).encode(),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["status"] == {"status": "OK"}  # what Kopf reports as "inconsistencies"
        assert response.headers["Warning"] == '299 - "unknown field \\"status.phase\\""'
    with pytest.raises(ApiException) as strict:
        crs.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "pruned",
            {"spec": {"colour": "red"}},
            field_validation="Strict",
        )
    assert strict.value.status == 400 and 'unknown field "spec.colour"' in error_of(strict)["message"]


def test_watch_resumes_at_a_resource_version_without_replay(crs: client.CustomObjectsApi) -> None:
    create(crs, backendauth("before-list"))
    listed = crs.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert listed["kind"] == "BackendAuthList" and listed["apiVersion"] == f"{GROUP}/{VERSION}"
    create(crs, backendauth("after-list"))

    stream = watch.Watch().stream(
        crs.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "default",
        PLURAL,
        resource_version=listed["metadata"]["resourceVersion"],
        timeout_seconds=1,
    )
    seen = [(event["type"], event["object"]["metadata"]["name"]) for event in stream]
    assert seen == [("ADDED", "after-list")]

    fresh = watch.Watch().stream(
        crs.list_namespaced_custom_object, GROUP, VERSION, "default", PLURAL, timeout_seconds=1
    )
    names = {event["object"]["metadata"]["name"] for event in fresh if event["type"] == "ADDED"}
    assert {"before-list", "after-list"} <= names  # no resourceVersion: the current state first


def test_watch_bookmarks_and_initial_events(
    cluster: EmulatedClusterThread, crs: client.CustomObjectsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(crs, backendauth("bookmarked"))
    monkeypatch.setattr(emulator, "BOOKMARK_SECONDS", 0.2)
    url = (
        f"{cluster.url}/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}?watch=true&timeoutSeconds=1"
        "&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
        "&fieldSelector=metadata.name%3Dbookmarked"
    )
    with urllib.request.urlopen(url, timeout=10) as response:
        events = [json.loads(line) for line in response]
    assert [e["type"] for e in events[:2]] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert {e["type"] for e in events[2:]} == {"BOOKMARK"}  # idle: periodic bookmarks (Kopf's keep-alive)
    assert int(events[-1]["object"]["metadata"]["resourceVersion"]) >= rv(events[0]["object"])


def test_watch_too_old_resource_version_is_gone(
    cluster: EmulatedClusterThread, crs: client.CustomObjectsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = crs.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)["metadata"][
        "resourceVersion"
    ]
    monkeypatch.setattr(emulator, "LOG_SIZE", 4)
    for index in range(6):
        create(crs, backendauth(f"churn-{index}"))
    raw = watch.Watch().stream(
        crs.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "default",
        PLURAL,
        resource_version=start,
        timeout_seconds=1,
        _preload_content=False,
    )
    with pytest.raises(ApiException) as gone:
        list(raw)
    assert gone.value.status == 410


def test_delete_waits_for_finalizers(crs: client.CustomObjectsApi) -> None:
    create(crs, backendauth("final") | {"metadata": {"name": "final", "finalizers": ["example.com/f"]}})
    listed = crs.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    crs.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "final")
    marked = get(crs, "final")
    assert marked["metadata"]["deletionTimestamp"] and marked["metadata"]["generation"] == 2

    with pytest.raises(ApiException) as forbidden:
        patch(crs, "final", {"metadata": {"finalizers": ["example.com/f", "example.com/g"]}})
    assert forbidden.value.status == 422

    patch(
        crs,
        "final",
        [{"op": "remove", "path": "/metadata/finalizers/0"}],
        content_type="application/json-patch+json",
    )
    with pytest.raises(ApiException) as gone:
        get(crs, "final")
    assert gone.value.status == 404

    events = watch.Watch().stream(
        crs.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "default",
        PLURAL,
        resource_version=listed["metadata"]["resourceVersion"],
        timeout_seconds=1,
        field_selector="metadata.name=final",
    )
    assert [event["type"] for event in events] == ["MODIFIED", "DELETED"]


def test_namespaces_are_listed_and_emptied_on_deletion(core: client.CoreV1Api) -> None:
    assert "default" in {ns.metadata.name for ns in core.list_namespace().items}
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_config_map("shop", {"metadata": {"name": "cm"}})
    assert missing.value.status == 404

    core.create_namespace({"metadata": {"name": "shop"}})
    core.create_namespaced_secret("shop", {"metadata": {"name": "google-oauth"}, "stringData": {"k": "v"}})
    core.delete_namespace("shop")
    wait_for(
        lambda: "shop" not in {ns.metadata.name for ns in core.list_namespace().items}, what="namespace gone"
    )
    with pytest.raises(ApiException):
        core.read_namespaced_secret("google-oauth", "shop")


def test_label_and_field_selectors(core: client.CoreV1Api) -> None:
    for name, tier in [("cm-a", "web"), ("cm-b", "db")]:
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": {"tier": tier}}})
    assert [
        c.metadata.name for c in core.list_namespaced_config_map("default", label_selector="tier=db").items
    ] == ["cm-b"]
    assert {
        c.metadata.name
        for c in core.list_namespaced_config_map("default", label_selector="tier in (web,db),tier!=web").items
    } == {"cm-b"}

    ref = {"kind": "BackendAuth", "name": "shop-auth", "namespace": "default", "uid": "u-1"}
    event = core.create_namespaced_event(
        "default",
        {"metadata": {"generateName": "kopf-event-"}, "involvedObject": ref, "reason": "R", "message": "m"},
    )
    assert (
        event.metadata.name.startswith("kopf-event-") and len(event.metadata.name) == len("kopf-event-") + 5
    )
    found = core.list_namespaced_event(
        "default", field_selector="involvedObject.name=shop-auth,involvedObject.uid=u-1"
    )
    assert [e.metadata.name for e in found.items] == [event.metadata.name]
    assert core.list_namespaced_event("default", field_selector="involvedObject.name=other").items == []


def test_other_kinds_kopf_uses(api_client: client.ApiClient) -> None:
    leases = client.CoordinationV1Api(api_client)
    lease = leases.create_namespaced_lease(
        "default", {"metadata": {"name": "op"}, "spec": {"holderIdentity": "a"}}
    )
    lease.spec.holder_identity = "b"
    assert leases.replace_namespaced_lease("op", "default", lease).spec.holder_identity == "b"
    events = client.EventsV1Api(api_client)
    created = events.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "e1"},
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "reason": "R",
            "action": "A",
            "reportingController": "x",
            "reportingInstance": "y",
            "regarding": {"kind": "BackendAuth", "name": "n"},
        },
    )
    assert created.regarding.name == "n"


def test_crds_posted_through_the_api_are_served(api_client: client.ApiClient, tmp_path: Path) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Cluster",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}
                            },
                        }
                    },
                }
            ],
        },
    }
    created = ext.create_custom_resource_definition(crd)
    assert {c.type for c in created.status.conditions} >= {"Established", "NamesAccepted"}
    crs = client.CustomObjectsApi(api_client)
    widget = crs.create_cluster_custom_object(
        "example.com",
        "v1",
        "widgets",
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}},
    )
    assert widget["spec"] == {"size": 3}
    with pytest.raises(ApiException) as invalid:
        crs.create_cluster_custom_object(
            "example.com",
            "v1",
            "widgets",
            {
                "apiVersion": "example.com/v1",
                "kind": "Widget",
                "metadata": {"name": "x"},
                "spec": {"size": "big"},
            },
        )
    assert invalid.value.status == 422

    ext.delete_custom_resource_definition("widgets.example.com")
    with pytest.raises(ApiException) as gone:
        crs.get_cluster_custom_object("example.com", "v1", "widgets", "w")
    assert gone.value.status == 404


def test_a_counted_port_serves_the_same_objects_and_counts_only_its_own_requests(
    cluster: EmulatedClusterThread, crs: client.CustomObjectsApi
) -> None:
    """What the benchmark counts the operator's requests with, instead of a proxy."""
    create(crs, backendauth("counted"))
    seen: list[tuple[str, str]] = []
    url = cluster.serve_counted(lambda request: seen.append((request.method, request.path)))
    path = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}/counted"
    with urllib.request.urlopen(url + path, timeout=10) as response:
        assert json.loads(response.read())["metadata"]["name"] == "counted"
    with urllib.request.urlopen(cluster.url + path, timeout=10) as response:
        assert response.status == 200
    assert seen == [("GET", path)]
