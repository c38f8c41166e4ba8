"""``backendauth-operator run``: Kopf, configured once, with the handlers of ``runtime/steps.py``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from collections.abc import Collection, Mapping
from typing import Any

import kopf

from backendauth_operator import GROUP, PREFIX, metrics
from backendauth_operator.aws.clients import CallCount, ClientFactory, Pacers, pace_key
from backendauth_operator.config import ConfigError, Settings, load_settings, operator_identity
from backendauth_operator.kube.accounts import AccountDirectory, map_watch, namespace_watch
from backendauth_operator.kube.client import KubeClient
from backendauth_operator.kube.leases import Leases
from backendauth_operator.runtime import logfilters, reachability
from backendauth_operator.runtime.kopf_adapter import (
    kopf_identity,
    new_indexers,
    run_probe_handlers,
)
from backendauth_operator.runtime.leader import LeaderElector, build_gate
from backendauth_operator.runtime.probes import ProbeServer, Readiness, parse_endpoint, serving
from backendauth_operator.runtime.reachability import ApiServerMonitor, KopfBackoffs, Reachability
from backendauth_operator.runtime.steps import (
    OperatorContext,
    account_map_changed,
    poll,
    register,
    requeue,
    resync,
)
from backendauth_operator.runtime.workqueue import Poller, Resyncer

HANDLER_THREADS = 16

# Where a pod finds its own namespace (the service account's mount).
POD_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class NoDiffBase(kopf.DiffBaseStorage):
    """Kopf's change detection is not used: steps follow ``metadata.generation`` (see
    runtime/steps.py), and deletion is a step of ours too. So no essence is built, stored or
    fetched: every watch event spares a deep copy of its body, and no object gets a
    ``last-handled-configuration`` annotation. Objects that carry one from an earlier version
    keep it; nothing reads it."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return kopf.BodyEssence()  # the same as built: never a change

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


def configure_kopf(
    settings: kopf.OperatorSettings,
    operator_settings: Settings,
    namespaced: bool = False,
    reachable: Reachability | None = None,
) -> None:
    """Kopf's settings for this operator; used by ``run`` and by tests that embed the operator.
    ``reachable``: the process's view of the API server, which keeps Kopf's requests retrying
    while it cannot be reached."""
    # Kopf's handler progress under our own prefix (no handler of ours keeps any).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = NoDiffBase()
    # Our finalizer is the steps' own (see runtime/steps.py). Kopf takes its finalizer off any object
    # that no handler of Kopf's needs it for; so Kopf's is given a name no object carries,
    # and Kopf never touches ours, also on objects that an earlier version had Kopf finalize.
    settings.persistence.finalizer = KOPF_FINALIZER
    settings.posting.loggers = False  # events are posted explicitly, once per reason change
    settings.posting.reporting_component = "backendauth-operator"
    # Every request to the API server has a deadline. A connect (TCP and TLS) that takes longer
    # than a few seconds is not coming: TCP would retry a dropped SYN for two minutes.
    settings.networking.connect_timeout = KOPF_CONNECT_TIMEOUT
    settings.networking.request_timeout = KOPF_REQUEST_TIMEOUT  # lists, patches, events
    settings.networking.error_backoffs = KopfBackoffs(reachable)
    # Watches: a short connect, a long read. A watch that carries nothing, not even the bookmark
    # the API server sends about once a minute (Kopf asks for bookmarks), is stalled: it is
    # dropped and reopened after 70 s (Kopf's default, pinned here).
    settings.watching.connect_timeout = KOPF_CONNECT_TIMEOUT
    settings.watching.inactivity_timeout = 70
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 310
    settings.execution.max_workers = HANDLER_THREADS  # sync steps: each holds a thread per AWS call
    # Watching named namespaces needs no cluster-wide rights: no Namespace listing, no CRD watch
    # (the CRD is found by API discovery at start-up). kopf: _core/reactor/observation.py.
    settings.scanning.disabled = namespaced


KOPF_CONNECT_TIMEOUT = 5.0
KOPF_REQUEST_TIMEOUT = 30.0
KOPF_FINALIZER = f"{GROUP}/kopf-finalizer-unused"  # never on any object: no handler of Kopf's needs one


def lease_namespace(operator_settings: Settings) -> str:
    """Where the per-app/env Leases live: BACKENDAUTH_LEASE_NAMESPACE (or POD_NAMESPACE), else
    the pod's own namespace, else ``default``. Operators that may act on the same app/env must
    share it."""
    if operator_settings.lease_namespace:
        return operator_settings.lease_namespace
    try:
        with open(POD_NAMESPACE_FILE, encoding="utf-8") as file:
            return file.read().strip() or "default"
    except OSError:
        return "default"


def build_context(operator_settings: Settings, identity: str = "") -> OperatorContext:
    """The shared context of every handler call; ``identity`` names this process (turns, the
    leader Lease)."""
    # Steps and Kopf's sync handlers call from at most HANDLER_THREADS threads at once.
    kube = KubeClient.from_environment(max_connections=HANDLER_THREADS)
    # A Lease outlives its holder by at most this long (a holder never keeps one longer than
    # its job may run, plus the retries of a lost answer).
    duration = int(operator_settings.job_timeout_seconds + 10 * operator_settings.retry_max_seconds)
    namespace = lease_namespace(operator_settings)
    gate = build_gate(kube.api_client, operator_settings, namespace, identity)
    poller = Poller(operator_settings.job_poll_seconds, max_in_flight=HANDLER_THREADS - 4)
    poller.acting = gate.acting
    clients = ClientFactory(
        operator_settings.aws_endpoint_url, max_connections=HANDLER_THREADS,
        region=operator_settings.default_region, pacers=Pacers(operator_settings.aws_max_rps),
    )  # fmt: skip
    return OperatorContext(
        settings=operator_settings,
        clients=clients,
        accounts=AccountDirectory(kube, namespace, operator_settings.account_map, clients.known_own_account),
        kube=kube,
        leases=Leases(kube.api_client, namespace, duration, identity=identity, takes_over=gate.takes_over),
        # At most this many steps at once: the rest of the threads stay free for Kopf's handlers.
        poller=poller,
        gate=gate,
    )


def run(args: argparse.Namespace) -> int:
    """Run until interrupted; bad configuration stops start-up with one line."""
    try:
        operator_settings = load_settings()
    except ConfigError as error:
        print(f"backendauth-operator: {error}", file=sys.stderr)
        return 2
    liveness: str | None = args.liveness or None
    try:
        if liveness:
            parse_endpoint(liveness)  # a bad URL stops start-up here, with one line
    except ValueError as error:
        print(f"backendauth-operator: {error}", file=sys.stderr)
        return 2
    # Kopf's own log set-up: it prefixes object messages with [namespace/name].
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.FULL, log_prefix=True)
    logfilters.install()  # inline secret values never reach a log line, also with --verbose
    reachability.install_log_filter()
    for noisy in ("botocore", "urllib3", "aiohttp.access", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # A refused AssumeRole is shown in the BackendAuth's status and events, naming the role;
    # botocore would also log each failed refresh with a traceback.
    logging.getLogger("botocore.credentials").setLevel(logging.ERROR)

    namespaces = list(args.namespace or [])

    identity = operator_identity(operator_settings)
    context = build_context(operator_settings, identity)
    metrics.watch_leadership(context.gate.acting)
    # One probe of the API server every few seconds, on a client (and connection) of its own.
    probe_client = KubeClient.from_environment(max_connections=1, retries=0)
    reachable = Reachability(str(probe_client.api_client.configuration.host))
    reachable.on_change(lambda answers: context.kube.drop_connections())
    monitor = ApiServerMonitor(reachability.version_probe(probe_client.api_client), reachable).start()

    # The account map, and (watching named namespaces) those Namespaces, each watched by name;
    # cluster-wide, Kopf watches every Namespace (steps.namespace_seen).
    accounts = context.accounts
    assert accounts is not None
    account_watches = [
        map_watch(context.kube, accounts, lambda changed: account_map_changed(context, changed))
    ]
    account_watches += [
        namespace_watch(context.kube, accounts, namespace, lambda changed: requeue(context, {changed}))
        for namespace in namespaces
    ]

    @kopf.on.startup()
    def _startup(settings: kopf.OperatorSettings, logger: Any, **_: Any) -> None:
        configure_kopf(settings, operator_settings, namespaced=bool(namespaces), reachable=reachable)
        for watch in account_watches:
            watch.start()
        # Polls run on Kopf's handler threads.
        context.poller.start(
            settings.execution.executor,
            lambda namespace, name, from_event: poll(context, namespace, name, from_event),
        )
        if isinstance(context.gate, LeaderElector):
            logger.info(f"Leader election on; this operator is {identity}.")
            context.gate.start()
        if operator_settings.metrics_port:
            try:
                metrics.start_metrics_server(operator_settings.metrics_port)
            except OSError as error:  # metrics are not worth failing the operator for
                logger.warning(f"Metrics not served on port {operator_settings.metrics_port}: {error}")
            else:
                logger.info(f"Metrics served on :{operator_settings.metrics_port}/metrics")

    register(watch_namespaces=not namespaces)
    memo = kopf.Memo(ctx=context)
    if operator_settings.resync_seconds > 0:
        # The resyncs' calls are counted (each resync is charged the calls it made): they go
        # through a counting view of the clients, the same clients and pacers otherwise.
        counted = CallCount()
        resyncing = dataclasses.replace(context, clients=context.clients.counting(counted))
        resyncer = Resyncer(
            context.watched, operator_settings.resync_seconds, lambda entry: resync(resyncing, entry),
            acting=context.gate.acting, share=operator_settings.resync_max_share,
            # The budget is kept per pacer: the same key every call of the entry is paced by.
            key_of=lambda entry: pace_key(
                context.accounts.known_account(entry.namespace) if context.accounts else "",
                entry.region or operator_settings.default_region or "",
            ),
            pacer_of=context.clients.pacers.of, calls=counted,
        )  # fmt: skip

        @kopf.on.startup()
        def _start_resync(**_: Any) -> None:
            resyncer.start()

        @kopf.on.cleanup()
        def _stop_resync(**_: Any) -> None:
            resyncer.stop()

    @kopf.on.cleanup()
    def _stop_polls(**_: Any) -> None:
        # Stop acting and let the steps in flight finish; a leader then hands the Lease over at
        # once. Without an election, the turns this process holds are disowned: no call of it
        # can be in flight any more, so other operators need not wait for them.
        context.gate.stop()
        for watch in account_watches:
            watch.stop()
        if not isinstance(context.gate, LeaderElector):
            context.leases.disown()
        context.poller.stop()

    try:
        asyncio.run(operate(liveness, reachable, namespaces, memo, identity))
    except asyncio.CancelledError:  # as kopf.run
        pass
    finally:
        monitor.stop()
    return 0


async def operate(
    liveness: str | None, reachable: Reachability, namespaces: Collection[str], memo: kopf.Memo, identity: str
) -> None:
    """Kopf, and the probe endpoints on the ``--liveness`` address (instead of Kopf's own, which
    serves one path only): the liveness path answers Kopf's probe handlers as Kopf would, and
    ``/readyz`` is ready once Kopf has started and while the API server answers."""
    registry = kopf.get_default_registry()
    settings = kopf.OperatorSettings()
    indexers = new_indexers()
    started = asyncio.Event()
    readiness = Readiness()
    readiness.add("operator", lambda: (started.is_set(), "starting (start-up handlers running)"))
    readiness.add("kube-api", reachable.readiness)

    async def kopf_probes() -> Mapping[str, Any]:
        return await run_probe_handlers(registry, settings, indexers, memo)

    server = ProbeServer(liveness, readiness, kopf_probes) if liveness else None
    async with serving(server):
        await kopf.operator(
            registry=registry,
            settings=settings,
            indexers=indexers,
            ready_flag=started,
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            lifecycle=kopf.lifecycles.one_by_one,
            memo=memo,
            # Kopf would otherwise build its identity from the user name, which a container
            # running as a uid without a passwd entry does not have (getpwuid fails and the
            # process exits).
            identity=kopf_identity(identity),
        )
