"""The ``backendauth-operator`` command: run, dev, simulator, crd, export, plan.

Each sub-command's module is imported only when that sub-command runs. ``dev`` and
``simulator`` come from the test bed, a distribution of its own (``amplify-backendauth-testbed``,
import package ``backendauth_testbed``) that the operator's image does not contain: without it
they say how to install it. Nothing else in the operator imports the test bed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

# The test bed is a member of the project's uv workspace, on no index: `uv sync` in a checkout
# installs it with the development groups (pip: `pip install -e . -e ./testbed`, in one command).
TESTBED_INSTALL = "uv sync, then uv run backendauth-operator {command}"


def _cmd_crd(args: argparse.Namespace) -> int:
    from backendauth_operator.commands.crd import render_crd_yaml

    sys.stdout.write(render_crd_yaml())
    return 0


def _testbed_module(command: str, module: str) -> ModuleType | None:
    """``module`` of the test bed, or None after one line on stderr saying how to install it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        missing = error.name or "backendauth_testbed"
        if missing.split(".")[0] == "backendauth_testbed":
            what = "the test bed (amplify-backendauth-testbed) is not installed"
        else:
            what = f"the test bed needs {missing}, which is not installed"
        print(
            f"backendauth-operator {command}: {what}; in a checkout of the project: "
            + TESTBED_INSTALL.format(command=command),
            file=sys.stderr,
        )
        return None


def _cmd_simulator(args: argparse.Namespace) -> int:
    simulator_cli = _testbed_module("simulator", "backendauth_testbed.simulator.cli")
    if simulator_cli is None:
        return 2
    code: int = simulator_cli.run(args)
    return code


def _cmd_dev(args: argparse.Namespace) -> int:
    dev = _testbed_module("dev", "backendauth_testbed.sandbox.dev")
    if dev is None:
        return 2
    code: int = dev.run(args)
    return code


def _cmd_run(args: argparse.Namespace) -> int:
    from backendauth_operator.runtime import runner

    return runner.run(args)


def _export_usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the export's flags together, naming the flag; None when nothing."""
    to = args.to
    cluster = args.from_cluster or args.from_namespace is not None
    if cluster:
        for flag, value in (("--app", args.app), ("--env", args.env), ("--resource", args.resource)):
            if value:
                return f"{flag} cannot be used with --from-cluster: the cluster's BackendAuths name their app"
        if to == "backendauth":
            return (
                "--from-cluster exports to crossplane, ack or gen2 (--to): the cluster has the BackendAuths"
            )
    elif not (args.app and args.env):
        return "--app and --env are required (or --from-cluster)"
    if args.manage and to != "crossplane":
        return "--manage applies to --to crossplane only"
    for flag, value in (
        ("--secret-namespace", args.secret_namespace),
        ("--provider-config", args.provider_config),
    ):
        if value is not None and to != "crossplane":
            return f"{flag} applies to --to crossplane only"
    if args.from_namespace is not None and not args.from_namespace:
        return "--from-namespace needs a namespace name"
    return None


def _cmd_export(args: argparse.Namespace) -> int:
    from backendauth_operator.config import ConfigError, load_settings

    problem = _export_usage_error(args)
    if problem:
        print(f"backendauth-operator export: {problem}", file=sys.stderr)
        return 1
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"backendauth-operator: {error}", file=sys.stderr)
        return 2
    if args.to == "backendauth":
        return _export_backendauth(args, settings)
    return _export_handoff(args, settings)


def _export_backendauth(args: argparse.Namespace, settings: Any) -> int:
    from backendauth_operator.aws.clients import ClientFactory, classify
    from backendauth_operator.commands import export

    region = args.region or settings.default_region
    if not region:
        print("backendauth-operator export: --region is required (or set AWS_REGION)", file=sys.stderr)
        return 2
    clients = ClientFactory(settings.aws_endpoint_url)
    try:
        docs, notes = export.manifests(clients, region, args.app, args.env, args.resource, args.namespace)
    except Exception as error:
        failure = classify(error)
        print(f"backendauth-operator export: {failure.reason}: {failure.message}", file=sys.stderr)
        return 1
    if not docs:
        print(f"backendauth-operator export: no auth resource in {args.app}/{args.env}", file=sys.stderr)
        return 1
    text = export.render(docs, notes)
    if args.output_dir:
        from pathlib import Path

        folder = Path(args.output_dir) / (args.namespace or "default")
        folder.mkdir(parents=True, exist_ok=True)
        for doc in docs:
            (folder / f"{doc['metadata']['name']}.yaml").write_text(export.render([doc], []))
        return 0
    sys.stdout.write(text)
    return 0


def _export_handoff(args: argparse.Namespace, settings: Any) -> int:
    """``--to crossplane|ack|gen2``: exit 0 when every auth resource was exported, 1 when one
    could not be (each says why in one line on stderr; the others are still written)."""
    from pathlib import Path

    from backendauth_operator.aws.clients import ClientFactory, Pacers, classify
    from backendauth_operator.commands import export
    from backendauth_operator.commands.handoff import CrossplaneOptions

    selection = export.Selection(
        app=args.app, env=args.env, resource=args.resource, region=args.region, namespace=args.namespace,
        from_cluster=args.from_cluster or args.from_namespace is not None, from_namespace=args.from_namespace,
    )  # fmt: skip
    clients = ClientFactory(
        settings.aws_endpoint_url, region=args.region or settings.default_region,
        pacers=Pacers(settings.aws_max_rps),
    )  # fmt: skip
    try:
        if selection.from_cluster:
            found, problems = _found_in_cluster(selection, settings)
        else:
            region = args.region or settings.default_region
            if not region:
                print(
                    "backendauth-operator export: --region is required (or set AWS_REGION)", file=sys.stderr
                )
                return 2
            found, problems = export.from_app(clients, selection, region)
        if args.to == "gen2" and not args.output_dir and len(found) > 1:
            names = ", ".join(f.source.name or f.source.resource for f in found)
            print(
                "backendauth-operator export: --to gen2 on stdout takes one auth resource, found "
                f"{len(found)} ({names}): give --resource or --from-namespace, or --output-dir",
                file=sys.stderr,
            )
            return 1
        options = CrossplaneOptions(
            manage=args.manage,
            secret_namespace=args.secret_namespace or "crossplane-system",
            provider_config=args.provider_config or "default",
        )
        outputs, failed = export.handoff_outputs(clients, args.to, found, args.namespace, options)
    except _ClusterError as error:
        print(f"backendauth-operator export: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        try:
            failure = classify(error)
        except Exception:
            raise error from None
        print(f"backendauth-operator export: {failure.reason}: {failure.message}", file=sys.stderr)
        return 1
    problems += failed
    if args.output_dir:
        try:
            written = export.write_outputs(outputs, Path(args.output_dir))
        except OSError as error:
            print(f"backendauth-operator export: --output-dir {args.output_dir}: {error}", file=sys.stderr)
            return 1
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    else:
        sys.stdout.write("".join(o.text for o in outputs))
    for line in problems:
        print(f"backendauth-operator export: {line}", file=sys.stderr)
    return 1 if problems else 0


class _ClusterError(Exception):
    """The cluster cannot be read: one line naming what."""


def _found_in_cluster(selection: Any, settings: Any) -> tuple[list[Any], list[str]]:
    from kubernetes.client.exceptions import ApiException

    from backendauth_operator.commands import export
    from backendauth_operator.kube.accounts import AccountDirectory
    from backendauth_operator.kube.client import KubeClient
    from backendauth_operator.runtime.runner import lease_namespace

    try:
        kube = KubeClient.from_environment()
    except Exception as error:
        raise _ClusterError(f"--from-cluster: cannot load the kubeconfig: {error}") from None
    directory = AccountDirectory(kube, lease_namespace(settings), settings.account_map)
    try:
        return export.from_cluster(kube, directory, selection, settings.default_region)
    except ApiException as error:
        where = f"namespace {selection.from_namespace}" if selection.from_namespace else "the cluster"
        raise _ClusterError(
            f"--from-cluster: cannot list the BackendAuths of {where}: {error.status} {error.reason}"
        ) from None
    except OSError as error:
        raise _ClusterError(f"--from-cluster: cannot reach the API server: {error}") from None


def _cmd_plan(args: argparse.Namespace) -> int:
    from backendauth_operator.commands import plan
    from backendauth_operator.config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"backendauth-operator: {error}", file=sys.stderr)
        return 1
    return plan.run(args.filename, args.namespace, args.output, settings)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="backendauth-operator",
        description="Manage AWS Amplify backend authentication (BackendAuth) from Kubernetes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_crd = sub.add_parser("crd", help="print the CRD generated from the models")
    p_crd.set_defaults(func=_cmd_crd)

    p_export = sub.add_parser(
        "export",
        help="print auth resources AWS has: as BackendAuth manifests (adoptionPolicy: AdoptOrCreate), or "
        "handed over to Crossplane, ACK or Amplify Gen 2 (--to)",
        epilog="With --to crossplane, ack or gen2 every value comes from read-only Cognito calls; no "
        "secret is ever printed. Exit 0: every auth resource was exported; 1: bad flags, or an auth "
        "resource could not be exported (one line each on stderr; the others are still written). "
        "--to gen2 of a USER_POOL_ONLY resource writes nothing for it and says why: Gen 2's "
        "referenceAuth needs an identity pool and both of its roles.",
    )
    p_export.add_argument(
        "--to", choices=("backendauth", "crossplane", "ack", "gen2"), default="backendauth",
        help="what to emit: BackendAuth manifests (default); Crossplane managed resources (Upbound AWS "
        "provider); ACK's UserPool; Gen 2's amplify/auth/resource.ts (referenceAuth)",
    )  # fmt: skip
    p_export.add_argument("--app", help="the Amplify app id (not with --from-cluster)")
    p_export.add_argument("--env", help="the backend environment name (not with --from-cluster)")
    p_export.add_argument("--resource", help="one auth resource (default: every one in the environment)")
    p_export.add_argument("--namespace", help="metadata.namespace of the manifests")
    p_export.add_argument(
        "--region", help="AWS region (default: AWS_REGION; with --from-cluster: spec.region first)"
    )
    p_export.add_argument(
        "--from-cluster", action="store_true",
        help="every BackendAuth the current kubeconfig sees, each read in the AWS account its namespace "
        "maps to",
    )  # fmt: skip
    p_export.add_argument(
        "--from-namespace", metavar="NS", help="with --from-cluster (implied): only the BackendAuths of NS"
    )
    p_export.add_argument(
        "--output-dir", metavar="DIR",
        help="one file per auth resource: DIR/<namespace>/<name>.yaml (gen2: "
        "DIR/<namespace>/<name>/amplify/auth/resource.ts) instead of stdout",
    )  # fmt: skip
    p_export.add_argument(
        "--manage", action="store_true",
        help='crossplane: managementPolicies ["Observe", "Update"] with the whole configuration in '
        'spec.forProvider (default: ["Observe"]); IdentityProviders stay Observe',
    )  # fmt: skip
    p_export.add_argument(
        "--secret-namespace", metavar="NS",
        help="crossplane: the namespace of the connection Secrets the provider writes "
        "(default crossplane-system)",
    )  # fmt: skip
    p_export.add_argument(
        "--provider-config", metavar="NAME",
        help="crossplane: the ProviderConfig of the managed resources (default: default); {account} is "
        "replaced by the AWS account id, e.g. aws-{account}",
    )  # fmt: skip
    p_export.set_defaults(func=_cmd_export)

    p_plan = sub.add_parser(
        "plan",
        help="print what the operator would do for BackendAuth manifests (read-only AWS calls); "
        "exit 0: nothing to change, 2: changes, 1: an error",
    )
    p_plan.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="FILE",
        help="a manifest file, - for stdin",
    )
    p_plan.add_argument("-n", "--namespace", default="default", help="namespace of manifests that name none")
    p_plan.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")
    p_plan.set_defaults(func=_cmd_plan)

    p_run = sub.add_parser("run", help="run the operator against the current kubeconfig or in-cluster")
    p_run.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        metavar="NS",
        help="watch only this namespace (repeatable); all namespaces if omitted",
    )
    p_run.add_argument(
        "--liveness",
        metavar="URL",
        default=None,
        help="serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz",
    )
    p_run.add_argument("--verbose", "-v", action="store_true", help="log more")
    p_run.set_defaults(func=_cmd_run)

    p_sim = sub.add_parser("simulator", help="run the AmplifyBackend simulator alone")
    _add_simulator_arguments(p_sim)
    p_sim.set_defaults(func=_cmd_simulator)

    p_dev = sub.add_parser("dev", help="the local sandbox: emulated Kubernetes API, simulator, operator")
    p_dev.add_argument("--port", type=int, default=8001, help="port of the emulated Kubernetes API")
    p_dev.add_argument("--kubeconfig", default=".dev/kubeconfig", help="where to write the kubeconfig")
    p_dev.add_argument(
        "--env-file",
        default=".dev/env",
        metavar="PATH",
        help="where to write what another shell sources to use the sandbox (kubectl, plan, export)",
    )
    p_dev.add_argument(
        "--apply",
        action="append",
        default=[],
        metavar="FILE",
        help="apply this manifest once the API is up (repeatable)",
    )
    p_dev.add_argument(
        "--no-operator",
        action="store_true",
        help="serve the API (and simulator) only; run the operator separately",
    )
    p_dev.add_argument(
        "--real-aws", action="store_true", help="talk to real AWS instead of starting the simulator"
    )
    p_dev.add_argument(
        "--simulator-port", type=int, default=0, help="port of the simulator (default: a free port)"
    )
    _add_behaviour_arguments(p_dev)
    p_dev.set_defaults(func=_cmd_dev)
    return parser


def _number(kind: type[float] | type[int], low: float, high: float, wanted: str) -> Callable[[str], float]:
    """An argparse type: ``kind`` within [low, high] (nan refused), else one line saying what is wanted."""

    def parse(value: str) -> float:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not a {'whole ' if kind is int else ''}number: {value!r}"
            ) from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{wanted}, got {value}")
        return number

    return parse


_rate = _number(float, 0.0, 1.0, "a rate must be between 0 and 1")
_seconds = _number(float, 0.0, 1e12, "must be a finite number of seconds, 0 or more")
_per_second = _number(float, 0.0, 1e12, "must be a finite number of calls per second, 0 or more")
_milliseconds = _number(int, 0, 10**9, "must not be negative")


def _add_behaviour_arguments(p: argparse.ArgumentParser) -> None:
    """How the simulator behaves: one definition for ``simulator`` and ``dev``."""
    p.add_argument("--job-seconds", type=_seconds, default=3.0, help="how long a simulated job runs")
    p.add_argument("--fail-rate", type=_rate, default=0.0, help="share of jobs that end FAILED, 0..1")
    p.add_argument("--throttle-rate", type=_rate, default=0.0, help="share of calls answered 429, 0..1")
    p.add_argument("--timeout-rate", type=_rate, default=0.0, help="share of calls answered 504, 0..1")
    p.add_argument(
        "--ambiguous-rate",
        type=_rate,
        default=0.0,
        help="share of mutating calls carried out, then answered 504, 0..1",
    )
    p.add_argument("--latency-ms", type=_milliseconds, default=0, help="latency added to every call")
    p.add_argument(
        "--rate-limit",
        type=_per_second,
        default=0.0,
        metavar="RPS",
        help="answer 429 beyond this many calls per second, as AWS's quota does (0: no limit)",
    )


def _add_simulator_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=4566, help="port to listen on")
    p.add_argument(
        "--auto-apps", action="store_true", help="accept any appId/environment, registering it on first use"
    )
    p.add_argument(
        "--app",
        action="append",
        default=[],
        metavar="APPID:ENV",
        help="a known app and environment (repeatable)",
    )
    _add_behaviour_arguments(p)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
