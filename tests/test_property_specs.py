"""Property: for any spec, the CRD's admission, the operator's own check and botocore agree.

Specs are generated from the full example by mutating fields (new strings, numbers, booleans,
lists, odd characters, removal). For each: the sandbox's admission of the CRD (schema with RE2
patterns, then CEL) accepts it exactly when the operator's ``parse_spec`` does; an accepted spec
makes a request that botocore's parameter validation accepts; a refused one is refused naming a
field. CI runs a few hundred examples; thousands by hand:

    BACKENDAUTH_PROPERTY_EXAMPLES=5000 .venv/bin/pytest tests/test_property_specs.py -p no:timeout
"""

from __future__ import annotations

import copy
import json
import os
from functools import cache
from typing import Any

import botocore.session
import botocore.validate
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backendauth_operator.commands.crd import build_crd
from backendauth_operator.core.models import InvalidSpecError, create_backend_auth_kwargs, parse_spec
from backendauth_testbed.sandbox import admission
from specs import full_spec, minimal_spec

EXAMPLES = int(os.environ.get("BACKENDAUTH_PROPERTY_EXAMPLES", "300"))
Path = tuple[str | int, ...]


@cache
def checker() -> admission.Admission:
    return admission.Admission(build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


@cache
def create_input_shape() -> Any:
    model = botocore.session.get_session().get_service_model("amplifybackend")
    return model.operation_model("CreateBackendAuth").input_shape


def leaf_paths(node: Any, at: Path = ()) -> list[Path]:
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in [(*at, key), *leaf_paths(value, (*at, key))]]
    if isinstance(node, list):
        return [p for i, value in enumerate(node) for p in [(*at, i), *leaf_paths(value, (*at, i))]]
    return []


BASES = [full_spec(), minimal_spec()]
ODD = ["", " ", "x" * 300, "EMAIL", "ON", "CODE", "ユーザー名", "abcd\n", "https:// a", "myapp://cb",
       "Your code is {####}", "d1a2b3c4d5e6f7", "secret-ref", "a.b", "..", "-x"]  # fmt: skip
VALUES = st.one_of(
    st.none(),  # remove the field
    st.sampled_from(ODD),
    st.text(max_size=20),
    st.integers(min_value=-3, max_value=150),
    st.booleans(),
    st.lists(st.sampled_from([*ODD, "EMAIL", "NAME", "TOTP", "SMS", "OPENID"]), max_size=4),
)


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict[str, Any]:
    spec = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        paths = leaf_paths(spec)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = spec
        for key in path[:-1]:
            parent = parent[key]
        value = draw(VALUES)
        if value is None:
            if isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent.pop(path[-1])
        else:
            parent[path[-1]] = value
    return spec


def admission_errors(spec: dict[str, Any]) -> list[str]:
    obj = {"apiVersion": "amplifybackend.gitops.dev/v1alpha1", "kind": "BackendAuth",
           "metadata": {"name": "x", "namespace": "default"}, "spec": spec}  # fmt: skip
    try:
        checker().validate(obj, None)
    except admission.AdmissionError as error:
        return [str(e) for e in error.errors]
    return []


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_specs())
def test_admission_the_operator_and_botocore_agree(spec: dict[str, Any]) -> None:
    refused_by_crd = admission_errors(copy.deepcopy(spec))
    try:
        parsed = parse_spec(copy.deepcopy(spec))
    except InvalidSpecError as error:
        assert refused_by_crd, f"the operator refuses what the CRD accepts: {error}"
        assert str(error).startswith("spec."), f"no field named: {error}"
        return
    assert not refused_by_crd, f"the CRD refuses what the operator accepts: {refused_by_crd}"
    request = create_backend_auth_kwargs(parsed, lambda ref: "a-secret-value")
    botocore.validate.validate_parameters(request, create_input_shape())


REAL_EXAMPLES = int(os.environ.get("BACKENDAUTH_PROPERTY_REAL_EXAMPLES", "40"))


@pytest.mark.real_apiserver
@settings(max_examples=REAL_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=mutated_specs())
def test_the_real_api_server_and_the_operator_agree(real_cluster: Any, spec: dict[str, Any]) -> None:
    """The same property against a real kube-apiserver (a server-side dry run: nothing is stored)."""
    obj = {"apiVersion": "amplifybackend.gitops.dev/v1alpha1", "kind": "BackendAuth",
           "metadata": {"name": "property", "namespace": "default"}, "spec": spec}  # fmt: skip
    result = real_cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(obj), check=False)
    try:
        parse_spec(copy.deepcopy(spec))
    except InvalidSpecError as error:
        assert result.returncode != 0, f"the real server accepts what the operator refuses: {error}"
        return
    assert result.returncode == 0, f"the real server refuses what the operator accepts: {result.stderr}"
