"""The CRD: generated from the models, committed, structural, and complete against botocore."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml

from backendauth_operator import CRD_PATH
from backendauth_operator.commands.crd import build_crd, render_crd_yaml
from backendauth_operator.core.models import SECRET_FIELDS, boto_key, spec_key

ROOT = Path(__file__).resolve().parent.parent


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_crd_command_prints_the_committed_crd() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "backendauth_operator.commands.cli", "crd"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == (ROOT / CRD_PATH).read_text(), "regenerate: backendauth-operator crd > " + CRD_PATH
    assert out == render_crd_yaml()


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        found += _walk(sub, f"{path}.{name}")
    if "items" in node:
        found += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


# pydantic's defaults are dropped (the operator applies its own); the one the API server applies:
DEFAULTED = {".status"}


def test_every_schema_node_is_structural() -> None:
    for path, node in _walk(_schema()):
        assert "type" in node, f"{path or '<root>'} has no type"
        forbidden = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "const", "default"} & node.keys()
        if path in DEFAULTED:
            forbidden.discard("default")
        assert not forbidden, f"{path}: {forbidden}"
        assert node.get("additionalProperties") is not False, path
        if "properties" in node:
            assert node["type"] == "object", path
            assert set(node.get("required", [])) <= set(node["properties"]), path


def _contract_name(member: str) -> str:
    """boto3 member → its spec key: camelCase, MFAMode → mfaMode (the inverse of ``boto_key``)."""
    name = spec_key(member)
    assert boto_key(name) == member
    return name


def _shape_tree(shape: Any, path: str = "") -> list[tuple[str, Any, bool]]:
    """(contract path, botocore shape, required) for every member below ``shape``."""
    out = []
    required = set(shape.required_members)
    for member, sub in shape.members.items():
        sub_path = f"{path}.{_contract_name(member)}"
        out.append((sub_path, sub, member in required))
        if sub.type_name == "structure":
            out += _shape_tree(sub, sub_path)
        elif sub.type_name == "list" and sub.member.type_name == "structure":
            out += _shape_tree(sub.member, sub_path + "[]")
    return out


SECRET_MEMBERS = {f.inline: f.ref for f in SECRET_FIELDS}


def test_every_seed_field_is_in_the_crd_with_aws_enums_and_required_flags() -> None:
    model = botocore.session.get_session().get_service_model("amplifybackend")
    resource_config = model.shape_for("CreateBackendAuthResourceConfig")
    nodes = dict(_walk(_schema()["properties"]["spec"]["properties"]["resourceConfig"]))
    seen = 0
    for path, shape, required in _shape_tree(resource_config):
        assert path in nodes, f"seed field {path} is missing from the CRD"
        node = nodes[path]
        seen += 1
        expected_type = {
            "string": "string",
            "boolean": "boolean",
            "double": "number",
            "integer": "integer",
            "structure": "object",
            "list": "array",
        }[shape.type_name]
        if path.endswith("minimumLength"):
            expected_type = "integer"  # Cognito takes whole numbers; boto3 gets a float
        assert node["type"] == expected_type, path
        if getattr(shape, "enum", None):
            assert node["enum"] == list(shape.enum), path
        if shape.type_name == "list" and getattr(shape.member, "enum", None):
            assert node["items"]["enum"] == list(shape.member.enum), path
        parent_path, _, leaf = path.rpartition(".")
        parent_required = nodes[parent_path].get("required", [])
        if required:
            assert leaf in parent_required, f"{path} is required by AWS"
        if leaf in SECRET_MEMBERS:
            assert SECRET_MEMBERS[leaf] in nodes[parent_path]["properties"], path
    assert seen == 52  # every member of CreateBackendAuthResourceConfig in botocore 1.44


def test_status_schema_declares_every_status_field() -> None:
    status = _schema()["properties"]["status"]["properties"]
    for field in (
        "observedGeneration",
        "appId",
        "backendEnvironmentName",
        "jobId",
        "operation",
        "status",
        "error",
        "conditions",
        "lastHandledReconcileAt",
    ):
        assert field in status, field
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert set(conditions["items"]["properties"]) >= {
        "type",
        "status",
        "reason",
        "message",
        "observedGeneration",
        "lastTransitionTime",
    }


def test_a_new_object_gets_a_status_that_no_one_has_observed_it() -> None:
    """The API server answers a create with ``status: {observedGeneration: 0}``, so kstatus (Flux)
    reads the object as InProgress (0 is not generation 1) until the operator writes a status;
    with no status at all it would read as Current at once."""
    crd = yaml.safe_load((ROOT / CRD_PATH).read_text())
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["default"] == {"observedGeneration": 0}
    assert set(status["default"]) <= set(status["properties"])


def test_names_subresource_and_columns_follow_the_contract() -> None:
    crd = yaml.safe_load((ROOT / CRD_PATH).read_text())
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["singular"]) == (
        "BackendAuth",
        "backendauths",
        "backendauth",
    )
    assert names["shortNames"] == ["bauth"] and names["categories"] == ["amplify", "aws"]
    assert crd["spec"]["scope"] == "Namespaced"
    version = crd["spec"]["versions"][0]
    assert (crd["spec"]["group"], version["name"]) == ("amplifybackend.gitops.dev", "v1alpha1")
    assert version["subresources"] == {"status": {}}
    columns = [(c["name"].upper(), c.get("priority", 0)) for c in version["additionalPrinterColumns"]]
    assert columns == [
        ("APP", 0),
        ("ENV", 0),
        ("STATUS", 0),
        ("READY", 0),
        ("AGE", 0),
        ("JOB", 1),
        ("REASON", 1),
        ("ERROR", 1),
        ("ACCOUNT", 1),
    ]


@pytest.mark.parametrize(
    "path",
    [
        "appId",
        "backendEnvironmentName",
        "resourceName",
        "region",
        "resourceConfig.userPoolConfigs.userPoolName",
        "resourceConfig.userPoolConfigs.signInMethod",
        "resourceConfig.userPoolConfigs.requiredSignUpAttributes",
        "resourceConfig.identityPoolConfigs.identityPoolName",
    ],
)
def test_immutable_fields_carry_a_transition_rule(path: str) -> None:
    node = _schema()["properties"]["spec"]
    for part in path.split("."):
        node = node["properties"][part]
    assert {"rule": "self == oldSelf", "message": "is immutable"} in node["x-kubernetes-validations"]


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    """`kubectl explain backendauth.spec.resourceConfig --recursive` explains every field:
    ours where the models say more, AWS's (from botocore's model) elsewhere, enum values listed."""
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    missing: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        for key, prop in (node.get("properties") or {}).items():
            if not str(prop.get("description", "")).strip():
                missing.append(f"{path}.{key}")
            walk(prop, f"{path}.{key}")
        if "items" in node:
            walk(node["items"], f"{path}[]")

    walk(schema, "")
    # The API server refuses any description of metadata (kubectl explain has its own).
    assert missing == [".metadata"]
    assert schema["properties"]["metadata"] == {"type": "object"}
    resource_config = schema["properties"]["spec"]["properties"]["resourceConfig"]["properties"]
    assert "authentication and authorization" in resource_config["authResources"]["description"]
    assert (
        "One of: USER_POOL_ONLY, IDENTITY_POOL_AND_USER_POOL"
        in resource_config["authResources"]["description"]
    )
