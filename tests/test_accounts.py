# ruff: noqa: E501  (the tables read best one row to a line)
"""The account of a namespace, as tables: the annotation, the account map's entries, and what a
step is told (no processes). Bad input is a clear message naming the namespace or the key,
never an exception."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from backendauth_operator.aws.amplify import AmplifyBackend, Resource
from backendauth_operator.aws.clients import CallCount, ClientFactory, Pacers, pace_key
from backendauth_operator.core.decide import Snapshot
from backendauth_operator.core.failure import Failure
from backendauth_operator.core.role import OWNER_ACCOUNT, Role
from backendauth_operator.kube.accounts import AccountDirectory, AccountMap, parse_account_map, resolve
from backendauth_testbed.simulator import SimulatorConfig, SimulatorThread

WHERE = "backendauth-system/backendauth-role-account-map"
A, B, C = "111111111111", "222222222222", "333333333333"
ROLE_A = f"arn:aws:iam::{A}:role/backendauth-operator"


@pytest.mark.parametrize(
    ("value", "role"),
    [
        (ROLE_A, Role(ROLE_A, A)),
        (f"  {ROLE_A}\n", Role(ROLE_A, A)),
        (f"roleArn: {ROLE_A}", Role(ROLE_A, A)),
        (
            f"roleArn: {ROLE_A}\nexternalId: shared-1234\nsessionName: team-a",
            Role(ROLE_A, A, "shared-1234", "team-a"),
        ),
        (f"arn:aws-us-gov:iam::{A}:role/path/to/r", Role(f"arn:aws-us-gov:iam::{A}:role/path/to/r", A)),
    ],
)
def test_a_map_entry_is_a_role_arn_or_a_mapping(value: str, role: Role) -> None:
    parsed = parse_account_map(WHERE, {A: value})
    assert parsed.roles == {A: role} and not parsed.problems


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("1234", ROLE_A, "the key must be a 12-digit AWS account id"),
        (A, "not-an-arn", "roleArn must be an IAM role ARN"),
        (A, f"arn:aws:iam::{B}:role/x", f"roleArn is a role of account {B}, not of {A}"),
        (A, f"arn:aws:iam::{A}:user/x", "roleArn must be an IAM role ARN"),
        (A, "roleArn: [unclosed", "not a role ARN nor a YAML mapping (line 1)"),
        (A, "- a\n- b", "expected a role ARN or a mapping"),
        (A, f"roleArn: {ROLE_A}\nrole: x", "unknown field(s) role"),
        (A, f"roleArn: {ROLE_A}\nexternalId: 'x'", "externalId must be 2 to 1224 characters"),
        (A, f"roleArn: {ROLE_A}\nsessionName: 'has space'", "sessionName must be 2 to 64 characters"),
        (A, "externalId: abc123", "roleArn must be an IAM role ARN"),
    ],
)
def test_a_bad_entry_names_the_configmap_and_key_and_spares_the_others(
    key: str, value: str, says: str
) -> None:
    parsed = parse_account_map(WHERE, {key: value, B: f"arn:aws:iam::{B}:role/ok"})
    assert set(parsed.roles) == {B}
    message = parsed.problems[key]
    assert message.startswith(f"ConfigMap {WHERE} key {key!r}: ") and says in message, message


def test_an_external_id_is_never_shown() -> None:
    secret = "do-not-show-this-id"
    parsed = parse_account_map(
        WHERE, {A: f"roleArn: {ROLE_A}\nexternalId: {secret}", B: "externalId: bad id !"}
    )
    assert secret not in repr(parsed.roles[A])
    assert "bad id" not in parsed.problems[B]


MAP = parse_account_map(WHERE, {A: ROLE_A, B: "nonsense"})


@pytest.mark.parametrize(
    ("annotation", "account_map", "own", "account", "problem", "says"),
    [
        (None, MAP, "000000000000", "000000000000", None, ""),
        (None, MAP, "", "", None, ""),
        (A, MAP, "000000000000", A, None, ""),
        (f" {A} ", MAP, "", A, None, ""),
        (B, MAP, "", B, "AccountNotMapped", f"ConfigMap {WHERE} key '{B}'"),
        ("333333333333", MAP, "", "333333333333", "AccountNotMapped",
         f"Namespace team-a names AWS account 333333333333, which has no role in ConfigMap {WHERE}; add the key '333333333333'"),
        ("333333333333", AccountMap(WHERE, exists=False), "", "333333333333", "AccountNotMapped", "(it does not exist)"),
        ("12345", MAP, "", "", "BadAnnotation", f"Namespace team-a: annotation {OWNER_ACCOUNT} must be a 12-digit AWS account id, not '12345'"),
        ("", MAP, "", "", "BadAnnotation", "must be a 12-digit AWS account id"),
    ],
)  # fmt: skip
def test_the_namespace_annotation_and_the_map_resolve_to_a_target(
    annotation: str | None, account_map: AccountMap, own: str, account: str, problem: str | None, says: str
) -> None:
    target = resolve("team-a", annotation, account_map, own)
    assert target.account == account
    assert (target.problem[0] if target.problem else None) == problem
    if problem:
        assert says in target.problem[1] and target.role is None  # type: ignore[index]
    elif annotation is not None:
        assert target.role == Role(ROLE_A, A)
    else:
        assert target.role is None and not target.annotated


def test_a_mapped_account_has_a_turn_of_its_own_and_the_own_account_keeps_the_old_key() -> None:
    own = Snapshot(generation=1, now=0, region="eu-west-1", app="app", env="dev")
    assert own.turn == ("eu-west-1", "app", "dev")
    mapped = Snapshot(
        generation=1, now=0, region="eu-west-1", app="app", env="dev", account=A, role=Role(ROLE_A, A)
    )
    assert mapped.turn == (A, "eu-west-1", "app", "dev")


class FakeKube:
    """Answers GETs of namespaces and the one ConfigMap; counts them."""

    def __init__(
        self, namespaces: dict[str, dict[str, str]], config_map: dict[str, Any] | None, status: int = 0
    ) -> None:
        self.namespaces, self.config_map, self.status = namespaces, config_map, status
        self.gets: list[str] = []

    def request(self, method: str, path: str) -> dict[str, Any]:
        self.gets.append(path)
        if self.status:
            raise ApiException(status=self.status, reason="Forbidden")
        if "/configmaps/" in path:
            if self.config_map is None:
                raise ApiException(status=404, reason="Not Found")
            return self.config_map
        name = path.rsplit("/", 1)[1]
        return {"metadata": {"name": name, "annotations": self.namespaces[name]}}


def test_the_directory_reads_through_once_then_follows_the_watches() -> None:
    kube = FakeKube({"team-a": {OWNER_ACCOUNT: A}, "plain": {}}, None)
    directory = AccountDirectory(
        kube, "backendauth-system", "backendauth-role-account-map", lambda: "000000000000"
    )
    assert directory.target("plain").account == "000000000000"
    first = directory.target("team-a")
    assert (
        first.problem is not None
        and first.problem[0] == "AccountNotMapped"
        and "(it does not exist)" in first.problem[1]
    )
    assert directory.target("team-a") == first
    assert len(kube.gets) == 3  # two namespaces, one map: then from memory
    # The map is created: the accounts whose entry changed are reported, and their namespaces.
    changed = directory.map_seen({"data": {A: ROLE_A}})
    assert changed == {A} and directory.namespaces_of(changed) == {"team-a"}
    assert directory.target("team-a").role == Role(ROLE_A, A)
    # The namespace moves to another account: a change of that namespace.
    assert directory.namespace_seen("team-a", {OWNER_ACCOUNT: B}) is True
    assert directory.namespace_seen("team-a", {OWNER_ACCOUNT: B}) is False
    assert directory.target("team-a").problem[0] == "AccountNotMapped"  # type: ignore[index]
    # A namespace first seen by the watch is not a change.
    assert directory.namespace_seen("new", {}) is False
    assert len(kube.gets) == 3


def test_an_unreadable_namespace_or_map_is_retried_not_guessed() -> None:
    directory = AccountDirectory(FakeKube({}, None, status=403), "ops", "map")
    target = directory.target("team-a")
    assert target.unreadable == "cannot read Namespace team-a: 403 Forbidden"
    directory.namespace_seen("team-b", {OWNER_ACCOUNT: A})
    assert directory.target("team-b").unreadable == "cannot read ConfigMap ops/map: 403 Forbidden"


def test_the_pace_is_kept_per_account_and_region() -> None:
    pacers = Pacers(5.0)
    assert pacers.of(pace_key(A, "eu-west-1")) is pacers.of(pace_key(A, "eu-west-1"))
    assert pacers.of(pace_key(A, "eu-west-1")) is not pacers.of(pace_key(B, "eu-west-1"))
    assert pacers.of(pace_key(A, "eu-west-1")) is not pacers.of(pace_key(A, "us-east-1"))
    assert pacers.of(pace_key("", "eu-west-1")).max_rps == 5.0
    assert Pacers(2.5).of(pace_key(A, "eu-west-1")).max_rps == 2.5  # each process sets its own ceiling


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    thread = SimulatorThread(SimulatorConfig(auto_apps=True, job_seconds=0.1))
    thread.start()
    yield thread
    thread.stop()


def test_one_session_per_account_refused_roles_named_and_the_own_account_asked_once(
    sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL_STS", raising=False)  # STS follows the endpoint given
    clients = ClientFactory(sim.url, region="eu-west-1", pacers=Pacers(1000.0))
    assert clients.known_own_account() == ""
    assert clients.own_account() == "000000000000" and clients.own_account() == "000000000000"
    role_a, role_b = Role(ROLE_A, A), Role(f"arn:aws:iam::{B}:role/backendauth-operator", B)
    for role in (role_a, role_a, role_b):
        found = AmplifyBackend(clients, "eu-west-1", role, role.account).resource("app", "dev", "auth")
        assert found == Resource(None)
    assert clients.reading("eu-west-1", role_a) is clients.reading("eu-west-1", role_a)
    assert clients.reading("eu-west-1", role_a) is not clients.reading("eu-west-1", role_b)
    # A counting view (the resync loop's) counts its own calls; it shares the clients, the
    # pacers and the own account with the factory, whose calls it does not count.
    counted = CallCount()
    view = clients.counting(counted)
    assert view.reading("eu-west-1", role_a) is clients.reading("eu-west-1", role_a)
    assert view.pacers is clients.pacers and view.known_own_account() == "000000000000"
    assert AmplifyBackend(view, "eu-west-1", role_a, A).resource("app", "dev", "auth") == Resource(None)
    AmplifyBackend(clients, "eu-west-1", role_a, A).resource("app", "dev", "auth")
    assert counted() == 1
    summary = json.loads(urllib.request.urlopen(f"{sim.url}/_sim/calls", timeout=10).read())
    by_account = summary["byAccount"]
    assert by_account[A]["byOperation"] == {"AssumeRole": 1, "GetBackendAuth": 4}  # one session, shared
    assert by_account[B]["byOperation"] == {"AssumeRole": 1, "GetBackendAuth": 1}
    assert by_account["000000000000"]["byOperation"] == {"GetCallerIdentity": 1}
    # A refused AssumeRole: AccessDenied, naming the role and carrying STS's words; nothing sent.
    denied = f"arn:aws:iam::{C}:role/backendauth-operator"
    request = urllib.request.Request(
        f"{sim.url}/_sim/deny_role", data=json.dumps({"roleArn": denied, "denied": True}).encode(),
        method="POST", headers={"Content-Type": "application/json"},
    )  # fmt: skip
    urllib.request.urlopen(request, timeout=10).read()
    failure = AmplifyBackend(clients, "eu-west-1", Role(denied, C), C).resource("app", "dev", "auth")
    assert isinstance(failure, Failure) and failure.reason == "AccessDenied" and failure.retryable
    assert failure.message.startswith(f"sts:AssumeRole of {denied} refused: ")
    assert "not authorized to perform: sts:AssumeRole" in failure.message
    calls = json.loads(urllib.request.urlopen(f"{sim.url}/_sim/calls", timeout=10).read())["byAccount"]
    assert "GetBackendAuth" not in calls.get(C, {}).get("byOperation", {})
