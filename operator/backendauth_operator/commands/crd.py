"""The BackendAuth CRD, generated from the pydantic models (``backendauth-operator crd``).

pydantic's JSON schema is not a Kubernetes *structural* schema. :func:`structural` translates it:
``$ref``/``$defs`` inlined, ``anyOf [X, null]`` collapsed to ``X``, ``const`` turned into a
one-value ``enum``, and ``title``, ``default`` and ``additionalProperties: false`` dropped (the
API server prunes unknown fields and, with kubectl's default strict field validation, refuses
them). Every node keeps a ``type``; a test walks the result to make sure. The one default
kept is the status of a new object (:func:`~backendauth_operator.core.models.status_on_create`).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from backendauth_operator import (
    CATEGORIES,
    CRD_NAME,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAME,
    SINGULAR,
    VERSION,
)
from backendauth_operator.aws.service_model import service_model
from backendauth_operator.core.models import (
    SECRET_FIELDS,
    BackendAuthSpec,
    BackendAuthStatus,
    boto_key,
    status_on_create,
)

_DROPPED_KEYS = {"title", "default", "$defs", "writeOnly"}


def structural(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Translate one pydantic JSON schema node (and its children) into a structural schema."""
    defs = schema.get("$defs", {}) if defs is None else defs
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {schema['anyOf']}")
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return structural({**options[0], **rest}, defs)

    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED_KEYS or (key == "additionalProperties" and value is False):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = structural(value, defs)
        else:
            out[key] = value
    if "type" not in out:
        raise ValueError(f"schema node without a type: {schema}")
    return _ordered(out)


# A stable, readable key order for the committed YAML.
_KEY_ORDER = [
    "description",
    "type",
    "enum",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "items",
    "required",
    "properties",
    "additionalProperties",
]


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    rank = {k: i for i, k in enumerate(_KEY_ORDER)}
    return dict(sorted(node.items(), key=lambda kv: rank.get(kv[0], len(rank))))


_REFS = {f.ref: f.boto for f in SECRET_FIELDS}


def _plain(html: str) -> str:
    """botocore's documentation is HTML; a CRD description is plain text."""
    text = re.sub(r"<[^>]+>", "", html or "")
    return re.sub(r"\s+", " ", text).strip()


def describe_from_botocore(schema: dict[str, Any], shape: Any) -> None:
    """Give every property of ``schema`` that has no description of its own the documentation
    AWS gives the same member of ``shape`` (botocore's model of create_backend_auth), so that
    ``kubectl explain`` explains every field; enum values are listed."""
    members = getattr(shape, "members", {}) or {}
    for alias, prop in (schema.get("properties") or {}).items():
        key = _REFS.get(alias) or boto_key(alias)
        member = members.get(key)
        if member is None:
            continue
        doc = _plain(member.documentation)
        if alias in _REFS and doc:
            doc = f"A Secret key whose value is sent as: {doc}"
        if doc and not prop.get("description"):
            prop["description"] = doc
        values = prop.get("enum") or (prop.get("items") or {}).get("enum")
        if values and "One of:" not in prop.get("description", ""):
            prop["description"] = (
                f"{prop.get('description', '').rstrip('.')}. One of: {', '.join(values)}.".lstrip(". ")
            )
        target = member.member if getattr(member, "type_name", "") == "list" else member
        if prop.get("type") == "object" and alias not in _REFS:
            describe_from_botocore(prop, target)


def _status_schema() -> dict[str, Any]:
    schema = structural(BackendAuthStatus.model_json_schema(by_alias=True))
    conditions = schema["properties"]["conditions"]
    # Conditions are a map keyed by type, as kstatus and `kubectl wait --for=condition=` expect.
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    conditions["items"]["required"] = ["type", "status"]
    # The one default of the CRD (pydantic's are dropped above): a new object is unobserved.
    schema["default"] = status_on_create()
    return schema


def _printer_columns() -> list[dict[str, Any]]:
    ready = '.status.conditions[?(@.type=="Ready")]'
    return [
        {"name": "App", "type": "string", "jsonPath": ".spec.appId"},
        {"name": "Env", "type": "string", "jsonPath": ".spec.backendEnvironmentName"},
        {
            "name": "Status",
            "type": "string",
            "jsonPath": ".status.status",
            "description": "The AWS job status, verbatim",
        },
        {"name": "Ready", "type": "string", "jsonPath": f"{ready}.status"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Job", "type": "string", "jsonPath": ".status.jobId", "priority": 1},
        {"name": "Reason", "type": "string", "jsonPath": f"{ready}.reason", "priority": 1},
        {"name": "Error", "type": "string", "jsonPath": ".status.error", "priority": 1},
        {"name": "Account", "type": "string", "jsonPath": ".status.awsAccountId", "priority": 1},
    ]


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition of BackendAuth, as a dict."""
    spec_schema = structural(BackendAuthSpec.model_json_schema(by_alias=True))
    describe_from_botocore(
        spec_schema["properties"]["resourceConfig"],
        service_model().shape_for("CreateBackendAuthResourceConfig"),
    )
    spec_schema["description"] = (
        "The desired Amplify backend auth resource: where it lives (app, environment, resource "
        "name, region), what happens on deletion, adoption and drift, and resourceConfig, which "
        "mirrors boto3's ResourceConfig of create_backend_auth."
    )
    status_schema = _status_schema()
    status_schema["description"] = (
        "What the operator last saw in AWS and did: the latest job (verbatim from AWS), when AWS "
        "was last observed, drift, outputs, and the kstatus conditions Ready, Reconciling and "
        "Stalled."
    )
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": [SHORT_NAME],
                "categories": list(CATEGORIES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _printer_columns(),
                    "schema": {
                        "openAPIV3Schema": {
                            "description": "AWS Amplify backend authentication (Cognito user and "
                            "identity pools), managed through the AmplifyBackend API.",
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {
                                    "type": "string",
                                    "description": f"The versioned schema of this object: {GROUP}/{VERSION}.",
                                },
                                "kind": {
                                    "type": "string",
                                    "description": f"The kind of this object: {KIND}.",
                                },
                                # A real API server refuses anything but the type here.
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


class _NoAliasDumper(yaml.SafeDumper):
    """Writes shared sub-trees out in full: a CRD file is read by people, not by YAML anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_crd_yaml() -> str:
    """The CRD as the YAML text committed at ``crds/``."""
    header = "# Generated by `backendauth-operator crd` from operator/backendauth_operator/core/models.py.\n"
    header += "# Do not edit by hand: change the models and regenerate.\n"
    body: str = yaml.dump(build_crd(), Dumper=_NoAliasDumper, sort_keys=False, width=100, allow_unicode=True)
    return header + body
