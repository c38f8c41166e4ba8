"""``backendauth-operator dev``: the emulated API with the CRD, the simulator, and the operator.

It serves until SIGINT/SIGTERM, then stops everything within seconds. A port in use is one clear
error line and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import errno
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
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
# The simulator needs a region and any credentials (it checks no signatures).
SIMULATOR_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
}

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


def die_with_parent() -> None:
    """In the child, before exec: on Linux, get SIGTERM when ``dev`` dies, even by SIGKILL, so
    that no operator is left running against an API that is gone."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


async def start_operator(
    kubeconfig_path: str, aws_endpoint_url: str | None, sts_endpoint_url: str | None = None
) -> OperatorHandle:
    """Start ``backendauth-operator run`` against ``kubeconfig_path``; return a function stopping it.

    A separate process, as in a cluster: its log goes to this terminal, and it can be stopped or
    killed without taking the emulated API (and its state) down. ``aws_endpoint_url`` is the
    simulator's URL (or BACKENDAUTH_AWS_ENDPOINT_URL), None for real AWS; ``sts_endpoint_url``
    the simulator's URL when it also answers STS (botocore's ``AWS_ENDPOINT_URL_STS``).
    """
    env = {**SANDBOX_ENV, **os.environ, "KUBECONFIG": kubeconfig_path}
    if aws_endpoint_url is not None:
        env = {**SIMULATOR_ENV, **env, "BACKENDAUTH_AWS_ENDPOINT_URL": aws_endpoint_url}
    if sts_endpoint_url is not None:
        env["AWS_ENDPOINT_URL_STS"] = sts_endpoint_url
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "backendauth_operator.cli", "run", env=env, preexec_fn=die_with_parent
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
    from backendauth_operator.crd import build_crd

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
    kubeconfig: Path,
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
    lines += ["", "Next steps, in another shell:", f"  export KUBECONFIG={kubeconfig}"]
    if not operator:
        if aws_url:
            lines.append(f"  export BACKENDAUTH_AWS_ENDPOINT_URL={aws_url}")
        if accounts_namespace is not None:
            lines.append(f"  export AWS_ENDPOINT_URL_STS={aws_url}")
        lines.append("  backendauth-operator run --verbose        # the operator, against this API")
    lines += [
        "  kubectl apply -f examples/minimal.yaml",
        "  kubectl get backendauths -w",
    ]
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
        _apply_files(cluster, args.apply)
        if not args.no_operator:
            sts_url = aws_url if simulator is not None else None
            stop_operator = await start_operator(str(kubeconfig), aws_url, sts_url)
        steps = _next_steps(cluster, kubeconfig, aws_url, stop_operator is not None, accounts_namespace)
        print(steps, flush=True)
        await stop.wait()
        print("stopping", flush=True)
    finally:
        if stop_operator is not None:
            with contextlib.suppress(Exception):  # stopping must go on whatever the operator does
                await asyncio.wait_for(stop_operator(), 10)
        if simulator is not None:
            await simulator.stop()
        await cluster.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the sandbox until interrupted; the exit code (2 for start-up problems)."""
    try:
        return asyncio.run(_serve(args))
    except DevError as exc:
        print(f"backendauth-operator dev: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl+C while stopping
        return 130
