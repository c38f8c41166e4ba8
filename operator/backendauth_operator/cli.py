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

TESTBED_INSTALL = "pip install -e ./testbed -e '.[dev]'"


def _cmd_crd(args: argparse.Namespace) -> int:
    from backendauth_operator.crd import render_crd_yaml

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
            f"backendauth-operator {command}: {what}; in a checkout of the project: {TESTBED_INSTALL}",
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
    from backendauth_operator import runner

    return runner.run(args)


def _cmd_export(args: argparse.Namespace) -> int:
    from backendauth_operator import export
    from backendauth_operator.aws import ClientFactory, classify
    from backendauth_operator.config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"backendauth-operator: {error}", file=sys.stderr)
        return 2
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
    sys.stdout.write(export.render(docs, notes))
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from backendauth_operator import plan
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
        help="print BackendAuth manifests (adoptionPolicy: AdoptOrCreate) for auth resources AWS has",
    )
    p_export.add_argument("--app", required=True, help="the Amplify app id")
    p_export.add_argument("--env", required=True, help="the backend environment name")
    p_export.add_argument("--resource", help="one auth resource (default: every one in the environment)")
    p_export.add_argument("--namespace", help="metadata.namespace of the manifests")
    p_export.add_argument("--region", help="AWS region (default: AWS_REGION)")
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
