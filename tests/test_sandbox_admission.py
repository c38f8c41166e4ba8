"""Admission (pruning, defaults, schema, CEL) and Table building, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from backendauth_testbed.sandbox import admission, tables
from sandbox_helpers import backendauth, fixture_crd


@pytest.fixture(scope="module")
def checker() -> admission.Admission:
    schema = fixture_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return admission.Admission(schema)


def errors(checker: admission.Admission, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    checker.prune(obj)
    try:
        checker.validate(obj, old)
    except admission.AdmissionError as exc:
        return [str(e) for e in exc.errors]
    return []


def test_pruning_keeps_metadata_and_reports_unknown_fields(checker: admission.Admission) -> None:
    obj = backendauth("x", colour="red") | {"status": {"status": "OK", "phase": "Lost"}}
    obj["metadata"]["labels"] = {"a": "b"}
    assert checker.prune(obj) == ["spec.colour", "status.phase"]
    assert obj["metadata"]["labels"] == {"a": "b"} and obj["status"] == {"status": "OK"}
    assert obj["spec"]["deletionPolicy"] == "Retain"  # defaulted after pruning


def test_schema_errors_read_like_the_api_server(checker: admission.Admission) -> None:
    obj = backendauth("x", appId="Not-Valid", deletionPolicy="Keep")
    assert errors(checker, obj) == [
        "spec.appId: Invalid value: \"Not-Valid\": spec.appId in body should match '^[a-z0-9]+$'",
        'spec.deletionPolicy: Unsupported value: "Keep": supported values: "Retain", "Delete"',
    ]
    obj = backendauth("x", backendEnvironmentName=5)
    assert errors(checker, obj) == [
        'spec.backendEnvironmentName: Invalid value: "integer": '
        'spec.backendEnvironmentName in body must be of type string: "integer"'
    ]


def test_transition_rules_run_only_on_updates(checker: admission.Admission) -> None:
    old = backendauth("x")
    checker.prune(old)
    assert errors(checker, backendauth("x", appId="new")) == []  # create: no oldSelf, rule skipped
    assert errors(checker, backendauth("x", appId="new"), old) == [
        'spec.appId: Invalid value: "string": appId is immutable'
    ]
    assert errors(checker, backendauth("x", backendEnvironmentName="prod"), old) == []


def test_message_expression_and_field_path(checker: admission.Admission) -> None:
    obj = backendauth(
        "x", resourceConfig={"userPoolConfigs": {"signInMethod": "EMAIL", "mfa": {"mfaMode": "ON"}}}
    )
    assert errors(checker, obj) == [
        'spec.resourceConfig.userPoolConfigs.mfa.mfaTypes: Invalid value: "array": mfaTypes is required when '
        "mfaMode is ON"
    ]


def test_a_rule_that_fails_to_evaluate_is_an_error_not_a_pass() -> None:
    checker = admission.Admission(
        {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {"a": {"type": "string"}},
                    "x-kubernetes-validations": [{"rule": "self.a == 'x'", "message": "a must be x"}],
                }
            },
        }
    )
    assert "no such member" in errors(checker, {"metadata": {"name": "n"}, "spec": {}})[0]


def test_uncompilable_rules_are_refused() -> None:
    with pytest.raises(admission.AdmissionError, match="compilation failed"):
        admission.Admission({"type": "object", "x-kubernetes-validations": [{"rule": "self.a ==="}]})


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".spec.appId", ["app"]),
        ('.status.conditions[?(@.type=="Ready")].status', ["True"]),
        (".status.conditions[?(@.type!='Ready')].reason", ["Busy"]),
        (".status.conditions[*].type", ["Ready", "Reconciling"]),
        (".status.conditions[1].type", ["Reconciling"]),
        ("{.metadata.labels['app.kubernetes.io/name']}", ["shop"]),
        (".status.missing", []),
    ],
)
def test_jsonpath_subset(path: str, expected: list[Any]) -> None:
    obj = {
        "metadata": {"labels": {"app.kubernetes.io/name": "shop"}},
        "spec": {"appId": "app"},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Done"},
                {"type": "Reconciling", "status": "False", "reason": "Busy"},
            ]
        },
    }
    assert tables.jsonpath(obj, path) == expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (150, "2m30s"),
        (600, "10m"),
        (3 * 3600 + 60, "3h1m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 3600, "3d1h"),
        (40 * 86400, "40d"),
        (3 * 365 * 86400, "3y"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert tables.human_duration(seconds) == text


def test_printer_columns_table() -> None:
    columns = fixture_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    builder = tables.builder_for("backendauths", columns)
    obj = backendauth("x") | {
        "status": {"status": "COMPLETED", "conditions": [{"type": "Ready", "status": "True"}]}
    }
    obj["metadata"]["creationTimestamp"] = "2000-01-01T00:00:00Z"
    result = builder.table([obj], "7")
    assert [c["name"] for c in result["columnDefinitions"]] == [
        "Name",
        "App",
        "Env",
        "Status",
        "Ready",
        "Age",
        "Job",
        "Reason",
        "Error",
    ]
    assert [c["priority"] for c in result["columnDefinitions"]][-3:] == [1, 1, 1]
    cells = result["rows"][0]["cells"]
    assert cells[:5] == ["x", "d1a2b3c4", "staging", "COMPLETED", "True"] and cells[5].endswith("y")
    assert cells[6:] == [None, None, None]
    assert result["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("resourceName",), "abcd\n"),  # RE2's $ is the very end; Python's allows a final newline
        (("resourceConfig", "userPoolConfigs", "userPoolName"), "ユーザー名"),  # RE2's \w is ASCII
    ],
)
def test_patterns_are_read_as_the_api_servers_re2_reads_them(path: tuple[str, ...], value: str) -> None:
    from backendauth_operator.commands.crd import build_crd
    from specs import minimal_spec

    checker = admission.Admission(build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    obj = backendauth("x")
    obj["spec"] = minimal_spec()
    node = obj["spec"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    found = errors(checker, obj)
    assert any(path[-1] in e and "should match" in e for e in found), found
    assert admission.re2_search(r"^[a-z]+$", "ok") and not admission.re2_search(r"^[a-z]+$", "ok\n")


def test_a_rules_verdict_is_remembered_per_value_and_old_value() -> None:
    """Verdicts are kept by rule, path, value and old value: the same answers as evaluating
    again, and one evaluation for a spec that many writes leave as it was."""
    schema = fixture_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    fresh = admission.Admission(schema)
    old = backendauth("x")
    fresh.prune(old)
    for _ in range(2):  # the same answers from the remembered verdicts
        assert errors(fresh, backendauth("x", appId="new"), old) == [
            'spec.appId: Invalid value: "string": appId is immutable'
        ]
        assert errors(fresh, backendauth("x", appId=old["spec"]["appId"]), old) == []
    remembered = len(fresh._verdicts)
    for _ in range(5):
        assert errors(fresh, backendauth("x"), old) == []
    assert len(fresh._verdicts) == remembered, "an unchanged spec is not evaluated again"
    # Another old value is another verdict for a transition rule.
    other = backendauth("x", appId="new")
    fresh.prune(other)
    assert errors(fresh, backendauth("x", appId="new"), other) == []


def test_a_value_left_as_it_was_is_ratcheted_but_transition_rules_still_run() -> None:
    """As the API server with validation ratcheting (on by default since Kubernetes 1.30): a
    rule without oldSelf is not held against a value that the update leaves as it was; a
    transition rule still is, and a create has nothing to ratchet."""
    checker = admission.Admission(
        {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "small": {
                            "type": "integer",
                            "x-kubernetes-validations": [
                                {"rule": "self < 10", "message": "must be under 10"}
                            ],
                        },
                        "grows": {
                            "type": "integer",
                            "x-kubernetes-validations": [{"rule": "self > oldSelf", "message": "must grow"}],
                        },
                    },
                }
            },
        }
    )

    def obj(small: int, grows: int) -> dict[str, Any]:
        return {"metadata": {"name": "n"}, "spec": {"small": small, "grows": grows}}

    too_big = 'spec.small: Invalid value: "integer": must be under 10'
    not_grown = 'spec.grows: Invalid value: "integer": must grow'
    old = obj(20, 1)
    assert errors(checker, obj(20, 2), old) == []  # small unchanged: ratcheted
    assert errors(checker, obj(21, 2), old) == [too_big]  # changed: checked
    assert errors(checker, obj(20, 1), old) == [not_grown]  # a transition rule is not ratcheted
    assert errors(checker, obj(20, 2)) == [too_big]  # a create: nothing to ratchet
