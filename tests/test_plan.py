"""``backendauth-operator plan`` against the simulator: every example before it is applied, after,
and after AWS was changed behind the operator's back; exit codes 0/2/1; no secret value shown."""

from __future__ import annotations

import io
import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from backendauth_operator.commands.cli import main
from backendauth_operator.core.bookkeeping import CREATE
from backendauth_operator.core.models import (
    create_backend_auth_kwargs,
    parse_spec,
    update_backend_auth_kwargs,
)
from backendauth_testbed.simulator import SimulatorConfig, SimulatorThread
from harness import wait_until
from sim import seed_pools

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# The manifests that create (import.yaml links existing pools: tested below).
MANIFESTS = [
    p for p in sorted(EXAMPLES.glob("*.yaml")) if p.name not in ("social-secrets.yaml", "import.yaml")
]
SECRETS = {
    (doc["metadata"]["name"], key): value
    for doc in yaml.safe_load_all((EXAMPLES / "social-secrets.yaml").read_text())
    for key, value in doc["stringData"].items()
}


def backendauths(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "BackendAuth"]


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorThread]:
    thread = SimulatorThread(SimulatorConfig(auto_apps=True, job_seconds=0.0)).start()
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("BACKENDAUTH_AWS_ENDPOINT_URL", thread.url)
    yield thread
    thread.stop()


def plan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["plan", *args])
    return code, capsys.readouterr().out


def client(sim: SimulatorThread, region: str) -> Any:
    return boto3.client("amplifybackend", region_name=region, endpoint_url=sim.url)


def apply(sim: SimulatorThread, doc: dict[str, Any]) -> None:
    """What the operator sends for a new BackendAuth, carried to its end."""
    spec = parse_spec(doc["spec"])
    aws = client(sim, spec.region or "eu-west-1")
    answer = aws.create_backend_auth(
        **create_backend_auth_kwargs(spec, lambda ref: SECRETS[(ref.name, ref.key)])
    )
    finish(aws, spec.app_id, spec.backend_environment_name, answer["JobId"])


def finish(aws: Any, app: str, env: str, job: str) -> None:
    """Wait for an AWS job to complete (the simulator's jobs here take no time)."""
    wait_until(
        lambda: (
            aws.get_backend_job(AppId=app, BackendEnvironmentName=env, JobId=job)["Status"] == "COMPLETED"
        ),
        what=f"job {job} to complete",
    )


def change_password_length(sim: SimulatorThread, doc: dict[str, Any]) -> None:
    """Someone sets the minimum password length in the console (an UpdateBackendAuth)."""
    spec = parse_spec(doc["spec"])
    kwargs = update_backend_auth_kwargs(spec, lambda ref: SECRETS[(ref.name, ref.key)])
    kwargs["ResourceConfig"]["UserPoolConfigs"]["PasswordPolicy"] = {"MinimumLength": 6.0}
    aws = client(sim, spec.region or "eu-west-1")
    answer = aws.update_backend_auth(**kwargs)
    finish(aws, spec.app_id, spec.backend_environment_name, answer["JobId"])


def change_sign_up_attributes(sim: SimulatorThread, doc: dict[str, Any]) -> None:
    """Someone changes, in the console, what only a create can set."""
    spec = doc["spec"]
    key = f"{spec['appId']}/{spec['backendEnvironmentName']}/{spec['resourceName']}"
    config = json.loads(_get(f"{sim.url}/_sim/state"))["resources"][key]
    config["userPoolConfigs"]["requiredSignUpAttributes"] = ["PHONE_NUMBER"]
    where = {k: spec[k] for k in ("appId", "backendEnvironmentName", "resourceName")}
    _post(f"{sim.url}/_sim/resources", {**where, "resourceConfig": config})


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    urllib.request.urlopen(request, timeout=10).close()


def assert_no_secret_value(out: str) -> None:
    for value in SECRETS.values():
        for line in value.splitlines():
            assert "replace-with" not in line or line not in out


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_every_example_before_apply_after_apply_and_after_a_drift(
    path: Path, sim: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = backendauths(path)
    code, out = plan(capsys, "-f", str(path))
    assert code == 2, out
    for doc in docs:
        assert f"BackendAuth default/{doc['metadata']['name']}: create ({CREATE})" in out, out
    assert "+ resourceConfig.userPoolConfigs.userPoolName = " in out
    assert_no_secret_value(out)
    if "clientSecretRef" in path.read_text():
        assert "(secret) would change" in out

    for doc in docs:
        apply(sim, doc)
    code, out = plan(capsys, "-f", str(path), "-o", "json")
    verdicts = json.loads(out)
    assert code == 0, out
    assert [v["action"] for v in verdicts] == ["nothing"] * len(docs)
    assert all(v["calls"] == [] and set(v["secrets"].values()) <= {"unchanged"} for v in verdicts)

    change_password_length(sim, docs[0])
    code, out = plan(capsys, "-f", str(path))
    name = docs[0]["metadata"]["name"]
    if "minimumLength" in path.read_text():
        assert code == 2, out
        assert f"BackendAuth default/{name}: update (UpdateBackendAuth)" in out
        assert "~ resourceConfig.userPoolConfigs.passwordPolicy.minimumLength: 6.0 -> 12.0" in out
    else:  # a field the spec leaves to AWS is not a change
        assert code == 0, out
    assert_no_secret_value(out)


def test_a_change_only_a_create_can_make_stalls(
    sim: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    path = EXAMPLES / "minimal.yaml"
    doc = backendauths(path)[0]
    apply(sim, doc)
    change_sign_up_attributes(sim, doc)
    code, out = plan(capsys, "-f", str(path))
    assert code == 2, out
    assert "BackendAuth default/minimal-auth: stall: AWS differs from the spec at " in out
    assert '~ resourceConfig.userPoolConfigs.requiredSignUpAttributes: ["PHONE_NUMBER"] -> ["EMAIL"]' in out


def test_a_change_update_can_make_is_shown_field_by_field(
    tmp_path: Path, sim: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = backendauths(EXAMPLES / "minimal.yaml")[0]
    apply(sim, doc)
    doc["spec"]["resourceConfig"]["userPoolConfigs"]["passwordPolicy"] = {"minimumLength": 14}
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(doc))
    code, out = plan(capsys, "-f", str(changed), "-n", "team-a")
    assert code == 2
    assert "BackendAuth team-a/minimal-auth: update (UpdateBackendAuth)" in out
    assert '~ resourceConfig.userPoolConfigs.passwordPolicy: null -> {"MinimumLength": 14.0}' in out


def test_adopt_what_aws_has_with_adoption_policy_from_a_list_on_stdin(
    sim: SimulatorThread, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = backendauths(EXAMPLES / "minimal.yaml")[0]
    apply(sim, doc)
    doc["spec"]["adoptionPolicy"] = "AdoptOrCreate"
    listed = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [doc]})
    monkeypatch.setattr(sys, "stdin", io.StringIO(listed))
    code, out = plan(capsys, "-f", "-")
    assert code == 0, out  # nothing to send: AWS has it as the spec says
    assert "BackendAuth default/minimal-auth: adopt\n" in out


def test_errors_exit_1_naming_the_field(
    tmp_path: Path, sim: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = backendauths(EXAMPLES / "minimal.yaml")[0]
    del doc["spec"]["resourceConfig"]["userPoolConfigs"]["signInMethod"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    code, out = plan(capsys, "-f", str(bad))
    assert code == 1 and "error: spec.resourceConfig.userPoolConfigs.signInMethod" in out
    # The summary counts the error: it never reads like a plan with nothing to do.
    assert out.splitlines()[-1] == "1 BackendAuth(s): 1 error, 0 to change."
    code, _ = plan(capsys, "-f", str(tmp_path / "absent.yaml"))
    assert code == 1


def test_an_error_among_changes_is_counted_apart_and_exits_1(
    tmp_path: Path, sim: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = backendauths(EXAMPLES / "minimal.yaml")[0], backendauths(EXAMPLES / "minimal.yaml")[0]
    bad["metadata"]["name"] = "bad"
    bad["spec"]["resourceConfig"]["userPoolConfigs"]["signInMethod"] = "CARRIER_PIGEON"
    both = tmp_path / "both.yaml"
    both.write_text(yaml.safe_dump_all([good, bad]))
    code, out = plan(capsys, "-f", str(both))
    assert code == 1, out
    assert out.splitlines()[-1] == "2 BackendAuth(s): 1 error, 1 to change."


def test_without_a_region_the_error_says_how_to_give_one(
    tmp_path: Path, sim: SimulatorThread, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    doc = backendauths(EXAMPLES / "minimal.yaml")[0]
    doc["spec"].pop("region", None)
    regionless = tmp_path / "regionless.yaml"
    regionless.write_text(yaml.safe_dump(doc))
    code, out = plan(capsys, "-f", str(regionless))
    assert code == 1, out
    first, last = out.splitlines()[0], out.splitlines()[-1]
    assert first.startswith("BackendAuth default/minimal-auth: error: spec.region: required")
    assert "give spec.region in the manifest, or set AWS_REGION" in first
    assert last == "1 BackendAuth(s): 1 error, 0 to change."
    assert sim.simulator.backend.calls == []  # nothing was read without a region


def test_a_directory_is_every_manifest_in_it(
    sim: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = plan(capsys, "-f", str(EXAMPLES))
    assert code == 2
    assert out.count(": create (CreateBackendAuth)") == sum(len(backendauths(p)) for p in MANIFESTS)


# ---- the files the walkthroughs post to the simulator -------------------------------------------


def post_as_curl(sim: SimulatorThread, path: str, example: str) -> dict[str, Any]:
    """``curl -s -X POST $SIM/_sim/PATH -d @examples/EXAMPLE``: curl strips the file's line breaks
    and sends it as a form; the simulator's answer (a failure raises)."""
    data = (EXAMPLES / example).read_bytes().replace(b"\r", b"").replace(b"\n", b"")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    request = urllib.request.Request(f"{sim.url}/_sim/{path}", data=data, method="POST", headers=form)
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


DRIFTED = [
    "BackendAuth default/shop-auth: update (UpdateBackendAuth)",
    "  ~ resourceConfig.userPoolConfigs.passwordPolicy.minimumLength: 8.0 -> 12.0",
    "1 BackendAuth(s): 1 to change.",
]


def test_drift_json_is_outputs_yaml_with_the_minimum_length_set_to_8(
    sim: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    # Posted to a fresh simulator (the plan walkthrough): AWS has shop-auth, but with 8.
    state = post_as_curl(sim, "resources", "drift.json")
    assert state["resources"]["d1a2b3c4d5e6f7/shop/shopauth"]["userPoolConfigs"]["passwordPolicy"] == {
        "minimumLength": 8,
        "additionalConstraints": ["REQUIRE_DIGIT"],
    }
    code, out = plan(capsys, "-f", str(EXAMPLES / "outputs.yaml"))
    assert (code, out.splitlines()) == (2, DRIFTED)  # that one field differs, nothing else


def test_drift_json_changes_only_the_minimum_length_of_what_the_operator_created(
    sim: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    # Posted after the operator created it (the drift walkthrough).
    apply(sim, backendauths(EXAMPLES / "outputs.yaml")[0])
    assert plan(capsys, "-f", str(EXAMPLES / "outputs.yaml"))[0] == 0
    post_as_curl(sim, "resources", "drift.json")
    code, out = plan(capsys, "-f", str(EXAMPLES / "outputs.yaml"))
    assert (code, out.splitlines()) == (2, DRIFTED)


def test_studio_auth_json_is_an_auth_resource_that_export_brings_in(
    tmp_path: Path, sim: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    post_as_curl(sim, "resources", "studio-auth.json")
    code = main(["export", "--app", "d1a2b3c4d5e6f7", "--env", "studio", "--namespace", "default"])
    exported = capsys.readouterr().out
    assert code == 0, exported
    (doc,) = [d for d in yaml.safe_load_all(exported) if d]
    assert doc["metadata"] == {"name": "studioauth", "namespace": "default"}
    assert doc["spec"]["adoptionPolicy"] == "AdoptOrCreate"
    studio = tmp_path / "studio.yaml"
    studio.write_text(exported)
    code, out = plan(capsys, "-f", str(studio))
    assert (code, out.splitlines()[0]) == (0, "BackendAuth default/studioauth: adopt")


# ---- spec.import ---------------------------------------------------------------------------------


def import_manifest(tmp: Path, ids: dict[str, Any], name: str = "linked") -> Path:
    doc = {
        "apiVersion": "amplifybackend.gitops.dev/v1alpha1", "kind": "BackendAuth",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"appId": "d1a2b3c4d5e6f7", "backendEnvironmentName": "staging", "import": ids},
    }  # fmt: skip
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def link(sim: SimulatorThread, ids: dict[str, str]) -> None:
    aws = client(sim, "eu-west-1")
    kwargs = {k[0].upper() + k[1:]: v for k, v in ids.items()}
    answer = aws.import_backend_auth(AppId="d1a2b3c4d5e6f7", BackendEnvironmentName="staging", **kwargs)
    finish(aws, "d1a2b3c4d5e6f7", "staging", answer["JobId"])


def pool_ids(sim: SimulatorThread) -> dict[str, str]:
    pools = seed_pools(sim.url, region="eu-west-1")
    return {"userPoolId": pools["userPoolId"], "webClientId": pools["clients"]["web"],
            "nativeClientId": pools["clients"]["native"]}  # fmt: skip


def test_an_import_is_planned_then_nothing_then_a_conflict(
    sim: SimulatorThread, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ids, other = pool_ids(sim), pool_ids(sim)
    manifest = import_manifest(tmp_path, ids)
    code, out = plan(capsys, "-f", str(manifest))
    assert code == 2, out
    assert "BackendAuth default/linked: import (ImportBackendAuth)" in out
    assert f"+ import.userPoolId = {json.dumps(ids['userPoolId'])}" in out

    link(sim, ids)
    code, out = plan(capsys, "-f", str(manifest), "-o", "json")
    assert code == 0, out
    assert [v["action"] for v in json.loads(out)] == ["nothing"]

    code, out = plan(capsys, "-f", str(import_manifest(tmp_path, other, "rival")))
    assert code == 2, out
    assert "BackendAuth default/rival: stall: AWS shows auth resource importedAuth" in out
    assert "neither re-links nor unlinks" in out
    assert f"~ import.userPoolId: {json.dumps(ids['userPoolId'])} -> {json.dumps(other['userPoolId'])}" in out


def test_ids_from_the_cluster_are_not_guessed(
    sim: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    example = EXAMPLES / "import.yaml"
    code, out = plan(capsys, "-f", str(example))
    assert code == 2, out
    assert "BackendAuth default/imported-auth: import (ImportBackendAuth)" in out
    assert '+ import.userPoolId = "(ConfigMap existing-pools key userPoolId)"' in out
    spec = backendauths(example)[0]["spec"]
    aws = client(sim, "eu-west-1")
    ids = pool_ids(sim)
    kwargs = {k[0].upper() + k[1:]: v for k, v in ids.items()}
    answer = aws.import_backend_auth(
        AppId=spec["appId"], BackendEnvironmentName=spec["backendEnvironmentName"], **kwargs
    )
    finish(aws, spec["appId"], spec["backendEnvironmentName"], answer["JobId"])
    code, out = plan(capsys, "-f", str(example))
    assert code == 2, out
    assert "imported-auth: unknown: AWS shows importedAuth" in out and "read in the cluster" in out
