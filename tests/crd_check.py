"""Check an object against the CRD as an API server would: JSON schema, then CEL rules.

Used by the unit tests to prove that the CRD and the operator's own validation refuse the same
specs, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import celpy
import jsonschema

from backendauth_operator.commands.crd import build_crd


@cache
def spec_schema() -> dict[str, Any]:
    crd = build_crd()
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


@cache
def _program(rule: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def _cel_problems(schema: dict[str, Any], value: Any, old: Any, path: str) -> list[str]:
    problems = []
    for rule in schema.get("x-kubernetes-validations", []):
        uses_old = "oldSelf" in rule["rule"]
        if uses_old and old is None:
            continue  # transition rules run only on updates where the old value exists
        activation = {"self": celpy.json_to_cel(value)}
        if uses_old:
            activation["oldSelf"] = celpy.json_to_cel(old)
        if not bool(_program(rule["rule"]).evaluate(activation)):
            problems.append(f"{path}{rule.get('fieldPath', '')}: {rule['message']}")
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                old_sub = old.get(name) if isinstance(old, dict) else None
                problems += _cel_problems(sub, value[name], old_sub, f"{path}.{name}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += _cel_problems(schema["items"], item, None, f"{path}[{i}]")
    return problems


def crd_problems(spec: dict[str, Any], old_spec: dict[str, Any] | None = None) -> list[str]:
    """Why the API server would refuse this spec (empty if it would accept it)."""
    validator = jsonschema.Draft7Validator(spec_schema())
    problems = [
        "spec"
        + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
        + f": {e.message}"
        for e in validator.iter_errors(spec)
    ]
    if problems:
        return problems  # like the API server, CEL runs only on schema-valid objects
    return _cel_problems(spec_schema(), spec, old_spec, "spec")
