"""The hand-off export against the simulator (AmplifyBackend, Cognito and STS on one port) and
the emulated Kubernetes API: BackendAuths made by the operator, then exported to Crossplane,
ACK and Gen 2 with read-only calls, secrets never printed, per account from the cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from harness import Bed, backendauth, secret, wait_until
from sim import mutating_calls
from specs import AMAZON_SECRET, APPLE_KEY, FACEBOOK_SECRET, GOOGLE_SECRET, SECRETS, full_spec, minimal_spec

pytestmark = pytest.mark.integration

APP, ENV, RES = "d1a2b3c4d5e6f7", "staging", "shopauth"
ANNOTATION = "amplifybackend.gitops.dev/owner-account-id"
MAP = "backendauth-role-account-map"
A, B = "111111111111", "222222222222"
ROLE = "arn:aws:iam::{}:role/backendauth-operator"


def export(bed: Bed, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backendauth_operator.commands.cli", "export", *args],
        capture_output=True, text=True, env={**bed.operator.env, **(env or {})}, timeout=120,
    )  # fmt: skip


def ready(bed: Bed, name: str, namespace: str = "default") -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = bed.get(name, namespace)
        conditions = (obj.get("status") or {}).get("conditions") or []
        done = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        return obj if done and (obj["status"].get("outputs") or {}).get("userPoolId") else None

    return wait_until(check, 60, f"{namespace}/{name} to be Ready with outputs")


def with_secrets(bed: Bed, namespace: str = "default") -> None:
    for (name, key), value in SECRETS.items():
        manifest = secret(name, {key: value})
        manifest["metadata"]["namespace"] = namespace
        bed.apply(manifest)


def full_auth(bed: Bed, name: str = "shop-auth", namespace: str = "default") -> dict[str, Any]:
    with_secrets(bed, namespace)
    manifest = backendauth(name, full_spec())
    manifest["metadata"]["namespace"] = namespace
    bed.apply(manifest)
    return ready(bed, name, namespace)


def native_client_secret(bed: Bed, outputs: dict[str, str], account_env: dict[str, str] | None = None) -> str:
    """The native client's secret as Cognito (the simulator) has it: what must never come out."""
    client = boto3.client(
        "cognito-idp", region_name="eu-west-1", endpoint_url=bed.sim.url,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    answer = client.describe_user_pool_client(
        UserPoolId=outputs["userPoolId"], ClientId=outputs["appClientId"]
    )
    value: str = answer["UserPoolClient"]["ClientSecret"]
    assert value
    return value


def docs_of(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def assert_no_secret(texts: list[str], extra: tuple[str, ...] = ()) -> None:
    for text in texts:
        for value in (GOOGLE_SECRET, APPLE_KEY, FACEBOOK_SECRET, AMAZON_SECRET, "MIGTAgEAtestkey", *extra):
            assert value not in text


def test_export_of_a_full_auth_resource_to_every_target_reads_only_and_prints_no_secret(bed: Bed) -> None:
    obj = full_auth(bed)
    outputs = obj["status"]["outputs"]
    native_secret = native_client_secret(bed, outputs)
    before = mutating_calls(bed)
    select = ("--app", APP, "--env", ENV, "--resource", RES)

    crossplane = export(bed, "--to", "crossplane", *select)
    managed = export(bed, "--to", "crossplane", "--manage", "--secret-namespace", "auth", *select)
    ack = export(bed, "--to", "ack", "--namespace", "shop", *select)
    gen2 = export(bed, "--to", "gen2", *select)
    for result in (crossplane, managed, ack, gen2):
        assert result.returncode == 0, result.stderr

    assert mutating_calls(bed) == before  # no call that changes anything, of any kind
    assert_no_secret(
        [r.stdout + r.stderr for r in (crossplane, managed, ack, gen2)] + [bed.operator.log], (native_secret,)
    )

    docs = docs_of(crossplane.stdout)
    names = {(d["kind"], d["metadata"]["annotations"]["crossplane.io/external-name"]) for d in docs}
    pool = outputs["userPoolId"]
    assert pool.startswith("eu-west-1_")
    assert {
        ("UserPool", pool),
        ("UserPoolClient", outputs["appClientIdWeb"]),
        ("UserPoolClient", outputs["appClientId"]),
        ("UserPoolDomain", "shop-auth"),
        ("Pool", outputs["identityPoolId"]),
        ("PoolRolesAttachment", outputs["identityPoolId"]),
    } <= names
    providers = sorted(n for k, n in names if k == "IdentityProvider")
    assert providers == sorted(
        f"{pool}:{p}" for p in ("Facebook", "Google", "LoginWithAmazon", "SignInWithApple")
    )
    assert all(d["spec"]["managementPolicies"] == ["Observe"] for d in docs)

    managed_docs = docs_of(managed.stdout)
    user_pool = next(d for d in managed_docs if d["kind"] == "UserPool")["spec"]["forProvider"]
    assert user_pool["name"] == "shopusers" and user_pool["passwordPolicy"]["minimumLength"] == 12
    assert user_pool["softwareTokenMfaConfiguration"] == {"enabled": True}
    web = next(
        d for d in managed_docs
        if d["kind"] == "UserPoolClient" and d["metadata"]["annotations"]["crossplane.io/external-name"]
        == outputs["appClientIdWeb"]
    )  # fmt: skip
    assert web["spec"]["forProvider"]["callbackUrls"] == [
        "https://shop.example.com/callback",
        "myapp://callback",
    ]
    native = next(d for d in managed_docs if d["spec"].get("writeConnectionSecretToRef"))
    assert native["metadata"]["annotations"]["crossplane.io/external-name"] == outputs["appClientId"]
    assert native["spec"]["writeConnectionSecretToRef"]["namespace"] == "auth"
    assert all(
        d["spec"]["managementPolicies"] == ["Observe"]
        for d in managed_docs
        if d["kind"] == "IdentityProvider"
    )
    assert "stays Observe even with --manage" in managed.stdout

    (pool_doc,) = docs_of(ack.stdout)
    assert json.loads(pool_doc["metadata"]["annotations"]["services.k8s.aws/adoption-fields"]) == {"id": pool}
    assert pool_doc["metadata"]["namespace"] == "shop"
    assert f"the identity pool {outputs['identityPoolId']} and its roles" in ack.stdout

    assert f'userPoolId: "{pool}"' in gen2.stdout
    assert f'userPoolClientId: "{outputs["appClientIdWeb"]}"' in gen2.stdout
    assert f'identityPoolId: "{outputs["identityPoolId"]}"' in gen2.stdout
    assert 'authRoleArn: "arn:aws:iam::' in gen2.stdout and 'unauthRoleArn: "arn:aws:iam::' in gen2.stdout


def test_gen2_of_a_user_pool_only_resource_says_why_and_fails(bed: Bed, tmp_path: Path) -> None:
    bed.apply(backendauth("pool-only", minimal_spec()))
    ready(bed, "pool-only")
    result = export(bed, "--to", "gen2", "--app", APP, "--env", ENV, "--resource", RES)
    assert result.returncode == 1 and result.stdout == ""
    assert "needs an identity pool" in result.stderr and "amplify-backend#2252" in result.stderr
    assert result.stderr.count("\n") == 1
    # The other targets take it; --output-dir writes one file per auth resource.
    out = tmp_path / "out"
    for target in ("backendauth", "crossplane", "ack"):
        written = export(bed, "--to", target, "--app", APP, "--env", ENV, "--output-dir", str(out / target))
        assert written.returncode == 0, written.stderr
        (path,) = (out / target).rglob("*.yaml")
        assert path.relative_to(out / target).as_posix() == "default/shopauth.yaml"
        kinds = [d["kind"] for d in docs_of(path.read_text())]
        assert kinds == {"backendauth": ["BackendAuth"], "crossplane": ["UserPool", "UserPoolClient",
                         "UserPoolClient"], "ack": ["UserPool"]}[target]  # fmt: skip


def test_an_access_denied_cognito_read_names_the_action_and_the_credentials(bed: Bed) -> None:
    bed.apply(backendauth("pool-only", minimal_spec()))
    ready(bed, "pool-only")
    bed.fault("access_denied", operation="DescribeUserPool")
    result = export(bed, "--to", "crossplane", "--app", APP, "--env", ENV)
    assert result.returncode == 1 and result.stdout == ""
    assert (
        "AccessDenied: cognito-idp:DescribeUserPool refused for the operator's own credentials"
        in result.stderr
    )
    assert "Traceback" not in result.stderr


def namespace(name: str, account: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "annotations": {ANNOTATION: account}},
    }


def account_map(data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": MAP, "namespace": "default"},
        "data": data,
    }


def test_from_cluster_exports_each_backendauth_from_the_account_its_namespace_maps_to(
    make_bed: Callable[..., Bed], tmp_path: Path
) -> None:
    bed = make_bed()
    bed.apply(
        namespace("team-a", A), namespace("team-b", B), account_map({A: ROLE.format(A), B: ROLE.format(B)})
    )
    outputs = {}
    for ns in ("team-a", "team-b"):
        with_secrets(bed, ns)
        manifest = backendauth("shop-auth", full_spec())
        manifest["metadata"]["namespace"] = ns
        bed.apply(manifest)
    for ns in ("team-a", "team-b"):
        outputs[ns] = ready(bed, "shop-auth", ns)["status"]["outputs"]
    assert outputs["team-a"]["userPoolId"] != outputs["team-b"]["userPoolId"]  # one pool in each account
    before = mutating_calls(bed)

    out = tmp_path / "handoff"
    result = export(bed, "--to", "crossplane", "--from-cluster", "--output-dir", str(out))
    assert result.returncode == 0, result.stderr
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.yaml"))
    assert files == ["team-a/shop-auth.yaml", "team-b/shop-auth.yaml"]
    for ns, account in (("team-a", A), ("team-b", B)):
        text = (out / ns / "shop-auth.yaml").read_text()
        pools = [d for d in docs_of(text) if d["kind"] == "UserPool"]
        assert [d["metadata"]["annotations"]["crossplane.io/external-name"] for d in pools] == [
            outputs[ns]["userPoolId"]
        ]
        assert pools[0]["metadata"]["name"] == f"{ns}-shop-auth-user-pool"
        assert f"AWS account {account}, region eu-west-1" in text
        assert f"BackendAuth {ns}/shop-auth" in text

    one = export(bed, "--to", "ack", "--from-namespace", "team-b")
    assert one.returncode == 0, one.stderr
    (doc,) = docs_of(one.stdout)
    assert doc["metadata"]["namespace"] == "team-b"
    assert json.loads(doc["metadata"]["annotations"]["services.k8s.aws/adoption-fields"]) == {
        "id": outputs["team-b"]["userPoolId"]
    }

    gen2_dir = tmp_path / "gen2"
    gen2 = export(bed, "--to", "gen2", "--from-cluster", "--output-dir", str(gen2_dir))
    assert gen2.returncode == 0, gen2.stderr
    for ns in ("team-a", "team-b"):
        ts = (gen2_dir / ns / "shop-auth" / "amplify" / "auth" / "resource.ts").read_text()
        assert f'userPoolId: "{outputs[ns]["userPoolId"]}"' in ts
    two = export(bed, "--to", "gen2", "--from-cluster")
    assert two.returncode == 1 and "--to gen2 on stdout takes one auth resource, found 2" in two.stderr

    assert mutating_calls(bed) == before
    assert_no_secret([result.stderr, one.stdout, gen2.stderr, bed.operator.log])
    assert_no_secret([p.read_text() for p in out.rglob("*.yaml")])


def test_from_cluster_names_a_namespace_whose_account_has_no_role_and_exports_the_rest(
    make_bed: Callable[..., Bed],
) -> None:
    bed = make_bed()
    bed.apply(namespace("team-a", A), account_map({A: ROLE.format(A)}))
    manifest = backendauth("shop-auth", minimal_spec())
    manifest["metadata"]["namespace"] = "team-a"
    bed.apply(manifest)
    ready(bed, "shop-auth", "team-a")
    bed.apply(namespace("team-c", "333333333333"))
    orphan = backendauth("lost", minimal_spec())
    orphan["metadata"]["namespace"] = "team-c"
    bed.apply(orphan)

    result = export(bed, "--to", "crossplane", "--from-cluster")
    assert result.returncode == 1
    assert [d["metadata"]["name"] for d in docs_of(result.stdout) if d["kind"] == "UserPool"] == [
        "team-a-shop-auth-user-pool"
    ]
    (line,) = [line for line in result.stderr.splitlines() if "team-c" in line]
    assert (
        "BackendAuth team-c/lost: Namespace team-c names AWS account 333333333333, which has no role" in line
    )
    assert "Traceback" not in result.stderr

    allowed = export(bed, "--to", "crossplane", "--from-namespace", "team-a")
    assert allowed.returncode == 0, allowed.stderr
    bed.fault("access_denied", operation="DescribeUserPool")
    refused = export(bed, "--to", "crossplane", "--from-namespace", "team-a")
    assert refused.returncode == 1
    assert f"cognito-idp:DescribeUserPool refused for role {ROLE.format(A)}" in refused.stderr


def test_from_cluster_with_a_bad_kubeconfig_says_so_in_one_line(bed: Bed, tmp_path: Path) -> None:
    missing = tmp_path / "nothing" / "kubeconfig"
    result = export(bed, "--to", "crossplane", "--from-cluster", env={"KUBECONFIG": str(missing)})
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "--from-cluster: cannot load the kubeconfig" in result.stderr
