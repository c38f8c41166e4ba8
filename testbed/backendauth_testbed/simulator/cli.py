"""``backendauth-operator simulator``: serve the simulator until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from backendauth_testbed.simulator.server import Simulator
from backendauth_testbed.simulator.state import DEFAULT_BASE_ACCOUNT, SimulatorConfig


def config_from_args(args: argparse.Namespace, auto_apps: bool | None = None) -> SimulatorConfig:
    """Build the configuration from the arguments that ``simulator`` and ``dev`` share;
    ValueError on a bad ``--app``. ``dev`` has no ``--app``: it accepts every app."""
    apps = []
    for item in getattr(args, "app", []):
        app_id, sep, env = item.partition(":")
        if not (sep and app_id and env):
            raise ValueError(f"--app must be APPID:ENV, got {item!r}")
        apps.append((app_id, env))
    config = SimulatorConfig(
        auto_apps=args.auto_apps if auto_apps is None else auto_apps,
        apps=apps,
        job_seconds=args.job_seconds,
        fail_rate=args.fail_rate,
        throttle_rate=args.throttle_rate,
        timeout_rate=args.timeout_rate,
        ambiguous_rate=args.ambiguous_rate,
        latency_ms=args.latency_ms,
        rate_limit=args.rate_limit,
        # Not command-line flags (yet): set at run time through /_sim/config.
        credential_ttl_seconds=getattr(args, "credential_ttl_seconds", 3600.0),
        base_account=getattr(args, "base_account", DEFAULT_BASE_ACCOUNT),
    )
    config.check()
    return config


async def _serve(config: SimulatorConfig, host: str, port: int) -> None:
    sim = Simulator(config)
    await sim.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"AmplifyBackend simulator listening on {sim.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def run(args: argparse.Namespace) -> int:
    """Serve in the foreground: 0 after a clean stop, 2 on bad arguments, 1 if it cannot listen."""
    try:
        config = config_from_args(args)
    except ValueError as err:
        print(f"backendauth-operator simulator: {err}", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(_serve(config, args.host, args.port))
    except OSError as err:  # the port is taken, or the address is not ours
        print(
            f"backendauth-operator simulator: cannot listen on {args.host}:{args.port}: {err}",
            file=sys.stderr,
        )
        return 1
    return 0
