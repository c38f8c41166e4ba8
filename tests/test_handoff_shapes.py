"""The hand-off export against any answer botocore's shapes allow, not only the simulator's.

For every Cognito read of :mod:`cognito`, answers are generated from botocore's own output
shapes: with only the required members (most Cognito output members are optional), and with
every member filled with shape-valid values (enums from the shape, strings within their length
bounds, lists of up to two items, nested structures). Each set goes through botocore's Stubber
(which validates the answers against the shapes) into :class:`cognito.Cognito`, then through
every renderer. The export must not raise anything but its documented refusal, every Crossplane
and ACK document must fit the providers' CRDs, and no secret put in a secret-bearing member may
come out. Then AWS's error shapes: each refusal names the action and the role, in one line.
No processes.
"""

from __future__ import annotations

import datetime
import os
import random
import re
from collections.abc import Callable, Iterator
from typing import Any

import botocore.session
import pytest
import yaml
from botocore.model import Shape
from botocore.stub import Stubber

from backendauth_operator.aws.clients import ClientFactory
from backendauth_operator.aws.cognito import AuthView, Cognito, PoolIds
from backendauth_operator.commands import handoff
from backendauth_operator.commands.handoff import CrossplaneOptions, Gen2Unsupported, Source
from backendauth_operator.core.failure import Failure
from backendauth_operator.core.role import Role
from test_handoff_tables import CONFIG, check, schema_of, upstream_crds

REGION = "eu-west-1"
ACCOUNT = "111111111111"
POOL = "eu-west-1_AbCdEf123"
WEB, NATIVE = "1webclient23456789abcdefghi", "2nativeclient3456789abcdefg"
IDENTITY = "eu-west-1:00000000-1111-2222-3333-444444444444"
ROLE = Role(f"arn:aws:iam::{ACCOUNT}:role/backendauth-operator", ACCOUNT)
SOURCE = Source("d1a2b3c4d5e6f7", "staging", "shopauth", "shop", "shop-auth")
# What a secret-bearing member holds in these answers: it must never come out.
SECRET = "s3cr3t-V4LUE-never-printed"
SECRET_DETAILS = ("client_secret", "private_key")

IDP_READS = (
    "DescribeUserPool", "GetUserPoolMfaConfig", "DescribeUserPoolClient", "DescribeUserPoolDomain",
    "ListIdentityProviders", "DescribeIdentityProvider",
)  # fmt: skip
IDENTITY_READS = ("DescribeIdentityPool", "GetIdentityPoolRoles")

_session = botocore.session.get_session()
MODELS = {
    "cognito-idp": _session.get_service_model("cognito-idp"),
    "cognito-identity": _session.get_service_model("cognito-identity"),
}


def output_shape(service: str, operation: str) -> Shape:
    shape = MODELS[service].operation_model(operation).output_shape
    assert shape is not None
    return shape


# ---- answers from the shapes ---------------------------------------------------------------------------


_BY_SHAPE: dict[str, Callable[[random.Random], str]] = {
    "UserPoolIdType": lambda rng: POOL,
    "ClientIdType": lambda rng: rng.choice([WEB, NATIVE]),
    "IdentityPoolId": lambda rng: IDENTITY,
    "RoleType": lambda rng: rng.choice(["authenticated", "unauthenticated"]),
    "ClientSecretType": lambda rng: SECRET,
    "DomainType": lambda rng: f"shop-auth-{rng.randrange(100)}",
}


def _candidates(name: str, rng: random.Random) -> list[str]:
    n = rng.randrange(1000)
    lowered = name.lower()
    texts = [f"v{n}", f"Your code is {{####}} ({n})", f"arn:aws:iam::{ACCOUNT}:role/r{n}",
             f"https://app{n}.example.com/callback", f"user{n}@example.com", f"{n}"]  # fmt: skip
    if "arn" in lowered:
        texts.insert(0, texts.pop(2))
    elif "url" in lowered or "uri" in lowered:
        texts.insert(0, texts.pop(3))
    return texts


def _string(shape: Shape, name: str, rng: random.Random) -> str:
    """A string the shape allows: an enum value, else text within its length bounds that fits
    its pattern where Python's ``re`` can read the pattern."""
    enum = shape.metadata.get("enum")
    if enum:
        return str(rng.choice(enum))
    if shape.name in _BY_SHAPE:
        return _BY_SHAPE[shape.name](rng)
    low, high = int(shape.metadata.get("min", 0)), int(shape.metadata.get("max", 2048))
    try:
        pattern: re.Pattern[str] | None = re.compile(shape.metadata.get("pattern") or ".*", re.S)
    except re.error:
        pattern = None
    for text in _candidates(name + shape.name, rng):
        if len(text) < low:
            text += "x" * (low - len(text))
        if len(text) <= high and (pattern is None or pattern.fullmatch(text) or pattern.search(text)):
            return text
    return "x" * max(low, 1)


def generate(shape: Shape, rng: random.Random | None, name: str = "", depth: int = 0) -> Any:
    """A value of ``shape``: only the required members when ``rng`` is None, else every member
    (lists and maps of one or two entries)."""
    kind = shape.type_name
    if kind == "structure":
        members = shape.members
        names = list(members) if rng is not None and depth < 8 else list(shape.required_members)
        return {m: generate(members[m], rng, m, depth + 1) for m in names}
    if kind == "list":
        if rng is None:
            return [generate(shape.member, None, name, depth + 1)] * int(shape.metadata.get("min", 0))
        return [generate(shape.member, rng, name, depth + 1) for _ in range(rng.randint(1, 2))]
    if kind == "map":
        if rng is None:
            return {}
        return {
            generate(shape.key, rng, f"{name}Key", depth + 1): generate(shape.value, rng, name, depth + 1)
            for _ in range(rng.randint(1, 2))
        }
    if kind == "string":
        return _string(shape, name, rng or random.Random(0))
    if kind in ("integer", "long"):
        low = int(shape.metadata.get("min", 0))
        high = int(shape.metadata.get("max", low + 1000))
        return low if rng is None else rng.randint(low, high)
    if kind == "boolean":
        return False if rng is None else rng.choice([True, False])
    if kind == "timestamp":
        return datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    if kind == "double":
        return 0.0
    if kind == "blob":
        return b""
    raise AssertionError(f"no generator for {kind}")


def answer(service: str, operation: str, rng: random.Random | None) -> dict[str, Any]:
    generated: dict[str, Any] = generate(output_shape(service, operation), rng)
    return generated


def full(service: str, operation: str, seed: int) -> dict[str, Any]:
    return answer(service, operation, random.Random(f"{operation}-{seed}"))


def minimal(service: str, operation: str) -> dict[str, Any]:
    return answer(service, operation, None)


# ---- one case: the answers of every read, through the Stubber ------------------------------------------


Answers = dict[str, Any]  # operation → its answer (ListIdentityProviders: a list of pages)


def minimal_answers() -> Answers:
    return {
        **{op: minimal("cognito-idp", op) for op in IDP_READS},
        **{op: minimal("cognito-identity", op) for op in IDENTITY_READS},
        "ListIdentityProviders": [minimal("cognito-idp", "ListIdentityProviders")],
    }


def full_answers(seed: int) -> Answers:
    """Every member filled; the ids the reads ask for are the ids AWS answers with, and each
    identity provider's details hold secrets (client_secret, private_key)."""
    out: Answers = {op: full("cognito-idp", op, seed) for op in IDP_READS}
    out.update({op: full("cognito-identity", op, seed) for op in IDENTITY_READS})
    out["DescribeUserPool"]["UserPool"]["Id"] = POOL
    out["DescribeIdentityPool"]["IdentityPoolId"] = IDENTITY
    pages = [
        full("cognito-idp", "ListIdentityProviders", seed),
        full("cognito-idp", "ListIdentityProviders", seed + 1),
    ]
    pages[0]["NextToken"] = "page-2"
    pages[-1].pop("NextToken", None)
    out["ListIdentityProviders"] = pages
    return out


def _queue(idp: Stubber, identity: Stubber, answers: Answers, prefix: str | None) -> None:
    """Queue the answers in the order :meth:`Cognito.view` asks for them."""
    pool = answers["DescribeUserPool"].get("UserPool") or {}
    idp.add_response("describe_user_pool", answers["DescribeUserPool"], {"UserPoolId": POOL})
    if pool.get("MfaConfiguration") in ("ON", "OPTIONAL", None):
        idp.add_response("get_user_pool_mfa_config", answers["GetUserPoolMfaConfig"], {"UserPoolId": POOL})
    for client_id in (WEB, NATIVE):
        reply = answers["DescribeUserPoolClient"]
        if "UserPoolClient" in reply:
            reply = {"UserPoolClient": {**reply["UserPoolClient"]}}
            if "ClientId" in reply["UserPoolClient"]:
                reply["UserPoolClient"]["ClientId"] = client_id
        idp.add_response("describe_user_pool_client", reply, {"UserPoolId": POOL, "ClientId": client_id})
    identity.add_response(
        "describe_identity_pool", answers["DescribeIdentityPool"], {"IdentityPoolId": IDENTITY}
    )
    identity.add_response(
        "get_identity_pool_roles", answers["GetIdentityPoolRoles"], {"IdentityPoolId": IDENTITY}
    )
    for candidate in dict.fromkeys(d for d in (pool.get("Domain") or prefix, pool.get("CustomDomain")) if d):
        reply = answers["DescribeUserPoolDomain"]
        if reply.get("DomainDescription", {}).get("Domain"):
            reply = {"DomainDescription": {**reply["DomainDescription"], "Domain": candidate}}
        idp.add_response("describe_user_pool_domain", reply, {"Domain": candidate})
    names = []
    for page in answers["ListIdentityProviders"]:
        idp.add_response("list_identity_providers", page, None)
        names += [p["ProviderName"] for p in page["Providers"] if p.get("ProviderName")]
    for name in names:
        reply = answers["DescribeIdentityProvider"]
        described = {**reply["IdentityProvider"]}
        if "ProviderName" in described:
            described["ProviderName"] = name
        if "ProviderDetails" in described:
            described["ProviderDetails"] = {
                **described["ProviderDetails"], "client_id": "123.apps.example.com",
                **{key: SECRET for key in SECRET_DETAILS},
            }  # fmt: skip
        asked = {"UserPoolId": POOL, "ProviderName": name}
        idp.add_response("describe_identity_provider", {"IdentityProvider": described}, asked)


@pytest.fixture(scope="module")
def clients() -> Iterator[ClientFactory]:
    """One client factory for the module (a botocore client costs a second or two to make)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("AWS_", "BACKENDAUTH_")):
                patch.delenv(name)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        yield ClientFactory("http://127.0.0.1:9")


def read(clients: ClientFactory, answers: Answers, prefix: str | None = "shop-auth") -> AuthView | Failure:
    idp = clients.reading(REGION, ROLE, service="cognito-idp")
    identity = clients.reading(REGION, ROLE, service="cognito-identity")
    with Stubber(idp) as s_idp, Stubber(identity) as s_identity:
        _queue(s_idp, s_identity, answers, prefix)
        view = Cognito(clients, REGION, ROLE, ACCOUNT).view(PoolIds(POOL, WEB, NATIVE, IDENTITY), prefix)
        s_idp.assert_no_pending_responses()
        s_identity.assert_no_pending_responses()
    return view


# ---- what every rendering must hold ---------------------------------------------------------------------


def required_parameters(doc: dict[str, Any]) -> list[str]:
    """The CRDs' CEL rules "spec.forProvider.X is a required parameter" (when the policies
    include Create or Update), which a structural check does not see."""
    schema = schema_of(doc["apiVersion"], doc["kind"])
    spec = doc["spec"]
    policies = spec.get("managementPolicies") or ["*"]
    if not {"*", "Create", "Update"} & set(policies):
        return []
    problems = []
    for rule in schema["properties"]["spec"].get("x-kubernetes-validations") or []:
        found = re.fullmatch(r"spec\.forProvider\.(\w+) is a required parameter", rule.get("message", ""))
        if (
            found
            and found[1] not in spec.get("forProvider", {})
            and found[1] not in spec.get("initProvider", {})
        ):
            problems.append(f"{doc['kind']}: {rule['message']}")
    return problems


def render_all(view: AuthView) -> dict[str, str]:
    """Every target's output; a Gen2Unsupported only when the view really lacks what
    referenceAuth needs."""
    out = {
        "crossplane": handoff.crossplane(view, SOURCE, CONFIG),
        "crossplane --manage": handoff.crossplane(view, SOURCE, CONFIG, CrossplaneOptions(manage=True)),
        "ack": handoff.ack(view, SOURCE, CONFIG),
    }
    identity, web = view.pools.identity_pool, view.pools.web_client
    complete = identity is not None and identity.auth_role_arn and identity.unauth_role_arn and web and web.id
    try:
        out["gen2"] = handoff.gen2(view, SOURCE)
        assert complete, "gen2 rendered without what referenceAuth needs"
    except Gen2Unsupported as error:
        assert not complete, f"gen2 refused a complete view: {error}"
        assert "referenceAuth needs" in str(error)
        out["gen2"] = str(error)
    return out


def assert_sound(view: AuthView | Failure) -> dict[str, str]:
    assert not isinstance(view, Failure), view
    assert SECRET not in repr(view)
    outputs = render_all(view)
    for target, text in outputs.items():
        assert SECRET not in text, target
        if target == "gen2":
            continue
        for doc in (d for d in yaml.safe_load_all(text) if d):
            body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
            assert check(body, schema_of(doc["apiVersion"], doc["kind"]), doc["kind"]) == [], target
            assert required_parameters(doc) == [], target
            annotations = doc["metadata"].get("annotations") or {}
            external = annotations.get(handoff.EXTERNAL_NAME) or annotations.get(
                "services.k8s.aws/adoption-fields"
            )
            assert external and external[-1:] != ":" and not external.startswith(":"), (
                target,
                doc["kind"],
                external,
            )
    return outputs


# ---- the tables -------------------------------------------------------------------------------------------


def named(answers: Answers) -> Answers:
    """The answers with only the required members, and the names AWS gives every pool and
    client (which the shapes leave optional)."""
    answers["DescribeUserPool"] = {"UserPool": {"Name": "shopusers"}}
    answers["DescribeUserPoolClient"] = {"UserPoolClient": {"ClientName": "shopauth_app_client"}}
    return answers


def _with(change: Callable[[Answers], None]) -> Callable[[], Answers]:
    def make() -> Answers:
        answers = named(minimal_answers())
        change(answers)
        return answers

    return make


def _set(operation: str, value: Any) -> Callable[[Answers], None]:
    return lambda answers: answers.__setitem__(operation, value)


ROLES = {"authenticated": "arn:aws:iam::111111111111:role/amplify-shop-staging-authRole"}
SOUND: dict[str, Callable[[], Answers]] = {
    "only required members, and the names": _with(lambda answers: None),
    "a user pool without MfaConfiguration": _with(_set("DescribeUserPool", {"UserPool": {"Name": "p"}})),
    "roles without unauthenticated": _with(_set("GetIdentityPoolRoles", {"Roles": ROLES})),
    "role mappings without roles": _with(
        _set("GetIdentityPoolRoles", {"RoleMappings": {"accounts.google.com": {"Type": "Token"}}})
    ),
    "an identity provider with nothing but its listed name": _with(
        _set("ListIdentityProviders", [{"Providers": [{"ProviderName": "Google"}]}])
    ),
    "a domain with only its name": _with(
        _set("DescribeUserPoolDomain", {"DomainDescription": {"Domain": "x"}})
    ),
}


@pytest.mark.parametrize("seed", range(12))
def test_every_member_filled(clients: ClientFactory, seed: int) -> None:
    upstream_crds()
    assert_sound(read(clients, full_answers(seed)))


@pytest.mark.parametrize("case", list(SOUND))
def test_optional_members_left_out(clients: ClientFactory, case: str) -> None:
    upstream_crds()
    view = read(clients, SOUND[case]())
    assert_sound(view)
    assert not isinstance(view, Failure)
    # The ids asked for stand in for those AWS left out: every document names its resource.
    assert view.pools.user_pool.id == POOL
    assert [c.id for c in view.pools.clients] == [WEB, NATIVE]
    assert view.pools.identity_pool is not None and view.pools.identity_pool.id == IDENTITY


def test_no_mfa_configuration_in_the_pool_asks_get_user_pool_mfa_config(clients: ClientFactory) -> None:
    """DescribeUserPool may leave MfaConfiguration out: GetUserPoolMfaConfig has it too, and
    taking OFF instead would turn MFA off on a pool taken over with --manage."""
    answers = named(minimal_answers())
    answers["GetUserPoolMfaConfig"] = {
        "MfaConfiguration": "ON",
        "SoftwareTokenMfaConfiguration": {"Enabled": True},
    }
    view = read(clients, answers)
    assert not isinstance(view, Failure)
    assert (view.pools.user_pool.mfa_configuration, view.pools.user_pool.totp_enabled) == ("ON", True)
    managed = handoff.crossplane(view, SOURCE, CONFIG, CrossplaneOptions(manage=True))
    pool = next(d for d in yaml.safe_load_all(managed) if d and d["kind"] == "UserPool")
    assert pool["spec"]["forProvider"]["mfaConfiguration"] == "ON"
    assert pool["spec"]["forProvider"]["softwareTokenMfaConfiguration"] == {"enabled": True}


@pytest.mark.parametrize(
    ("case", "change", "words"),
    [
        ("nothing optional at all", lambda a: None, "cognito-idp:DescribeUserPool with role {role} answered "
         f"without UserPool.Name for {POOL}"),
        ("a client without its name", _set("DescribeUserPoolClient", {"UserPoolClient": {}}),
         "cognito-idp:DescribeUserPoolClient with role {role} answered without UserPoolClient.ClientName "
         f"for {WEB}"),
    ],
    ids=["nothing optional at all", "a client without its name"],
)  # fmt: skip
def test_an_answer_without_what_a_hand_off_needs_is_refused_in_one_line(
    clients: ClientFactory, case: str, change: Callable[[Answers], None], words: str
) -> None:
    """Without a pool's or a client's name the managed resources cannot be valid (the CRDs
    require ``name``): the export says which answer lacked what, instead of a document."""
    answers = minimal_answers() if case == "nothing optional at all" else named(minimal_answers())
    change(answers)
    idp = clients.reading(REGION, ROLE, service="cognito-idp")
    with Stubber(idp) as s_idp:
        s_idp.add_response("describe_user_pool", answers["DescribeUserPool"], {"UserPoolId": POOL})
        if case != "nothing optional at all":
            s_idp.add_response("get_user_pool_mfa_config", answers["GetUserPoolMfaConfig"], None)
            s_idp.add_response("describe_user_pool_client", answers["DescribeUserPoolClient"], None)
        failure = Cognito(clients, REGION, ROLE, ACCOUNT).view(PoolIds(POOL, WEB, NATIVE, IDENTITY))
    assert isinstance(failure, Failure) and failure.reason == "IncompleteAnswer"
    assert failure.message == words.format(role=ROLE.arn)


def test_secrets_in_every_secret_bearing_member_never_come_out(clients: ClientFactory) -> None:
    answers = full_answers(3)
    assert answers["DescribeUserPoolClient"]["UserPoolClient"]["ClientSecret"] == SECRET
    view = read(clients, answers)
    assert not isinstance(view, Failure)
    assert all(c.has_secret for c in view.pools.clients)
    assert view.providers and all(p.secret_keys == SECRET_DETAILS for p in view.providers)
    outputs = assert_sound(view)
    assert SECRET not in "".join(outputs.values())


@pytest.mark.parametrize("manage", [False, True])
def test_an_identity_pool_without_roles_has_no_roles_attachment(clients: ClientFactory, manage: bool) -> None:
    """GetIdentityPoolRoles may answer without Roles: the provider's PoolRolesAttachment requires
    them (under Update), so there is none, and the Pool's comment says why."""
    view = read(clients, named(minimal_answers()))
    assert not isinstance(view, Failure)
    text = handoff.crossplane(view, SOURCE, CONFIG, CrossplaneOptions(manage=manage))
    kinds = [d["kind"] for d in yaml.safe_load_all(text) if d]
    assert "Pool" in kinds and "PoolRolesAttachment" not in kinds
    assert "GetIdentityPoolRoles shows no roles attached to it" in text
    assert "PoolRolesAttachment" not in handoff.ack(view, SOURCE)


# ---- AWS's error shapes, through botocore's own parser ----------------------------------------------------


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


class Unassumed:
    """The clients of a factory, signed with its own credentials whatever the role (the
    answers below come at the HTTP layer, after signing, so no STS is there to assume it)."""

    def __init__(self, clients: ClientFactory) -> None:
        self.clients = clients

    def reading(self, region: str, role: Role | None = None, service: str = "amplifybackend") -> Any:
        return self.clients.reading(region, None, service=service)

    def call(self, client: Any, method: str, **kwargs: Any) -> dict[str, Any]:
        return self.clients.call(client, method, **kwargs)


def answered_with(
    clients: ClientFactory, service: str, status: int, body: bytes, content_type: str, call: Callable[[], Any]
) -> tuple[Any, int]:
    """``call()`` while every request to ``service`` gets this HTTP answer (what real Cognito, or a
    fake, sends back), parsed by botocore's own parser; and how many requests went out."""
    from botocore.awsrequest import AWSResponse

    client = clients.reading(REGION, None, service=service)
    sent = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        sent.append(request)
        headers = {"Content-Type": content_type, "x-amzn-RequestId": "r-1"}
        return AWSResponse(request.url, status, headers, _Raw(body))

    event = f"before-send.{client.meta.service_model.service_id.hyphenize()}"
    client.meta.events.register_first(event, answer)
    try:
        return call(), len(sent)
    finally:
        client.meta.events.unregister(event, answer)


def _json(type_: str, message: str) -> bytes:
    return f'{{"__type": "{type_}", "message": "{message}"}}'.encode()


JSON = "application/x-amz-json-1.1"
HTML_500 = (
    b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
    b"<h1>Internal Server Error</h1>\n"
    b"<p>The server encountered an internal error and was unable to complete your request.</p>\n"
)
IDP_DENIED = "User: arn:aws:sts::111111111111:assumed-role/x/y is not authorized to perform: {action}".format(
    action="cognito-idp:DescribeUserPool"
)


@pytest.mark.parametrize(
    ("status", "body", "reason", "words"),
    [
        (400, _json("AccessDeniedException", IDP_DENIED), "AccessDenied",
         "cognito-idp:DescribeUserPool refused for role {role}: AccessDeniedException: User: arn:aws:sts"),
        (400, _json("com.amazonaws.cognito.identity.idp.model#NotAuthorizedException", "Not authorized"),
         "AccessDenied", "cognito-idp:DescribeUserPool refused for role {role}: NotAuthorizedException: "),
        (400, _json("com.amazonaws.cognito.identity.idp.model#ResourceNotFoundException",
                    f"User pool {POOL} does not exist."),
         "NotFound", "cognito-idp:DescribeUserPool failed with role {role}: ResourceNotFoundException: "),
        (400, _json("TooManyRequestsException", "Too many requests"), "Throttled",
         "cognito-idp:DescribeUserPool failed with role {role}: TooManyRequestsException: Too many requests"),
        (400, _json("UnknownOperationException", ""), "NotImplemented",
         "cognito-idp:DescribeUserPool is not implemented by http://127.0.0.1:9 (UnknownOperationException"),
        (500, HTML_500, "AWSUnavailable",
         "cognito-idp:DescribeUserPool failed with role {role}: HTTP 500 without an AWS error in the answer "
         "(500 Internal Server Error)"),
    ],
    ids=["AccessDenied", "NotAuthorized", "ResourceNotFound", "TooManyRequests", "UnknownOperation",
         "HTML 500"],
)  # fmt: skip
def test_cognitos_error_shapes_give_one_line_naming_the_action_and_the_role(
    clients: ClientFactory, status: int, body: bytes, reason: str, words: str
) -> None:
    # An account of its own per row: a throttled answer slows its account's pace down.
    cognito = Cognito(Unassumed(clients), REGION, ROLE, f"2222222222{len(words) % 100:02d}")  # type: ignore[arg-type]
    failure, _ = answered_with(clients, "cognito-idp", status, body, JSON, lambda: cognito.user_pool(POOL))
    assert isinstance(failure, Failure), failure
    assert failure.reason == reason
    assert failure.message.startswith(words.format(role=ROLE.arn)), failure.message
    assert "\n" not in failure.message and "<" not in failure.message and "Traceback" not in failure.message


@pytest.mark.parametrize("operation", ["GetIdentityPoolRoles", "GetUserPoolMfaConfig"])
@pytest.mark.parametrize("answer", ["UnknownOperationException", "HTML 500"])
def test_a_fake_without_an_operation_gets_one_line_naming_it(
    clients: ClientFactory, operation: str, answer: str
) -> None:
    """A fake that lacks an operation (moto has no GetIdentityPoolRoles: it answers HTTP 500 with
    an HTML page) stops the export with one line naming that operation."""
    from botocore.awsrequest import AWSResponse

    service = "cognito-identity" if operation == "GetIdentityPoolRoles" else "cognito-idp"
    found = {  # what the fake has
        "DescribeUserPool": b'{"UserPool": {"Name": "shopusers", "MfaConfiguration": "ON"}}',
        "DescribeIdentityPool": (
            f'{{"IdentityPoolId": "{IDENTITY}", "IdentityPoolName": "shopidp", '
            '"AllowUnauthenticatedIdentities": false}'
        ).encode(),
    }
    client = clients.reading(REGION, None, service=service)

    def hook(request: Any, event_name: str, **_: Any) -> AWSResponse:
        name = event_name.rsplit(".", 1)[-1]
        if name in found:
            return AWSResponse(request.url, 200, {"Content-Type": JSON}, _Raw(found[name]))
        if answer == "HTML 500":
            return AWSResponse(request.url, 500, {"Content-Type": "text/html"}, _Raw(HTML_500))
        return AWSResponse(request.url, 400, {"Content-Type": JSON}, _Raw(_json(answer, "")))

    event = f"before-send.{client.meta.service_model.service_id.hyphenize()}"
    client.meta.events.register_first(event, hook)
    try:
        cognito = Cognito(Unassumed(clients), REGION, ROLE, ACCOUNT)  # type: ignore[arg-type]
        failure = (
            cognito.identity_pool(IDENTITY) if service == "cognito-identity" else cognito.user_pool(POOL)
        )
    finally:
        client.meta.events.unregister(event, hook)
    assert isinstance(failure, Failure), failure
    assert failure.message.startswith(f"{service}:{operation} "), failure.message
    assert "\n" not in failure.message and "<" not in failure.message
    if answer == "HTML 500":
        assert failure.message.endswith(
            "HTTP 500 without an AWS error in the answer (500 Internal Server Error)"
        )
        assert ROLE.arn in failure.message
    else:
        assert failure.reason == "NotImplemented"
        assert " is not implemented by http://127.0.0.1:9 (UnknownOperationException" in failure.message
