"""The API server out of reach: the operator (a subprocess) reaches the real kube-apiserver only
through a TCP forwarder that can turn into a black hole (``blackhole.py``), while the test
itself talks to the API server directly, as an administrator whose path still works.

The path is cut from the operator's start for longer than TCP's two-minute connect schedule,
and again mid-run. Each time the operator must say so in its log within 15 s, answer 503 on
``/readyz`` while the path is cut and 200 once it is back, and have every BackendAuth Ready
within 20 s of the path coming back: one applied before the start, one applied during each
cut, and one whose AWS job ended during the mid-run cut.

The cuts last ``BACKENDAUTH_TEST_CUT_SECONDS`` (default 130: longer than the ~127 s TCP
spends on a connect whose SYNs get no answer) and ``BACKENDAUTH_TEST_MIDRUN_CUT_SECONDS``
(default 75: longer than the 70 s after which a watch that carries nothing is reopened).
"""

from __future__ import annotations

import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from blackhole import BlackHoleForwarder
from harness import backendauth, wait_until
from real_apiserver import RealBed, RealCluster, free_port, kubeconfig_text
from specs import minimal_spec

CUT_SECONDS = float(os.environ.get("BACKENDAUTH_TEST_CUT_SECONDS", "130"))
MIDRUN_CUT_SECONDS = float(os.environ.get("BACKENDAUTH_TEST_MIDRUN_CUT_SECONDS", "75"))
WARNING_WITHIN = 15.0
READY_WITHIN = 20.0

pytestmark = [
    pytest.mark.real_apiserver,
    pytest.mark.integration,
    pytest.mark.timeout(CUT_SECONDS + MIDRUN_CUT_SECONDS + 300),
]

WARNING = re.compile(r"\[WARNING *\] The Kubernetes API server (\S+) cannot be reached: ")
BACK = re.compile(r"The Kubernetes API server (\S+) answers again")


def spec_named(name: str) -> dict[str, object]:
    return minimal_spec(resourceName=name.replace("-", ""))


def readyz(port: int) -> tuple[int, str]:
    """The operator's /readyz: (status, body); (0, why) when it does not answer at all."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, str(error)


def metric(bed: RealBed, name: str) -> float | None:
    match = re.search(rf"^{name} (\S+)$", bed.operator.metrics(), re.M)
    return float(match.group(1)) if match else None


def warnings_in(log: str) -> list[str]:
    return [line for line in log.splitlines() if WARNING.search(line)]


def retries_logged(log: str) -> list[str]:
    """Kopf's and urllib3's lines about each retry: the one warning a minute says it all."""
    return [line for line in log.splitlines() if "will retry" in line or "Retrying (" in line]


def ready(bed: RealBed, name: str) -> bool:
    return bed.condition(name).get("status") == "True"


@pytest.fixture
def forwarder(real_cluster: RealCluster) -> Iterator[BlackHoleForwarder]:
    target = urlsplit(real_cluster.server)
    # Connections that lived through a cut stay dead: work resumes on new ones, whatever TCP's
    # retransmissions would do for the old ones.
    forwarder = BlackHoleForwarder(
        target.hostname or "127.0.0.1", target.port or 443, stale_stay_dead=True
    ).start()
    yield forwarder
    forwarder.stop()


def hold_cut(bed: RealBed, probe_port: int, seconds: float, since: float) -> None:
    """Keep the path cut until ``since + seconds``, checking all along that /readyz says 503."""
    deadline = since + seconds
    while time.monotonic() < deadline:
        status, body = readyz(probe_port)
        assert status == 503, f"/readyz answered {status} {body!r} while the path was cut"
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))  # the cut's length, not a wait


def test_cut_from_the_start_and_mid_run_is_said_and_recovered_from(
    make_real_bed: Callable[..., RealBed],
    real_cluster: RealCluster,
    real_namespace: str,
    forwarder: BlackHoleForwarder,
    tmp_path: Path,
) -> None:
    through_forwarder = tmp_path / "operator.kubeconfig"
    through_forwarder.write_text(
        kubeconfig_text(f"https://127.0.0.1:{forwarder.port}", real_cluster.token, real_cluster.ca_file)
    )
    bed = make_real_bed(start_operator=False, operator_kubeconfig=through_forwarder)
    probe_port, metrics_port = free_port(), free_port()
    bed.operator.args = [f"--liveness=http://127.0.0.1:{probe_port}/healthz"]
    bed.operator.env["BACKENDAUTH_METRICS_PORT"] = str(metrics_port)
    server = f"https://127.0.0.1:{forwarder.port}"

    # ---- cut from the start
    bed.apply(backendauth("before", spec_named("before")))
    forwarder.cut()
    bed.operator.start()
    cut_at = time.monotonic()
    wait_until(lambda: warnings_in(bed.operator.log), WARNING_WITHIN, "the warning that the API is cut")
    (first,) = warnings_in(bed.operator.log)
    assert WARNING.search(first).group(1) == server, first  # type: ignore[union-attr]
    _, body = wait_until(lambda: (s := readyz(probe_port))[0] == 503 and s, WARNING_WITHIN, "/readyz 503")
    assert "kube-api:" in body and server in body and len(body.strip().splitlines()) == 1, body
    assert metric(bed, "backendauth_kube_api_reachable") == 0
    with urllib.request.urlopen(f"http://127.0.0.1:{probe_port}/healthz", timeout=5) as response:
        assert response.status == 200, "liveness is the process's: a restart does not bring the API back"
    bed.apply(backendauth("during-start", spec_named("during-start")))
    hold_cut(bed, probe_port, CUT_SECONDS, cut_at)
    assert bed.operator.process is not None and bed.operator.process.poll() is None, "the operator gave up"

    forwarder.restore()
    back_at = time.monotonic()
    for name in ("before", "during-start"):
        wait_until(lambda n=name: ready(bed, n), back_at + READY_WITHIN - time.monotonic(), f"{name} Ready")
    wait_until(lambda: readyz(probe_port)[0] == 200, back_at + READY_WITHIN - time.monotonic(), "/readyz 200")
    wait_until(lambda: BACK.search(bed.operator.log), 10, "the line that says the API server is back")
    # One warning, then at most one a minute; Kopf's retries are not logged one by one.
    assert len(warnings_in(bed.operator.log)) <= 1 + CUT_SECONDS // 60, warnings_in(bed.operator.log)
    assert not retries_logged(bed.operator.log)
    assert metric(bed, "backendauth_kube_api_reachable") == 1

    # ---- cut mid-run: a job runs in AWS and ends during the cut; one more is applied meanwhile
    bed.sim_post("hold", {"held": True})
    bed.apply(backendauth("waiting", spec_named("waiting")))
    job = bed.wait_reason("waiting", "JobInProgress", status="False", timeout=60)["status"]["jobId"]
    seen = len(warnings_in(bed.operator.log))
    forwarder.cut()
    cut_at = time.monotonic()
    wait_until(lambda: len(warnings_in(bed.operator.log)) > seen, WARNING_WITHIN, "the mid-run warning")
    wait_until(lambda: readyz(probe_port)[0] == 503, WARNING_WITHIN, "/readyz 503 mid-run")
    bed.sim_post(f"jobs/{job}", {"status": "COMPLETED"})
    bed.apply(backendauth("during-run", spec_named("during-run")))
    bed.sim_post("hold", {"held": False})
    hold_cut(bed, probe_port, MIDRUN_CUT_SECONDS, cut_at)

    forwarder.restore()
    back_at = time.monotonic()
    for name in ("waiting", "during-run", "before", "during-start"):
        wait_until(lambda n=name: ready(bed, n), back_at + READY_WITHIN - time.monotonic(), f"{name} Ready")
    wait_until(lambda: readyz(probe_port)[0] == 200, back_at + READY_WITHIN - time.monotonic(), "/readyz 200")
    assert bed.count("CreateBackendAuth") == 4
    assert not retries_logged(bed.operator.log)
