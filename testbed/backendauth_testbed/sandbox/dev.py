"""``backendauth-operator dev``: the emulated API with the CRD, the simulator, and the operator.

It serves until SIGINT/SIGTERM, then stops everything within seconds. A port in use is one clear
error line and exit code 2.

Once up, it writes ``.dev/env``: what another shell sources so that kubectl, ``plan`` and
``export`` talk to this sandbox (the kubeconfig, the simulator's endpoints, dummy credentials and
a region), never to real AWS. The file names itself in ``BACKENDAUTH_DEV_ENV`` and the
variables it made up in ``BACKENDAUTH_DEV_ENV_VARS``; ``dev`` started from a shell that sourced
it drops those variables first, so it starts a fresh sandbox rather than taking the old
simulator's endpoint for one the user gave.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import errno
import os
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import yaml

from backendauth_testbed.sandbox.cluster import EmulatedCluster
from backendauth_testbed.sandbox.emulator import ApiError

OperatorHandle = Callable[[], Awaitable[None]]  # awaited to stop the operator


class DevError(Exception):
    """A start-up problem reported as one line and exit code 2."""


# Snappy defaults for the sandbox; anything set in the environment wins.
SANDBOX_ENV = {
    "BACKENDAUTH_JOB_POLL_SECONDS": "1",
    "BACKENDAUTH_RETRY_BASE_SECONDS": "1",
    "BACKENDAUTH_RETRY_MAX_SECONDS": "30",
    "BACKENDAUTH_RESYNC_SECONDS": "15",  # drift shows up within seconds, not ten minutes
    "BACKENDAUTH_AWS_MAX_RPS": "20",
    "BACKENDAUTH_LEADER_ELECTION": "false",  # the sandbox runs one operator
}
# An endpoint the user gave needs a region and some credentials; the user's own win.
SIMULATOR_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
}

# .dev/env: the file's path, and the variables it made up (those a fresh start drops).
ENV_MARKER = "BACKENDAUTH_DEV_ENV"
ENV_MARKER_VARS = "BACKENDAUTH_DEV_ENV_VARS"

# Two AWS accounts, mapped as a cluster administrator would: a Namespace per account, annotated
# with its account id, and the operator's ConfigMap naming the role it assumes there. The
# simulator answers the AssumeRole calls and keeps each account's resources apart.
ACCOUNT_ANNOTATION = "amplifybackend.gitops.dev/owner-account-id"
ACCOUNT_MAP = "backendauth-role-account-map"
SANDBOX_ACCOUNTS = {"team-a": "111111111111", "team-b": "222222222222"}


def role_arn(account: str) -> str:
    """The role the sandbox maps for ``account``."""
    return f"arn:aws:iam::{account}:role/backendauth-operator"


def operator_namespace(env: Mapping[str, str] = os.environ) -> str:
    """The namespace the operator reads its ConfigMap from: BACKENDAUTH_LEASE_NAMESPACE (or
    POD_NAMESPACE), else ``default``, as the operator decides outside a Pod."""
    return env.get("BACKENDAUTH_LEASE_NAMESPACE") or env.get("POD_NAMESPACE") or "default"


def account_objects(namespace: str) -> list[dict[str, Any]]:
    """The Namespaces of SANDBOX_ACCOUNTS and the account map in ``namespace``."""
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "annotations": {ACCOUNT_ANNOTATION: account}},
        }
        for name, account in SANDBOX_ACCOUNTS.items()
    ]
    if namespace not in SANDBOX_ACCOUNTS and namespace != "default":
        objects.insert(0, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": ACCOUNT_MAP, "namespace": namespace},
            "data": {account: role_arn(account) for account in SANDBOX_ACCOUNTS.values()},
        }
    )
    return objects


def _apply_accounts(cluster: EmulatedCluster) -> str:
    """Create the sandbox's accounts; return the ConfigMap's namespace."""
    namespace = operator_namespace()
    for obj in account_objects(namespace):
        try:
            cluster.api.apply_object(obj)
        except ApiError as exc:
            raise DevError(f"cannot create {obj['kind']} {obj['metadata']['name']}: {exc.message}") from exc
    return namespace


#: The ConfigMap of the pools ``dev`` seeds "outside Amplify", which examples/import.yaml reads.
EXISTING_POOLS = "existing-pools"


def _seed_existing_pools(cluster: EmulatedCluster, simulator: Any, region: str) -> None:
    """Seed a user pool made outside Amplify (as Terraform or Crossplane would make it: a web
    client without a secret, a native one with, an identity pool listing both), and publish its
    ids in ConfigMap default/existing-pools, as a Crossplane connection Secret or an ACK
    FieldExport would."""
    pools = simulator.backend.seed_pools(
        {"region": region, "userPoolName": "existing", "identityPool": {"name": "existing_identitypool"}}
    )
    data = {
        "userPoolId": pools["userPoolId"],
        "webClientId": pools["clients"]["web"],
        "nativeClientId": pools["clients"]["native"],
        "identityPoolId": pools["identityPoolId"],
    }
    obj = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": EXISTING_POOLS, "namespace": "default"}, "data": data,
    }  # fmt: skip
    try:
        cluster.api.apply_object(obj)
    except ApiError as exc:
        raise DevError(f"cannot create ConfigMap {EXISTING_POOLS}: {exc.message}") from exc


def simulator_env(url: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The AWS settings that send every call of the operator, ``plan`` and ``export`` to the
    simulator at ``url``: its one endpoint for AmplifyBackend, STS and Cognito (which it tells
    apart by the request), dummy keys (the simulator checks no signature and puts calls signed
    with a key it did not issue in its base account) and a region (the user's, if set)."""
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or SIMULATOR_ENV["AWS_REGION"]
    return {
        "BACKENDAUTH_AWS_ENDPOINT_URL": url,
        "AWS_ENDPOINT_URL_STS": url,
        "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": url,
        "AWS_ENDPOINT_URL_COGNITO_IDENTITY": url,
        "AWS_ACCESS_KEY_ID": SIMULATOR_ENV["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": SIMULATOR_ENV["AWS_SECRET_ACCESS_KEY"],
        "AWS_REGION": region,
    }


def drop_sourced_env(environ: MutableMapping[str, str]) -> list[str]:
    """Remove from ``environ`` the variables that a sourced ``.dev/env`` made up (named in
    BACKENDAUTH_DEV_ENV_VARS), and the two markers; return the names removed. Variables the file
    passed on from the user (an endpoint they gave) are not named there, so they stay."""
    if ENV_MARKER not in environ and ENV_MARKER_VARS not in environ:
        return []
    names = [n for n in environ.get(ENV_MARKER_VARS, "").split() if n in environ]
    for name in (*names, ENV_MARKER, ENV_MARKER_VARS):
        environ.pop(name, None)
    return names


def env_file_text(
    path: Path, settings: Mapping[str, str], made_up: list[str], base_account: str | None
) -> str:
    """The content of ``.dev/env``: a comment, then one POSIX ``export`` line per setting,
    values quoted for the shell."""
    lines = [
        "# Written by `backendauth-operator dev` while it runs (removed when it stops, rewritten",
        "# by its next start). In another shell:",
        f"#   source {shlex.quote(_shown(path))}",
        "# then kubectl, `backendauth-operator plan` and `export` use this sandbox.",
    ]
    if base_account is not None:
        lines += [
            "# AWS: the simulator on 127.0.0.1, never real AWS. The keys are dummies: the simulator",
            f"# puts calls signed with them in account {base_account}, as the operator's own.",
        ]
    elif "BACKENDAUTH_AWS_ENDPOINT_URL" in settings:
        lines.append("# AWS: the endpoint you gave dev, with your own credentials and region.")
    else:
        lines.append("# AWS: real AWS, with your own credentials and region (dev --real-aws).")
    lines += [
        f"# {ENV_MARKER} and {ENV_MARKER_VARS} tell dev, started again from a shell",
        "# that sourced this file, to leave these settings aside and start a fresh sandbox.",
    ]
    values = {
        **settings,
        ENV_MARKER: str(path.resolve()),
        ENV_MARKER_VARS: " ".join(made_up),
    }
    lines += [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    return "\n".join(lines) + "\n"


def write_env_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, mode 0600 (dummy keys only, but keys all the same)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(partial, path)


def remove_env_file(path: Path, text: str) -> None:
    """Remove ``path`` if it still holds ``text`` (another sandbox may have written it since)."""
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8") == text:
            path.unlink()


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is under it, else absolute."""
    absolute = path.resolve()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def die_with_parent() -> None:
    """In the child, before exec: on Linux, get SIGTERM when ``dev`` dies, even by SIGKILL, so
    that no operator is left running against an API that is gone."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


async def start_operator(kubeconfig_path: str, aws: Mapping[str, str]) -> OperatorHandle:
    """Start ``backendauth-operator run`` against ``kubeconfig_path``; return a function stopping it.

    A separate process, as in a cluster: its log goes to this terminal, and it can be stopped or
    killed without taking the emulated API (and its state) down. ``aws`` is what it is told about
    AWS on top of this environment: :func:`simulator_env` for the simulator (which wins over
    the user's AWS settings, so that nothing reaches real AWS), an endpoint the user gave
    (with dummy credentials and a region unless the user has their own), or nothing for real AWS.
    """
    env = {**SANDBOX_ENV, **os.environ, "KUBECONFIG": kubeconfig_path}
    if "AWS_ENDPOINT_URL_STS" in aws:  # the simulator: its settings, no session of the user's
        env = {k: v for k, v in env.items() if k not in ("AWS_SESSION_TOKEN", "AWS_PROFILE")}
        env.update(aws)
    elif aws:
        env = {**SIMULATOR_ENV, **env, **aws}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "backendauth_operator.commands.cli", "run", env=env, preexec_fn=die_with_parent
    )

    async def stop() -> None:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 8)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    return stop


def _crds() -> list[dict[str, Any]]:
    from backendauth_operator.commands.crd import build_crd

    return [build_crd()]


def _apply_files(cluster: EmulatedCluster, paths: list[str]) -> None:
    for path in paths:
        try:
            documents = list(yaml.safe_load_all(Path(path).read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as exc:
            raise DevError(f"cannot read --apply {path}: {exc}") from exc
        for document in documents:
            items = (
                document.get("items", [])
                if isinstance(document, dict) and "items" in document
                else [document]
            )
            for item in items:
                if not item:
                    continue
                try:
                    obj = cluster.api.apply_object(item)
                except ApiError as exc:
                    raise DevError(f"cannot apply {path}: {exc.message}") from exc
                print(
                    f"applied {obj['kind']} {obj['metadata'].get('namespace', '-')}/{obj['metadata']['name']}"
                )


def _next_steps(
    cluster: EmulatedCluster,
    env_file: Path,
    aws_url: str | None,
    operator: bool,
    accounts_namespace: str | None = None,
) -> str:
    lines = [f"Emulated Kubernetes API: {cluster.url} (CRD backendauths.amplifybackend.gitops.dev installed)"]
    if aws_url:
        lines.append(f"AmplifyBackend endpoint: {aws_url}")
        lines.append(
            f"  faults at run time: curl -X POST {aws_url}/_sim/config -d '{{\"throttle_rate\": 0.5}}'"
        )
    else:
        lines.append("AmplifyBackend endpoint: real AWS (your credentials and AWS_REGION)")
    if accounts_namespace is not None:
        mapped = ", ".join(f"{ns} -> {account}" for ns, account in SANDBOX_ACCOUNTS.items())
        lines.append(
            f"AWS accounts: namespaces {mapped}, roles in ConfigMap {accounts_namespace}/{ACCOUNT_MAP}; "
            "other namespaces act in 000000000000"
        )
    if operator:
        lines.append("The operator runs here; its log follows.")
    what = "kubectl, plan and export: this sandbox" if accounts_namespace is not None else "kubectl: this API"
    lines += ["", "Next steps, in another shell:", f"  source {shlex.quote(_shown(env_file))}   # {what}"]
    if not operator:
        lines.append("  backendauth-operator run --verbose        # the operator, against this API")
    lines += [
        "  kubectl apply -f examples/minimal.yaml",
        "  kubectl get backendauths -w",
    ]
    if accounts_namespace is not None:
        lines.append(f"  kubectl apply -f examples/import.yaml  # pools of ConfigMap {EXISTING_POOLS}")
    if accounts_namespace is not None:
        lines.append("  kubectl apply -f examples/accounts/two-accounts.yaml  # one resource in two accounts")
    lines += ["", "Press Ctrl+C to stop."]
    return "\n".join(lines)


async def _serve(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    cluster = EmulatedCluster(crds=_crds())
    try:
        await cluster.start(host="127.0.0.1", port=args.port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise DevError(
                f"port {args.port} on 127.0.0.1 is already in use; choose another with --port"
            ) from exc
        raise DevError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}") from exc

    simulator: Any = None
    accounts_namespace: str | None = None
    stop_operator: OperatorHandle | None = None
    env_file, env_text = Path(args.env_file), None
    try:
        kubeconfig = cluster.write_kubeconfig(args.kubeconfig)
        aws_url = os.environ.get("BACKENDAUTH_AWS_ENDPOINT_URL") or None
        if aws_url is None and not args.real_aws:
            from backendauth_testbed.simulator import Simulator
            from backendauth_testbed.simulator.cli import config_from_args

            simulator = Simulator(config_from_args(args, auto_apps=True))
            try:
                await simulator.start(host="127.0.0.1", port=args.simulator_port)
            except OSError as exc:
                simulator = None
                raise DevError(
                    f"cannot start the simulator on port {args.simulator_port}: {exc.strerror or exc}"
                ) from exc
            aws_url = simulator.url
            accounts_namespace = _apply_accounts(cluster)
            _seed_existing_pools(cluster, simulator, simulator_env(aws_url)["AWS_REGION"])
        _apply_files(cluster, args.apply)
        # What the operator, plan and export are told about AWS; with the simulator, all of it
        # is made up here (and dropped by a fresh start from a shell that sourced it).
        if simulator is not None:
            aws = simulator_env(simulator.url)
            made_up = ["KUBECONFIG", *aws]
        else:
            aws = {"BACKENDAUTH_AWS_ENDPOINT_URL": aws_url} if aws_url else {}
            made_up = ["KUBECONFIG"]
        if not args.no_operator:
            stop_operator = await start_operator(str(kubeconfig), aws)
        base_account = simulator.backend.config.base_account if simulator is not None else None
        text = env_file_text(
            env_file, {"KUBECONFIG": str(kubeconfig.resolve()), **aws}, made_up, base_account
        )
        try:
            write_env_file(env_file, text)
        except OSError as exc:
            raise DevError(f"cannot write {env_file}: {exc.strerror or exc}") from exc
        env_text = text
        steps = _next_steps(cluster, env_file, aws_url, stop_operator is not None, accounts_namespace)
        print(steps, flush=True)
        await stop.wait()
        print("stopping", flush=True)
    finally:
        if env_text is not None:
            remove_env_file(env_file, env_text)
        if stop_operator is not None:
            with contextlib.suppress(Exception):  # stopping must go on whatever the operator does
                await asyncio.wait_for(stop_operator(), 10)
        if simulator is not None:
            await simulator.stop()
        await cluster.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the sandbox until interrupted; the exit code (2 for start-up problems)."""
    sourced = os.environ.get(ENV_MARKER)
    dropped = drop_sourced_env(os.environ)
    if dropped:
        print(
            f"A fresh sandbox: ignoring {', '.join(dropped)} as set by {sourced or 'an earlier sandbox'}; "
            f"to use a value of your own, unset {ENV_MARKER} {ENV_MARKER_VARS} first.",
            flush=True,
        )
    try:
        return asyncio.run(_serve(args))
    except DevError as exc:
        print(f"backendauth-operator dev: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl+C while stopping
        return 130
