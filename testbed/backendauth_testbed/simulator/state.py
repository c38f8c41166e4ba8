"""The simulated AmplifyBackend service: apps, auth resources, jobs, faults and the call log.

Everything here is synchronous and runs on the server's event loop, so no locks are needed: a
request is checked and carried out without an ``await`` in between.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import random
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from backendauth_testbed.simulator import cognito, model, sts

logger = logging.getLogger("backendauth_testbed.simulator")

RUNNING, COMPLETED, FAILED = "RUNNING", "COMPLETED", "FAILED"
TERMINAL = frozenset({COMPLETED, FAILED})

#: Injectable faults: HTTP status, error code, message.
FAULTS: dict[str, tuple[int, str, str]] = {
    "throttle": (429, "TooManyRequestsException", "Rate exceeded (simulated)"),
    "timeout": (504, "GatewayTimeoutException", "Endpoint request timed out (simulated)"),
    "ambiguous": (504, "GatewayTimeoutException", "Endpoint request timed out (simulated)"),
    "bad_request": (400, "BadRequestException", "Bad request (simulated)"),
    "access_denied": (403, "AccessDeniedException", "Access denied (simulated)"),
    "not_found": (404, "NotFoundException", "Not found (simulated)"),
    "internal": (500, "InternalServiceException", "Internal service error (simulated)"),
    "pending_job": (400, "ValidationException", "pending"),  # message filled in per call
    # Carried out, then the answer is held back for STALL_SECONDS: a client that dies meanwhile
    # never learns the outcome (the "operator killed after the call" case).
    "stall": (200, "", ""),
}

#: Settings that ``configure`` accepts at runtime, with their types.
RUNTIME_SETTINGS: dict[str, type] = {
    "job_seconds": float,
    "fail_rate": float,
    "throttle_rate": float,
    "timeout_rate": float,
    "ambiguous_rate": float,
    "latency_ms": int,
    "auto_apps": bool,
    "rate_limit": float,
    "credential_ttl_seconds": float,
    "base_account": str,
    "imported_get_backend_auth": str,
}

#: The resource name the simulator gives an auth resource that ImportBackendAuth linked. What
#: name AWS gives it is not documented; the operator must read it from GetBackend.
IMPORTED_RESOURCE_NAME = "importedAuth"

#: What GetBackendAuth answers for an imported resource (unknown at AWS, so both can be tested):
#: ``not_found`` (the default): 404 NotFoundException, as for a missing resource;
#: ``config``: a resourceConfig read back from the linked pools.
IMPORTED_GET_BACKEND_AUTH = ("not_found", "config")

DEFAULT_BASE_ACCOUNT = "000000000000"
#: The identity of credentials the simulator did not issue, in ``base_account``.
BASE_USER = "backendauth-simulator"
EXPIRED_MESSAGE = "The security token included in the request is expired"


@dataclass
class SimulatorConfig:
    """How the simulator behaves; rates are probabilities in 0..1 drawn per call (or per job)."""

    auto_apps: bool = False
    apps: list[tuple[str, str]] = field(default_factory=list)
    job_seconds: float = 3.0
    fail_rate: float = 0.0
    throttle_rate: float = 0.0
    timeout_rate: float = 0.0
    ambiguous_rate: float = 0.0
    latency_ms: int = 0
    rate_limit: float = 0.0  # requests per second over all operations, as AWS's quota; 0 = none
    seed: int | None = None
    # The longest life of credentials that AssumeRole issues (a shorter DurationSeconds wins).
    credential_ttl_seconds: float = 3600.0
    # The account of calls signed with keys the simulator did not issue (the operator's own).
    base_account: str = DEFAULT_BASE_ACCOUNT
    imported_get_backend_auth: str = "not_found"

    def check(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        if self.imported_get_backend_auth not in IMPORTED_GET_BACKEND_AUTH:
            raise ValueError(
                f"imported_get_backend_auth must be one of {', '.join(IMPORTED_GET_BACKEND_AUTH)}"
            )
        if self.credential_ttl_seconds < 1:
            raise ValueError("credential_ttl_seconds must be at least 1")
        if not sts.ACCOUNT_RE.match(self.base_account):
            raise ValueError(f"base_account must be 12 digits, got {self.base_account!r}")
        for name in ("fail_rate", "throttle_rate", "timeout_rate", "ambiguous_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.job_seconds < 0 or self.latency_ms < 0 or self.rate_limit < 0:
            raise ValueError("job_seconds, latency_ms and rate_limit must not be negative")


class ApiError(Exception):
    """An error answer: HTTP status, ``x-amzn-ErrorType`` code, and the JSON body's members."""

    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def service_operations(service: str) -> frozenset[str]:
    """Every operation of a Cognito service's botocore model."""
    return frozenset(cognito.service_model(service).operation_names)


def _pending_message(app: str, env: str) -> str:
    return (
        f"There is already a pending job for the requested appId: {app} and "
        f"backendEnvironmentName: {env}, wait for it to complete before creating a new job."
    )


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Job:
    """A job; its status is computed from the monotonic clock when read, so no timers run."""

    job_id: str
    app_id: str
    env: str
    operation: str
    resource_name: str
    created: float  # monotonic
    created_wall: float
    started: float  # monotonic start of the run clock (moved when a held job is released)
    duration: float
    fails: bool  # decided at creation so that a seeded run is reproducible
    held: bool
    payload: dict[str, Any] | None  # the resourceConfig to apply; never exposed (may hold secrets)
    region: str = cognito.DEFAULT_REGION  # the region the call was signed for
    fail_reason: str | None = None  # why it will fail, when known at the start (an import)
    forced_status: str | None = None
    forced_error: str | None = None
    forced_at: float = 0.0

    def status(self, now: float) -> str:
        """The job status at monotonic time ``now``."""
        if self.forced_status is not None:
            return self.forced_status
        if self.held or now - self.started < self.duration:
            return RUNNING
        return FAILED if self.fails else COMPLETED

    def to_wire(self, now: float) -> dict[str, Any]:
        """The job as the model's ``BackendJobRespObj`` / ``GetBackendJobResponse``."""
        status = self.status(now)
        if self.forced_status is not None:
            error, changed = self.forced_error, self.forced_at
        else:
            error = (
                (self.fail_reason or f"Simulated failure of {self.operation} for {self.resource_name}")
                if status == FAILED
                else None
            )
            changed = self.started + self.duration if status in TERMINAL else self.created
        wire = {
            "appId": self.app_id,
            "backendEnvironmentName": self.env,
            "jobId": self.job_id,
            "operation": self.operation,
            "status": status,
            "createTime": _iso(self.created_wall),
            "updateTime": _iso(self.created_wall + (changed - self.created)),
        }
        if error:
            wire["error"] = error
        return wire


@dataclass
class _QueuedFault:
    operation: str
    fault: str
    remaining: int


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    # Objects merge member by member, anything else (lists included) is replaced: that keeps
    # the members the Update shape cannot carry (userPoolName, signInMethod, ...).
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


@dataclass
class AccountState:
    """The AmplifyBackend state of one AWS account: apps, jobs, resources and the hold flag."""

    apps: set[tuple[str, str]]
    name: str = DEFAULT_BASE_ACCOUNT
    jobs: dict[str, Job] = field(default_factory=dict)
    # The config of each created auth resource, by (app, env, name).
    resources: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    # What each auth resource (created or imported) points at in Cognito, by (app, env, name).
    links: dict[tuple[str, str, str], cognito.Link] = field(default_factory=dict)
    pools: cognito.CognitoState = field(default_factory=cognito.CognitoState)
    held: bool = False
    # Indexes, kept by add_job, set_link and drop_link, so that a call costs the same with
    # thousands of jobs and resources: the jobs not settled yet (in job order), and the jobs
    # and the links' names of each (app, env), in order.
    unsettled: dict[str, Job] = field(default_factory=dict)
    jobs_by_env: dict[tuple[str, str], list[Job]] = field(default_factory=dict)
    links_by_env: dict[tuple[str, str], dict[str, None]] = field(default_factory=dict)

    def add_job(self, job: Job) -> None:
        self.jobs[job.job_id] = job
        self.unsettled[job.job_id] = job
        self.jobs_by_env.setdefault((job.app_id, job.env), []).append(job)

    def jobs_of(self, app: str, env: str) -> list[Job]:
        return self.jobs_by_env.get((app, env), [])

    def set_link(self, key: tuple[str, str, str], link: cognito.Link) -> None:
        self.links[key] = link
        self.links_by_env.setdefault((key[0], key[1]), {})[key[2]] = None

    def drop_link(self, key: tuple[str, str, str]) -> cognito.Link | None:
        self.links_by_env.get((key[0], key[1]), {}).pop(key[2], None)
        return self.links.pop(key, None)

    def links_of(self, app: str, env: str) -> list[tuple[str, cognito.Link]]:
        """The links of (app, env), by resource name, in the order they were made."""
        return [(name, self.links[(app, env, name)]) for name in self.links_by_env.get((app, env), {})]


class Backend:
    """The whole simulated service. ``handle`` answers one AmplifyBackend call, ``sts`` one STS
    call; the rest is test control.

    AmplifyBackend state is kept per account (``accounts``); ``apps``, ``jobs``, ``resources``
    and ``held`` are those of ``base_account``. Faults, throttling, latency and the call log are
    shared; each logged call names its ``account``.
    """

    def __init__(self, config: SimulatorConfig) -> None:
        config.check()
        self.config = config
        self.rng = random.Random(config.seed)
        # Ids come from their own generator, so that they do not change a seeded run's faults.
        self.id_rng = random.Random(None if config.seed is None else f"ids-{config.seed}")
        # Issued credentials outlive ``reset``, as sessions at AWS would.
        self.issued: dict[str, sts.IssuedKey] = {}
        self.reset()

    def reset(self) -> None:
        """Forget every account's jobs and resources, the calls, queued faults and the STS access
        rules; apps go back to the configured ones. Issued credentials stay valid."""
        self.accounts: dict[str, AccountState] = {}
        self.calls: list[dict[str, Any]] = []
        self.faults: list[_QueuedFault] = []
        self.denied_roles: set[str] = set()
        self.external_ids: dict[str, str] = {}
        self._bucket, self._bucket_at = max(1.0, self.config.rate_limit), time.monotonic()

    # ---- accounts -----------------------------------------------------------------------

    def account(self, account: str | None = None) -> AccountState:
        """The state of ``account`` (``base_account`` when None), made on first use with the
        configured apps; ValueError if it is not 12 digits."""
        name = self.config.base_account if account is None else account
        if not isinstance(name, str) or not sts.ACCOUNT_RE.match(name):
            raise ValueError(f"account must be 12 digits, got {name!r}")
        if name not in self.accounts:
            self.accounts[name] = AccountState(apps=set(self.config.apps), name=name)
        return self.accounts[name]

    @property
    def apps(self) -> set[tuple[str, str]]:
        return self.account().apps

    @property
    def jobs(self) -> dict[str, Job]:
        return self.account().jobs

    @property
    def resources(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        return self.account().resources

    @property
    def held(self) -> bool:
        return self.account().held

    def _caller(self, authorization: str | None) -> tuple[str, sts.IssuedKey | None]:
        """The account a request acts in and the issued key it is signed with (None for keys
        the simulator did not issue); ApiError-free: expiry is the caller's to check."""
        key = self.issued.get(sts.access_key_of(authorization) or "")
        return (key.account if key else self.config.base_account), key

    # ---- test control -------------------------------------------------------------------

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change runtime settings (see RUNTIME_SETTINGS); return the resulting settings."""
        for key, value in settings.items():
            kind = RUNTIME_SETTINGS.get(key)
            if kind is None:
                raise ValueError(f"unknown setting {key!r}; known: {', '.join(RUNTIME_SETTINGS)}")
            if kind is str:
                ok = isinstance(value, str)
            elif kind is bool:
                ok = isinstance(value, bool)
            else:
                ok = (
                    isinstance(value, int | float)
                    and not isinstance(value, bool)
                    and (kind is float or float(value).is_integer())
                )
            if not ok:
                raise ValueError(f"{key} must be a {kind.__name__}")
        candidate = dataclasses.replace(
            self.config, **{k: RUNTIME_SETTINGS[k](v) for k, v in settings.items()}
        )
        candidate.check()
        self.config = candidate
        return self.settings()

    def settings(self) -> dict[str, Any]:
        """The runtime settings, plus the base account's hold flag and the seed."""
        out = {k: getattr(self.config, k) for k in RUNTIME_SETTINGS}
        out.update(held=self.held, seed=self.config.seed)
        return out

    def inject_fault(self, operation: str, fault: str, count: int = 1) -> list[dict[str, Any]]:
        """Make the next ``count`` calls of ``operation`` (or ``*``) fail with ``fault``."""
        cognito_ops = cognito.READS["cognito-idp"] | cognito.READS["cognito-identity"]
        if operation != "*" and operation not in model.OPERATIONS and operation not in cognito_ops:
            raise ValueError(f"unknown operation {operation!r}")
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        if fault in ("ambiguous", "stall") and operation not in model.MUTATING and operation != "*":
            raise ValueError(f"the {fault} fault applies to mutating operations only")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive integer")
        self.faults.append(_QueuedFault(operation, fault, count))
        return [dataclasses.asdict(f) for f in self.faults]

    def clear_faults(self) -> list[dict[str, Any]]:
        """Drop every queued fault (rates are left as configured)."""
        self.faults.clear()
        return []

    def register_app(self, app_id: str, env: str, account: str | None = None) -> dict[str, list[str]]:
        """Make an app and environment known in ``account``; return all its known ones as
        ``APPID:ENV``."""
        if not (isinstance(app_id, str) and app_id and isinstance(env, str) and env):
            raise ValueError("appId and backendEnvironmentName must be non-empty strings")
        st = self.account(account)
        st.apps.add((app_id, env))
        return {"apps": sorted(f"{a}:{e}" for a, e in st.apps)}

    def force_job(
        self, job_id: str, status: str, error: str | None = None, account: str | None = None
    ) -> dict[str, Any]:
        """Set a job's status (and error) from now on; KeyError if there is no such job. Job ids
        are unique, so without ``account`` every account is searched."""
        if not isinstance(status, str) or not status or not isinstance(error, str | None):
            raise ValueError("status must be a non-empty string and error a string")
        if account is not None:
            job = self.account(account).jobs[job_id]
        else:
            found = [st.jobs[job_id] for st in self.accounts.values() if job_id in st.jobs]
            if not found:
                raise KeyError(job_id)
            job = found[0]
        job.forced_status, job.forced_error, job.forced_at = status, error, time.monotonic()
        return job.to_wire(time.monotonic())

    def put_resource(
        self,
        app_id: str,
        env: str,
        name: str,
        config: Any,
        account: str | None = None,
        region: Any = None,
    ) -> dict[str, Any]:
        """Create or replace an auth resource behind the operator's back (adoption, drift), with
        its Cognito resources (in ``region``, default us-east-1; a replaced one keeps its region
        and ids); ``config`` None removes it and deletes them."""
        if not all(isinstance(v, str) and v for v in (app_id, env, name)):
            raise ValueError("appId, backendEnvironmentName and resourceName must be non-empty strings")
        if config is not None and not isinstance(config, dict):
            raise ValueError("resourceConfig must be an object or null")
        if region is not None and not (isinstance(region, str) and region):
            raise ValueError("region must be a region name such as eu-west-1")
        st = self.account(account)
        self._settle(st)
        st.apps.add((app_id, env))
        key = (app_id, env, name)
        if config is None:
            st.resources.pop(key, None)
            self._unlink(st, key)
        else:
            st.resources[key] = copy.deepcopy(config)
            self._realise(st, key, region or cognito.DEFAULT_REGION)
        return self.state(account)

    def seed_pools(self, body: dict[str, Any]) -> dict[str, Any]:
        """``/_sim/cognito/seed``: a user pool made outside Amplify (see ``cognito.seed``), in
        ``body["account"]`` (default the base account)."""
        body = dict(body)
        st = self.account(body.pop("account", None))
        return cognito.seed(st.pools, st.name, body, self.id_rng)

    def _realise(self, st: AccountState, key: tuple[str, str, str], region: str) -> None:
        """Make or change the Cognito resources of the created resource ``key`` from its config."""
        app, env, name = key
        old = st.links.get(key)
        if old is not None and old.imported:
            return
        where = cognito.Where(st.name, region, app, env, name)
        st.set_link(key, cognito.realise(st.resources[key], where, st.pools, self.id_rng, old))

    @staticmethod
    def _unlink(st: AccountState, key: tuple[str, str, str]) -> None:
        """Forget ``key``'s link; delete the pools of a created resource (Amplify deletes its
        auth stack, and the pools with it), keep those of an imported one (Amplify does not
        manage an imported resource's lifecycle)."""
        link = st.drop_link(key)
        if link is not None and not link.imported:
            st.pools.delete(link)

    def hold(self, held: bool, account: str | None = None) -> dict[str, Any]:
        """While held, new jobs of ``account`` stay RUNNING; on release their run time starts
        counting."""
        if not isinstance(held, bool):
            raise ValueError("held must be a boolean")
        st = self.account(account)
        if st.held and not held:
            now = time.monotonic()
            for job in st.jobs.values():
                if job.held:
                    job.held, job.started = False, now
        st.held = held
        out = self.settings()
        out["held"] = st.held
        return out

    def deny_role(self, role_arn: Any, denied: bool = True) -> dict[str, Any]:
        """Make AssumeRole of ``role_arn`` fail with AccessDenied (or succeed again). As an
        explicit deny on the role would in IAM, it acts at once: calls signed with credentials
        already issued for the role are refused too, until the role is allowed again."""
        role = self._role_arg(role_arn)
        if not isinstance(denied, bool):
            raise ValueError("denied must be a boolean")
        if denied:
            self.denied_roles.add(role.arn)
        else:
            self.denied_roles.discard(role.arn)
        return self.access_rules()

    def _denied(self, key: sts.IssuedKey | None, action: str) -> str | None:
        """The AccessDenied message of a call of ``action`` signed with ``key`` while its role
        is denied; None when the call may go ahead."""
        if key is None or key.role_arn not in self.denied_roles:
            return None
        role = sts.parse_role_arn(key.role_arn).name
        caller = f"arn:aws:sts::{key.account}:assumed-role/{role}/{key.session_name}"
        return f"User: {caller} is not authorized to perform: {action} with an explicit deny"

    def require_external_id(self, role_arn: Any, external_id: str | None) -> dict[str, Any]:
        """Make AssumeRole of ``role_arn`` fail with AccessDenied unless it carries exactly
        ``external_id``; None lifts the requirement."""
        role = self._role_arg(role_arn)
        if external_id is None:
            self.external_ids.pop(role.arn, None)
        elif isinstance(external_id, str) and sts.EXTERNAL_ID_RE.match(external_id):
            self.external_ids[role.arn] = external_id
        else:
            raise ValueError("externalId must be null or 2 to 1224 of [A-Za-z0-9_+=,.@:/-]")
        return self.access_rules()

    def access_rules(self) -> dict[str, Any]:
        """The roles that are denied and those that require an external id (not shown)."""
        return {"deniedRoles": sorted(self.denied_roles), "externalIdRoles": sorted(self.external_ids)}

    @staticmethod
    def _role_arg(role_arn: Any) -> sts.Role:
        if not isinstance(role_arn, str):
            raise ValueError("roleArn must be a string")
        try:
            return sts.parse_role_arn(role_arn)
        except sts.StsError as err:
            raise ValueError(f"roleArn: {err.message}") from None

    @staticmethod
    def _summarise(calls: list[dict[str, Any]]) -> dict[str, Any]:
        by_op: dict[str, int] = {}
        by_res: dict[str, dict[str, int]] = {}
        for call in calls:
            op = call["operation"]
            by_op[op] = by_op.get(op, 0) + 1
            if call["resourceName"]:
                key = f"{call['appId']}/{call['backendEnvironmentName']}/{call['resourceName']}"
                by_res.setdefault(key, {})
                by_res[key][op] = by_res[key].get(op, 0) + 1
        return {
            "calls": calls,
            "byOperation": by_op,
            "byResource": by_res,
            "mutating": [call for call in calls if call["mutating"]],
        }

    def summary(self, account: str | None = None) -> dict[str, Any]:
        """The call log of ``account`` (the base account when None) with counts per operation,
        per ``app/env/resource`` and the mutating calls, and ``byAccount``: the same for every
        account. The shape is documented in ``backendauth_testbed.simulator``."""
        name = self.config.base_account if account is None else account
        if not isinstance(name, str) or not sts.ACCOUNT_RE.match(name):
            raise ValueError(f"account must be 12 digits, got {name!r}")
        grouped: dict[str, list[dict[str, Any]]] = {}
        for call in self.calls:
            grouped.setdefault(call["account"], []).append(call)
        out = self._summarise(grouped.get(name, []))
        out["byAccount"] = {a: self._summarise(c) for a, c in sorted(grouped.items())}
        return out

    def state(self, account: str | None = None) -> dict[str, Any]:
        """Apps, jobs and resources (secrets redacted) of ``account``, for debugging and tests."""
        st = self.account(account)
        self._settle(st)
        now = time.monotonic()
        shape = model.operation("GetBackendAuth").output_shape
        assert shape is not None
        return {
            "account": self.config.base_account if account is None else account,
            "apps": sorted(f"{a}:{e}" for a, e in st.apps),
            "jobs": [{**j.to_wire(now), "resourceName": j.resource_name} for j in st.jobs.values()],
            "resources": {
                "/".join(k): model.redact(shape.members["ResourceConfig"], v) for k, v in st.resources.items()
            },
            "links": {
                "/".join(k): {**link.output(), "region": link.region, "imported": link.imported}
                for k, link in st.links.items()
            },
            "cognito": st.pools.redacted(),
        }

    # ---- the call log ---------------------------------------------------------------------

    @staticmethod
    def _caller_arn(account: str, key: sts.IssuedKey | None) -> str:
        """The ARN a call is made as: the assumed role of an issued key, else the base user."""
        if key is None:
            return f"arn:aws:iam::{account}:user/{BASE_USER}"
        role = sts.parse_role_arn(key.role_arn).name
        return f"arn:aws:sts::{key.account}:assumed-role/{role}/{key.session_name}"

    def _record(
        self, service: str, op: str, account: str, authorization: str | None, mutating: bool
    ) -> dict[str, Any]:
        """A new call record (appended by the caller once answered); see the module docstring
        of ``backendauth_testbed.simulator`` for its members."""
        return {
            "seq": len(self.calls) + 1,
            "time": time.time(),
            "service": service,
            "operation": op,
            "mutating": mutating,
            "account": account,
            "region": sts.region_of(authorization),
            "appId": None,
            "backendEnvironmentName": None,
            "resourceName": None,
            "resourceId": None,
            "httpStatus": 200,
            "errorCode": None,
            "jobId": None,
            "fault": None,
        }

    # ---- Cognito ------------------------------------------------------------------------

    def cognito_call(
        self, target: str, raw: bytes, authorization: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Answer one Cognito JSON 1.1 call named by its ``X-Amz-Target``: (HTTP status, JSON
        body; an error's has ``__type``). Records and logs it (ids only, never a secret)."""
        prefix, _, op = target.partition(".")
        service = cognito.SERVICES[prefix]
        account, key = self._caller(authorization)
        record = self._record(service, op, account, authorization, not cognito.is_read(service, op))
        body: Any = None
        with contextlib.suppress(ValueError):
            body = json.loads(raw) if raw.strip() else {}
        fields = body if isinstance(body, dict) else {}
        for member in ("IdentityPoolId", "UserPoolId", "Domain"):
            if isinstance(fields.get(member), str):
                record["resourceId"] = fields[member]
                break
        try:
            if op not in service_operations(service):
                raise cognito.CognitoError("UnknownOperationException", f"Unknown operation {op}")
            if key is not None and time.time() >= key.expires:
                raise cognito.CognitoError("ExpiredTokenException", EXPIRED_MESSAGE)
            if (denied := self._denied(key, f"{service}:{op}")) is not None:
                raise cognito.CognitoError("AccessDeniedException", denied)
            fault = self._next_fault(op, quota=False)
            record["fault"] = fault
            if fault is not None:
                raise self._cognito_fault(fault, service, op, self._caller_arn(account, key))
            if record["mutating"]:
                raise cognito.CognitoError(
                    "UnsupportedOperationException",
                    f"The simulator does not carry out {op}: it answers Cognito reads only "
                    "(the call is recorded as mutating)",
                )
            if op not in cognito.READS[service]:
                raise cognito.CognitoError("UnknownOperationException", f"The simulator does not serve {op}")
            if not isinstance(body, dict):
                raise cognito.CognitoError("SerializationException", "The request body must be a JSON object")
            st = self.account(account)
            self._settle(st)
            status, payload = 200, cognito.answer(st.pools, service, op, body, record["region"])
        except cognito.CognitoError as err:
            status, payload = err.status, {"__type": err.code, "message": err.message}
            record["errorCode"] = err.code
        record["httpStatus"] = status
        self.calls.append(record)
        logger.info(
            "%s %s %s -> %s %s%s",
            service,
            op,
            record["resourceId"] or "-",
            status,
            record["errorCode"] or "OK",
            f" account={account}" if account != self.config.base_account else "",
        )
        return status, payload

    @staticmethod
    def _cognito_fault(fault: str, service: str, op: str, caller_arn: str) -> cognito.CognitoError:
        """A queued or drawn fault as Cognito words it."""
        if fault == "throttle":
            return cognito.CognitoError("TooManyRequestsException", "Rate exceeded (simulated)")
        if fault == "access_denied":
            action = f"{service}:{op}"
            return cognito.CognitoError(
                "AccessDeniedException",
                f"User: {caller_arn} is not authorized to perform: {action} (simulated)",
            )
        if fault == "not_found":
            return cognito.CognitoError("ResourceNotFoundException", "Not found (simulated)")
        if fault in ("timeout", "internal"):
            return cognito.CognitoError("InternalErrorException", "Internal error (simulated)", 500)
        status, code, message = FAULTS[fault]
        return cognito.CognitoError(
            code or "InternalErrorException", message or "simulated", max(status, 400)
        )

    # ---- STS ----------------------------------------------------------------------------

    def sts(self, form: dict[str, str], authorization: str | None = None) -> tuple[int, str]:
        """Answer one STS query-protocol call: (HTTP status, XML body). Records and logs it."""
        action = form.get("Action", "")
        account, key = self._caller(authorization)
        record = self._record("sts", action, account, authorization, False)
        try:
            if action not in sts.ACTIONS:
                raise sts.StsError(
                    400,
                    "InvalidAction",
                    f"Could not find operation {action or '(none)'} for version 2011-06-15",
                )
            if key is not None and time.time() >= key.expires:
                raise sts.StsError(403, "ExpiredToken", EXPIRED_MESSAGE)
            caller_arn = self._caller_arn(account, key)
            if action == "GetCallerIdentity":
                user_id = (
                    f"{sts.role_id(key.role_arn)}:{key.session_name}"
                    if key
                    else "AIDA" + hashlib.sha256(account.encode()).hexdigest()[:17].upper()
                )
                body = sts.response_xml(action, {"UserId": user_id, "Account": account, "Arn": caller_arn})
            else:
                body = self._assume_role(form, caller_arn, record)
            status, code = 200, None
        except sts.StsError as err:
            status, code, body = err.status, err.code, sts.error_xml(err)
        record.update(httpStatus=status, errorCode=code)
        self.calls.append(record)
        logger.info(
            "%s %s account=%s -> %s %s",
            action or "-",
            record.get("roleArn", "-"),
            record["account"],
            status,
            code or "OK",
        )
        return status, body

    def _assume_role(self, form: dict[str, str], caller_arn: str, record: dict[str, Any]) -> str:
        problems = []
        role_arn, session = form.get("RoleArn"), form.get("RoleSessionName")
        if role_arn is None:
            problems.append("Value null at 'roleArn' failed to satisfy constraint: Member must not be null")
        if session is None:
            problems.append(
                "Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null"
            )
        elif not sts.SESSION_NAME_RE.match(session):
            problems.append(
                f"Value '{session}' at 'roleSessionName' failed to satisfy constraint: "
                "Member must have length 2..64 and match [\\w+=,.@-]*"
            )
        duration = 3600
        if "DurationSeconds" in form:
            raw = form["DurationSeconds"]
            if not raw.isdigit() or not sts.DURATION_MIN <= int(raw) <= sts.DURATION_MAX:
                problems.append(
                    f"Value '{raw}' at 'durationSeconds' failed to satisfy constraint: "
                    f"Member must be between {sts.DURATION_MIN} and {sts.DURATION_MAX}"
                )
            else:
                duration = int(raw)
        external_id = form.get("ExternalId")
        if external_id is not None and not sts.EXTERNAL_ID_RE.match(external_id):
            problems.append(
                "Value at 'externalId' failed to satisfy constraint: "
                "Member must have length 2..1224 and match [\\w+=,.@:/-]*"
            )
        if problems:
            count = f"{len(problems)} validation error{'s' if len(problems) > 1 else ''} detected: "
            raise sts.StsError(400, "ValidationError", count + "; ".join(problems))
        assert role_arn is not None and session is not None
        role = sts.parse_role_arn(role_arn)
        record.update(account=role.account, roleArn=role.arn)
        required = self.external_ids.get(role.arn)
        if role.arn in self.denied_roles or (required is not None and external_id != required):
            raise sts.StsError(
                403,
                "AccessDenied",
                f"User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: {role.arn}",
            )
        expires = time.time() + min(float(duration), self.config.credential_ttl_seconds)
        access_key = sts.new_access_key_id()
        while access_key in self.issued:
            access_key = sts.new_access_key_id()
        self.issued[access_key] = sts.IssuedKey(access_key, role.account, role.arn, session, expires)
        return sts.response_xml(
            "AssumeRole",
            {
                "Credentials": {
                    "AccessKeyId": access_key,
                    "SecretAccessKey": secrets.token_urlsafe(30),
                    "SessionToken": secrets.token_urlsafe(96),
                    "Expiration": sts.iso(expires),
                },
                "AssumedRoleUser": {
                    "AssumedRoleId": f"{sts.role_id(role.arn)}:{session}",
                    "Arn": f"arn:aws:sts::{role.account}:assumed-role/{role.name}/{session}",
                },
                "PackedPolicySize": "0",
            },
        )

    # ---- the API --------------------------------------------------------------------------

    def handle(
        self, op: str, params: dict[str, str], raw: bytes, authorization: str | None = None
    ) -> tuple[int, str | None, dict[str, Any]]:
        """Answer one API call: (HTTP status, error code or None, JSON body). Records and logs it.

        The call acts in the account of the key in ``authorization`` (its SigV4 header)."""
        body: Any = None  # stays None when the body is not JSON: reported after fault injection
        with contextlib.suppress(ValueError):
            body = json.loads(raw) if raw.strip() else {}
        fields = body if isinstance(body, dict) else {}
        env = params.get("backendEnvironmentName", fields.get("backendEnvironmentName"))
        res = fields.get("resourceName")
        account, key = self._caller(authorization)
        record = self._record("amplifybackend", op, account, authorization, model.changes_something(op))
        record.update(
            appId=params.get("appId"),
            backendEnvironmentName=env if isinstance(env, str) else None,
            resourceName=res if isinstance(res, str) else None,
        )
        try:
            if op not in model.OPERATIONS:
                raise ApiError(404, "UnknownOperationException", f"The simulator does not serve {op}")
            if key is not None and time.time() >= key.expires:
                raise ApiError(403, "ExpiredTokenException", EXPIRED_MESSAGE)
            if (denied := self._denied(key, f"amplifybackend:{op}")) is not None:
                raise ApiError(403, "AccessDeniedException", denied)
            fault = self._next_fault(op)
            record["fault"] = fault
            if fault is not None and fault not in ("ambiguous", "stall"):
                f_status, f_code, message = FAULTS[fault]
                if fault == "pending_job":
                    message = _pending_message(params.get("appId", ""), record["backendEnvironmentName"])
                extra = {"limitType": "simulated"} if f_status == 429 else {}
                raise ApiError(f_status, f_code, message, **extra)
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequestException", "The request body must be a JSON object")
            try:
                result = self._execute(self.account(account), op, params, body, record)
            except ApiError:
                if fault != "ambiguous":
                    raise
            if fault == "ambiguous":
                # Carried out (successfully or not), but the answer is lost on the way back.
                raise ApiError(*FAULTS["timeout"])
            status, code, payload = 200, None, result
        except ApiError as err:
            status, code = err.status, err.code
            payload = {"message": err.message, **err.extra}
        record.update(httpStatus=status, errorCode=code)
        self.calls.append(record)
        logger.info(
            "%s %s/%s/%s -> %s %s%s%s",
            op,
            record["appId"],
            record["backendEnvironmentName"],
            record["resourceName"] or "-",
            status,
            code or "OK",
            f" job={record['jobId']}" if record["jobId"] else "",
            f" account={account}" if account != self.config.base_account else "",
        )
        return status, code, payload

    def _next_fault(self, op: str, quota: bool = True) -> str | None:
        """The fault for this call of ``op``: a queued one, else one drawn at the configured rates
        (``quota`` False: AmplifyBackend's ``rate_limit`` does not apply, as for Cognito)."""
        for queued in self.faults:
            mutating_only = queued.fault in ("ambiguous", "stall")
            if queued.operation in ("*", op) and (not mutating_only or op in model.MUTATING):
                queued.remaining -= 1
                if queued.remaining == 0:
                    self.faults.remove(queued)
                return queued.fault
        cfg = self.config
        if quota and cfg.rate_limit > 0 and not self._take_token(cfg.rate_limit):
            return "throttle"
        if cfg.throttle_rate > 0 and self.rng.random() < cfg.throttle_rate:
            return "throttle"
        if cfg.timeout_rate > 0 and self.rng.random() < cfg.timeout_rate:
            return "timeout"
        if op in model.MUTATING and cfg.ambiguous_rate > 0 and self.rng.random() < cfg.ambiguous_rate:
            return "ambiguous"
        return None

    def _take_token(self, rate: float) -> bool:
        """A token bucket holding at most one second's worth of requests."""
        now = time.monotonic()
        capacity = max(1.0, rate)
        tokens = min(capacity, self._bucket + (now - self._bucket_at) * rate)
        self._bucket_at = now
        if tokens < 1.0:
            self._bucket = tokens
            return False
        self._bucket = tokens - 1.0
        return True

    def _settle(self, st: AccountState) -> None:
        """Apply the effects of jobs that have completed since the last call, in job order."""
        now = time.monotonic()
        for job in list(st.unsettled.values()):
            status = job.status(now)
            if status not in TERMINAL:
                continue
            key = (job.app_id, job.env, job.resource_name)
            if status == COMPLETED:
                if job.operation == "CreateBackendAuth":
                    st.resources[key] = copy.deepcopy(job.payload or {})
                    self._realise(st, key, job.region)
                elif job.operation == "UpdateBackendAuth" and key in st.resources:
                    _merge(st.resources[key], job.payload or {})
                    self._realise(st, key, job.region)
                elif job.operation == "DeleteBackendAuth":
                    st.resources.pop(key, None)
                    self._unlink(st, key)
                elif job.operation == "ImportBackendAuth":
                    self._link_import(st, key, job)
            job.payload = None
            del st.unsettled[job.job_id]

    def _execute(
        self, st: AccountState, op: str, params: dict[str, str], body: dict[str, Any], record: dict[str, Any]
    ) -> dict[str, Any]:
        errors = model.validate_input(op, body)
        if errors:
            raise ApiError(400, "BadRequestException", "; ".join(errors))
        app = params["appId"]
        env = params.get("backendEnvironmentName") or body["backendEnvironmentName"]
        if (app, env) not in st.apps:
            if not self.config.auto_apps:
                raise ApiError(
                    404,
                    "NotFoundException",
                    f"App {app} has no backend environment named {env}",
                    resourceType="BackendEnvironment",
                )
            st.apps.add((app, env))
        self._settle(st)
        now = time.monotonic()
        if op in ("GetBackendJob", "UpdateBackendJob"):
            job = st.jobs.get(params["jobId"])
            if job is None or (job.app_id, job.env) != (app, env):
                raise ApiError(
                    404,
                    "NotFoundException",
                    f"No job {params['jobId']} for appId: {app} and backendEnvironmentName: {env}",
                    resourceType="BackendJob",
                )
            record.update(jobId=job.job_id, resourceName=job.resource_name)
            if op == "UpdateBackendJob":
                if "status" in body:
                    failed = body["status"] == FAILED
                    self.force_job(
                        job.job_id,
                        body["status"],
                        "Set by UpdateBackendJob" if failed else None,
                        record["account"],
                    )
                if "operation" in body:
                    job.operation = body["operation"]
                self._settle(st)
            return job.to_wire(time.monotonic())
        if op == "ListBackendJobs":
            return self._list_jobs(st, app, env, body, now)
        if op == "GetBackend":
            return self._backend(st, app, env)
        name = IMPORTED_RESOURCE_NAME if op == "ImportBackendAuth" else body["resourceName"]
        key = (app, env, name)
        link = st.links.get(key)
        imported = link is not None and link.imported
        if op in model.MUTATING:
            here = st.jobs_of(app, env)
            if any(j.status(now) not in TERMINAL for j in here):
                raise ApiError(400, "ValidationException", _pending_message(app, env))
            if op == "CreateBackendAuth" and (key in st.resources or imported):
                raise ApiError(
                    400,
                    "BadRequestException",
                    f"An auth resource named {name} already exists for appId: {app} "
                    f"and backendEnvironmentName: {env}",
                )
            if op == "ImportBackendAuth":
                linked = sorted(name for name, _ in st.links_of(app, env))
                if linked:
                    raise ApiError(
                        400,
                        "BadRequestException",
                        f"An auth resource ({', '.join(linked)}) already exists for appId: {app} "
                        f"and backendEnvironmentName: {env}; remove it before importing",
                    )
            if op == "UpdateBackendAuth" and imported:
                raise ApiError(
                    400,
                    "BadRequestException",
                    f"The auth resource {name} is imported; Amplify does not update imported resources",
                )
        exists = key in st.resources or imported
        if op == "GetBackendAuth" and imported and self.config.imported_get_backend_auth == "not_found":
            exists = False
        if op not in ("CreateBackendAuth", "ImportBackendAuth") and not exists:
            raise ApiError(
                404,
                "NotFoundException",
                f"No auth resource named {name} for appId: {app} and backendEnvironmentName: {env}",
                resourceType="BackendAuth",
            )
        if op == "GetBackendAuth":
            config = (
                cognito.config_of(st.pools, link)
                if imported and link is not None
                else copy.deepcopy(st.resources[key])
            )
            return {
                "appId": app,
                "backendEnvironmentName": env,
                "resourceName": name,
                "resourceConfig": config,
            }
        job = Job(
            job_id=str(uuid.uuid4()),
            app_id=app,
            env=env,
            operation=op,
            resource_name=name,
            created=now,
            created_wall=time.time(),
            started=now,
            duration=self.config.job_seconds,
            fails=self.config.fail_rate > 0 and self.rng.random() < self.config.fail_rate,
            held=st.held,
            payload=copy.deepcopy(body.get("resourceConfig")),
            region=record["region"] or cognito.DEFAULT_REGION,
        )
        if op == "ImportBackendAuth":
            record["resourceName"] = name
            job.payload = {
                k: body[k]
                for k in ("userPoolId", "webClientId", "nativeClientId", "identityPoolId")
                if k in body
            }
            # The job fails when the pools cannot be linked as given (Amplify's import checks).
            job.fail_reason = cognito.import_problem(st.pools, job.region, job.payload)
            job.fails = job.fails or job.fail_reason is not None
        st.add_job(job)
        record["jobId"] = job.job_id
        self._settle(st)  # a zero-second job takes effect at once
        wire = job.to_wire(now)
        keys = ("appId", "backendEnvironmentName", "jobId", "operation", "status", "error")
        return {k: wire[k] for k in keys if k in wire}

    def _link_import(self, st: AccountState, key: tuple[str, str, str], job: Job) -> None:
        """A completed ImportBackendAuth: link the pools (checked when the job started)."""
        ids = job.payload or {}
        if cognito.import_problem(st.pools, job.region, ids) is None:
            st.set_link(
                key,
                cognito.Link(
                    region=job.region,
                    user_pool_id=ids["userPoolId"],
                    web_client_id=ids["webClientId"],
                    native_client_id=ids["nativeClientId"],
                    identity_pool_id=ids.get("identityPoolId") or None,
                    imported=True,
                ),
            )

    def _backend(self, st: AccountState, app: str, env: str) -> dict[str, Any]:
        """GetBackend: the environment's amplify-meta, with an ``auth`` entry per auth resource
        (``serviceType`` ``managed`` or ``imported``) whose ``output`` holds the Cognito ids as
        the Amplify CLI writes them."""
        auth: dict[str, Any] = {}
        for name, link in st.links_of(app, env):
            auth[name] = {
                "service": "Cognito",
                "serviceType": "imported" if link.imported else "managed",
                "providerPlugin": "awscloudformation",
                "output": link.output(),
            }
        meta = {"auth": auth} if auth else {}
        return {
            "appId": app,
            "backendEnvironmentName": env,
            "appName": app,
            "amplifyMetaConfig": json.dumps(meta),
        }

    def _list_jobs(
        self, st: AccountState, app: str, env: str, body: dict[str, Any], now: float
    ) -> dict[str, Any]:
        jobs = [j.to_wire(now) for j in reversed(st.jobs_of(app, env))]
        for member in ("jobId", "operation", "status"):
            if member in body:
                jobs = [j for j in jobs if j[member] == body[member]]
        token = body.get("nextToken", "0")
        if not token.isdigit():
            raise ApiError(400, "BadRequestException", "nextToken: invalid pagination token")
        start, size = int(token), body.get("maxResults", 25)
        out: dict[str, Any] = {"jobs": jobs[start : start + size]}
        if start + size < len(jobs):
            out["nextToken"] = str(start + size)
        return out
