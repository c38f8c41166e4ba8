"""Keeping AWS in line with Git: drift corrected or reported, Secret rotation, outputs, export."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from harness import Bed, backendauth, secret, wait_until
from sim import sim_state
from specs import minimal_spec

pytestmark = pytest.mark.integration

APP, ENV = "d1a2b3c4d5e6f7", "staging"
ROTATED = "rotated-google-secret-41d2"


def resyncing(make_bed: Callable[..., Bed], seconds: str = "1") -> Bed:
    bed = make_bed(start_operator=False)
    bed.operator.env["BACKENDAUTH_RESYNC_SECONDS"] = seconds
    bed.operator.start()
    return bed


def with_policy(name: str, **overrides: Any) -> dict[str, Any]:
    spec = minimal_spec(resourceName=name, **overrides)
    spec["resourceConfig"]["userPoolConfigs"]["passwordPolicy"] = {"minimumLength": 12}
    return backendauth(name, spec)


def change_behind_our_back(bed: Bed, name: str, minimum_length: int) -> None:
    """Someone edits the password policy in the Amplify console."""
    config = sim_state(bed)["resources"][f"{APP}/{ENV}/{name}"]
    config["userPoolConfigs"]["passwordPolicy"] = {"minimumLength": minimum_length}
    bed.sim_post("resources", {"appId": APP, "backendEnvironmentName": ENV, "resourceName": name,
                               "resourceConfig": config})  # fmt: skip


def aws_reads(bed: Bed, name: str) -> int:
    """How often AWS was asked for the auth resource ``name`` (GetBackendAuth)."""
    calls = bed.calls()["calls"]
    return sum(1 for c in calls if c["operation"] == "GetBackendAuth" and c.get("resourceName") == name)


def observed_again(bed: Bed, name: str, times: int = 2) -> None:
    """Wait until AWS has been read for ``name`` ``times`` more times (the status carries no read
    time: the simulator's call log says)."""
    before = aws_reads(bed, name)
    wait_until(lambda: aws_reads(bed, name) >= before + times, what=f"{times} more observations")


def test_drift_is_corrected_with_exactly_one_update(make_bed: Callable[..., Bed]) -> None:
    bed = resyncing(make_bed)
    bed.apply(with_policy("drifty"))
    bed.wait_reason("drifty", "JobCompleted", status="True")
    change_behind_our_back(bed, "drifty", 8)
    wait_until(lambda: bed.count("UpdateBackendAuth") == 1, what="the correcting update")
    obj = bed.wait_reason("drifty", "JobCompleted", status="True")
    assert obj["status"]["operation"] == "UpdateBackendAuth" and obj["status"]["drift"] == []
    observed_again(bed, "drifty")
    assert bed.count("UpdateBackendAuth") == 1 and bed.count("CreateBackendAuth") == 1
    stored = sim_state(bed)["resources"][f"{APP}/{ENV}/drifty"]
    assert stored["userPoolConfigs"]["passwordPolicy"]["minimumLength"] == 12
    drifted = [e for e in bed.events("drifty") if e["reason"] == "Drifted"]
    assert drifted and "passwordPolicy.minimumLength" in drifted[0]["message"]


def test_drift_is_only_reported_with_drift_policy_report(make_bed: Callable[..., Bed]) -> None:
    bed = resyncing(make_bed)
    bed.apply(with_policy("watched", driftPolicy="Report"))
    bed.wait_reason("watched", "JobCompleted", status="True")
    change_behind_our_back(bed, "watched", 8)
    obj = bed.wait_reason("watched", "Drifted", status="False")
    assert obj["status"]["drift"] == ["resourceConfig.userPoolConfigs.passwordPolicy.minimumLength"]
    assert bed.condition("watched", "Stalled")["status"] == "True"
    observed_again(bed, "watched")
    assert bed.count("UpdateBackendAuth") == 0
    change_behind_our_back(bed, "watched", 12)  # put right by hand: Ready again, still no call
    obj = bed.wait_reason("watched", "JobCompleted", status="True")
    assert obj["status"]["drift"] == [] and bed.count("UpdateBackendAuth") == 0


def test_drift_no_update_can_correct_stalls_rather_than_loops(make_bed: Callable[..., Bed]) -> None:
    """requiredSignUpAttributes is set only by a create (UpdateBackendAuth does not carry it)."""
    bed = resyncing(make_bed)
    bed.apply(with_policy("fixed"))
    bed.wait_reason("fixed", "JobCompleted", status="True")
    config = sim_state(bed)["resources"][f"{APP}/{ENV}/fixed"]
    config["userPoolConfigs"]["requiredSignUpAttributes"] = ["EMAIL", "PHONE_NUMBER"]
    bed.sim_post("resources", {"appId": APP, "backendEnvironmentName": ENV, "resourceName": "fixed",
                               "resourceConfig": config})  # fmt: skip
    obj = bed.wait_reason("fixed", "Drifted", status="False")
    assert obj["status"]["drift"] == ["resourceConfig.userPoolConfigs.requiredSignUpAttributes"]
    assert bed.condition("fixed", "Stalled")["status"] == "True"
    assert "UpdateBackendAuth cannot change" in bed.condition("fixed")["message"]
    observed_again(bed, "fixed")
    assert bed.count("UpdateBackendAuth") == 0
    logged = "Drifted: AWS differs from the spec at resourceConfig.userPoolConfigs.requiredSignUpAttributes"
    assert logged in bed.operator.log, "the operator's log says it too"


def test_no_resync_means_no_aws_call_for_settled_objects(make_bed: Callable[..., Bed]) -> None:
    bed = resyncing(make_bed, "0")
    bed.apply(with_policy("quiet"))
    bed.wait_reason("quiet", "JobCompleted", status="True")
    before = len(bed.calls()["calls"])
    change_behind_our_back(bed, "quiet", 8)
    # Something else happens meanwhile; the settled object is left alone.
    bed.apply(with_policy("sentinel"))
    bed.wait_reason("sentinel", "JobCompleted", status="True")
    assert all(c["resourceName"] != "quiet" for c in bed.calls()["calls"][before:])


def social(name: str) -> dict[str, Any]:
    spec = minimal_spec(resourceName=name)
    spec["resourceConfig"]["userPoolConfigs"]["oAuth"] = {
        "oAuthGrantType": "CODE", "oAuthScopes": ["OPENID"],
        "redirectSignInURIs": ["https://shop.example.com/cb"], "redirectSignOutURIs": ["https://shop.example.com/"],
        "socialProviderSettings": {"google": {"clientId": "g", "clientSecretRef": {"name": "google-oauth",
                                                                                   "key": "clientSecret"}}},
    }  # fmt: skip
    return backendauth(name, spec)


def stored_google_secret(bed: Bed, name: str) -> str:
    def read(sim: Any) -> str:
        config = sim.backend.resources[(APP, ENV, name)]
        return str(config["userPoolConfigs"]["oAuth"]["socialProviderSettings"]["Google"]["client_secret"])

    return bed.sim.call(read)


def test_a_rotated_secret_reaches_aws_with_one_update_and_is_never_shown(bed: Bed) -> None:
    bed.apply(secret("google-oauth", {"clientSecret": "first-secret-9a8b"}), social("rotating"))
    bed.wait_reason("rotating", "JobCompleted", status="True")
    assert stored_google_secret(bed, "rotating") == "first-secret-9a8b"
    bed.apply(secret("google-oauth", {"clientSecret": ROTATED}))
    wait_until(lambda: bed.count("UpdateBackendAuth") == 1, what="the update carrying the new value")
    update = next(c for c in bed.calls()["calls"] if c["operation"] == "UpdateBackendAuth")
    # Ready again for the update's own job (not the create's, still shown while it is written).
    wait_until(
        lambda: bed.get("rotating").get("status", {}).get("jobId") == update["jobId"],
        what="the update's job shown",
    )
    bed.wait_reason("rotating", "JobCompleted", status="True")
    assert stored_google_secret(bed, "rotating") == ROTATED
    submitted = [e["message"] for e in bed.events("rotating") if e["reason"] == "Submitted"]
    assert any("Secret default/google-oauth changed" in m for m in submitted), submitted
    seen = json.dumps(bed.get("rotating")) + json.dumps(bed.events("rotating")) + bed.operator.log
    assert ROTATED not in seen and "first-secret-9a8b" not in seen
    # The same value applied again (or an unrelated Secret change) makes no call.
    bed.apply(secret("google-oauth", {"clientSecret": ROTATED}), secret("unrelated", {"x": "y"}))
    bed.apply(social("sentinel"))
    bed.wait_reason("sentinel", "JobCompleted", status="True")
    assert bed.count("UpdateBackendAuth") == 1


def test_outputs_in_status_and_in_an_owned_config_map(bed: Bed) -> None:
    manifest = backendauth(
        "outputs", minimal_spec(resourceName="outputs", outputs={"configMapName": "shop-auth-ids"})
    )
    bed.apply(manifest)
    obj = bed.wait_reason("outputs", "JobCompleted", status="True")
    outputs = obj["status"]["outputs"]
    assert (
        outputs["userPoolId"].startswith("eu-west-1_")  # the object's region
        and outputs["appClientIdWeb"]
        and outputs["appClientId"]
    )
    assert "identityPoolId" not in outputs  # USER_POOL_ONLY
    config_map = json.loads(bed.kubectl("get", "configmap", "shop-auth-ids", "-o", "json").stdout)
    assert config_map["data"] == {**outputs, "region": "eu-west-1"}
    (owner,) = config_map["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("BackendAuth", "outputs", obj["metadata"]["uid"])


def export(bed: Bed, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**bed.operator.env}
    return subprocess.run(
        [sys.executable, "-m", "backendauth_operator.commands.cli", "export", *args],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def test_export_then_apply_adopts_with_zero_mutating_calls(bed: Bed) -> None:
    config = {"authResources": "USER_POOL_ONLY", "service": "COGNITO",
              "userPoolConfigs": {"userPoolName": "studiousers", "signInMethod": "EMAIL",
                                  "requiredSignUpAttributes": ["EMAIL", "NAME"],
                                  "passwordPolicy": {"minimumLength": 10.0}}}  # fmt: skip
    body = {"appId": APP, "backendEnvironmentName": "studio", "resourceName": "studioauth"}
    bed.sim_post("resources", {**body, "resourceConfig": config})
    result = export(bed, "--app", APP, "--env", "studio", "--namespace", "default")
    assert result.returncode == 0, result.stderr
    (doc,) = list(yaml.safe_load_all(result.stdout))
    assert doc["spec"]["adoptionPolicy"] == "AdoptOrCreate"
    assert doc["spec"]["resourceConfig"]["userPoolConfigs"]["passwordPolicy"] == {"minimumLength": 10}
    bed.kubectl("apply", "-f", "-", input=result.stdout)
    obj = bed.wait_reason(doc["metadata"]["name"], "Adopted", status="True")
    assert obj["status"]["drift"] == []
    assert bed.count("CreateBackendAuth") == 0 and bed.count("UpdateBackendAuth") == 0


def test_export_writes_secret_references_never_values(bed: Bed) -> None:
    oauth = {
        "oAuthGrantType": "CODE", "oAuthScopes": ["OPENID"],
        "redirectSignInURIs": ["https://a.example.com/"], "redirectSignOutURIs": ["https://a.example.com/"],
        "socialProviderSettings": {"Google": {"client_id": "g", "client_secret": "s3cr3t-value"}},
    }  # fmt: skip
    pool = {
        "userPoolName": "u",
        "signInMethod": "EMAIL",
        "requiredSignUpAttributes": ["EMAIL"],
        "oAuth": oauth,
    }
    config = {"authResources": "USER_POOL_ONLY", "service": "COGNITO", "userPoolConfigs": pool}
    body = {"appId": APP, "backendEnvironmentName": "studio", "resourceName": "withsecret"}
    bed.sim_post("resources", {**body, "resourceConfig": config})
    result = export(bed, "--app", APP, "--env", "studio", "--resource", "withsecret")
    assert result.returncode == 0, result.stderr
    assert "s3cr3t-value" not in result.stdout + result.stderr
    (doc,) = list(yaml.safe_load_all(result.stdout))
    google = doc["spec"]["resourceConfig"]["userPoolConfigs"]["oAuth"]["socialProviderSettings"]["google"]
    assert google == {
        "clientId": "g",
        "clientSecretRef": {"name": "withsecret-google", "key": "clientSecret"},
    }
    assert (
        "# withsecret: create the Secret withsecret-google (key clientSecret) before applying"
        in result.stdout
    )


def test_export_of_an_unknown_environment_says_so_in_one_line(bed: Bed) -> None:
    result = export(bed, "--app", APP, "--env", "nothing-here")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "no auth resource" in result.stderr


def test_export_needs_a_region(bed: Bed) -> None:
    env = {k: v for k, v in bed.operator.env.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    command = [
        sys.executable,
        "-m",
        "backendauth_operator.commands.cli",
        "export",
        "--app",
        APP,
        "--env",
        ENV,
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2 and "--region" in result.stderr
