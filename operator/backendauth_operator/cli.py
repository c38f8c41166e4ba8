"""The ``backendauth-operator`` command: run, dev, simulator, crd (CONTRACT §2).

Each sub-command's module is imported only when that sub-command runs, so that ``crd`` and
``run`` do not need the sandbox's extra packages installed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_crd(args: argparse.Namespace) -> int:
    from backendauth_operator.crd import render_crd_yaml

    sys.stdout.write(render_crd_yaml())
    return 0


def _cmd_simulator(args: argparse.Namespace) -> int:
    from backendauth_operator.simulator import cli as simulator_cli

    return simulator_cli.run(args)


def _cmd_dev(args: argparse.Namespace) -> int:
    from backendauth_operator.sandbox import dev

    return dev.run(args)


def _cmd_run(args: argparse.Namespace) -> int:
    from backendauth_operator import runner

    return runner.run(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="backendauth-operator",
        description="Manage AWS Amplify backend authentication (BackendAuth) from Kubernetes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_crd = sub.add_parser("crd", help="print the CRD generated from the models")
    p_crd.set_defaults(func=_cmd_crd)

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
    p_dev.add_argument("--job-seconds", type=float, default=3.0, help="simulated job duration")
    p_dev.add_argument("--fail-rate", type=float, default=0.0, help="simulated job failure rate, 0..1")
    p_dev.add_argument("--throttle-rate", type=float, default=0.0, help="simulated 429 rate, 0..1")
    p_dev.add_argument("--timeout-rate", type=float, default=0.0, help="simulated 504 rate, 0..1")
    p_dev.add_argument(
        "--ambiguous-rate", type=float, default=0.0, help="simulated 'done, then 504' rate, 0..1"
    )
    p_dev.add_argument("--latency-ms", type=int, default=0, help="simulated added latency")
    p_dev.set_defaults(func=_cmd_dev)
    return parser


def _rate(value: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"a rate must be between 0 and 1, got {value}")
    return rate


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
    p.add_argument("--job-seconds", type=float, default=3.0, help="how long a job runs")
    p.add_argument("--fail-rate", type=_rate, default=0.0, help="share of jobs that end FAILED")
    p.add_argument("--throttle-rate", type=_rate, default=0.0, help="share of calls answered 429")
    p.add_argument("--timeout-rate", type=_rate, default=0.0, help="share of calls answered 504")
    p.add_argument(
        "--ambiguous-rate",
        type=_rate,
        default=0.0,
        help="share of mutating calls carried out, then answered 504",
    )
    p.add_argument("--latency-ms", type=int, default=0, help="latency added to every call")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
