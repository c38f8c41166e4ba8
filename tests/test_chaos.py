"""Chaos: many BackendAuths, several per app/env, AWS failing in every way it can (throttles,
plain 504s, 504s after the work was done), and the operator SIGKILLed at random moments.

What must hold at the end: every BackendAuth Ready; every auth resource created in AWS exactly
once; existing pools (``spec.import``, each on an app/env of its own) imported exactly once; no
BackendAuth showing a job of another auth resource.

The CI run is small. The long run, as one command:

    BACKENDAUTH_CHAOS_OBJECTS=200 BACKENDAUTH_CHAOS_SEED=7 .venv/bin/pytest tests/test_chaos.py -p no:timeout
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from harness import Bed, backendauth, wait_until
from sim import seed_pools, sim_state
from specs import minimal_spec

pytestmark = pytest.mark.integration

OBJECTS = int(os.environ.get("BACKENDAUTH_CHAOS_OBJECTS", "16"))
PER_APP_ENV = 4
IMPORTS = max(2, OBJECTS // 4)  # BackendAuths that import seeded pools, mixed in
SEED = int(os.environ.get("BACKENDAUTH_CHAOS_SEED", str(random.randrange(1_000_000))))
RUNS = range(int(os.environ.get("BACKENDAUTH_REPEAT", "1")))
# Generous: a busy machine slows every restart; a stuck run still fails, with the seed.
DEADLINE = 240 + (OBJECTS + IMPORTS) * 5.0


def up(bed: Bed) -> bool:
    """The operator started last has finished starting (it logs this once it can watch)."""
    latest = bed.operator.log.split(f"---- operator start #{bed.operator.starts} ----")[-1]
    return "Initial authentication has finished" in latest


def all_ready(bed: Bed) -> list[dict[str, Any]] | None:
    out = bed.kubectl("get", "backendauths", "-n", "default", "-o", "json", check=False)
    if out.returncode != 0:
        return None
    items: list[dict[str, Any]] = json.loads(out.stdout)["items"]

    def is_ready(item: dict[str, Any]) -> bool:
        conditions = item.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    ready = [i for i in items if is_ready(i)]
    total = OBJECTS + IMPORTS
    return items if len(items) == total and len(ready) == total else None


@pytest.mark.timeout(DEADLINE + 120)
@pytest.mark.parametrize("run", RUNS)
def test_chaos_every_backendauth_ready_each_resource_created_once_no_foreign_jobs(
    make_bed: Callable[..., Bed], run: int
) -> None:
    rng = random.Random(SEED + run)
    print(f"chaos seed {SEED + run}, {OBJECTS} BackendAuths")
    bed = make_bed(
        start_operator=False, seed=SEED + run, job_seconds=0.5,
        throttle_rate=0.1, timeout_rate=0.1, ambiguous_rate=0.1,
    )  # fmt: skip
    names = [f"chaos-{i:03d}" for i in range(OBJECTS)]
    manifests = []
    for i, name in enumerate(names):
        spec = minimal_spec(
            appId=f"chaosapp{i // PER_APP_ENV:03d}",
            backendEnvironmentName="dev",
            resourceName=name.replace("-", ""),
        )
        manifests.append(backendauth(name, spec))
    for i in range(IMPORTS):
        pools = seed_pools(bed, region="eu-west-1")
        ids = {"userPoolId": pools["userPoolId"], "webClientId": pools["clients"]["web"],
               "nativeClientId": pools["clients"]["native"]}  # fmt: skip
        spec = {"appId": f"chaosimp{i:03d}", "backendEnvironmentName": "dev", "import": ids}
        manifests.append(backendauth(f"chaos-import-{i:03d}", spec))
    rng.shuffle(manifests)
    bed.apply(*manifests)

    deadline = time.monotonic() + DEADLINE
    kills = 0
    items = None
    while items is None:
        assert time.monotonic() < deadline, f"not all Ready after {kills} kills (seed {SEED + run})"
        bed.operator.start()
        # Killed at a random moment of its work, not during start-up (slow on a busy machine).
        wait_until(lambda: up(bed), timeout=60, what="the operator up")
        alive_until = time.monotonic() + rng.uniform(0.2, 2.5)
        while time.monotonic() < alive_until and items is None:
            items = all_ready(bed)
        if items is None:
            bed.operator.kill()
            kills += 1
    bed.operator.stop()

    state = sim_state(bed)
    creates = Counter(j["resourceName"] for j in state["jobs"] if j["operation"] == "CreateBackendAuth")
    imports = Counter(j["appId"] for j in state["jobs"] if j["operation"] == "ImportBackendAuth")
    job_owner = {j["jobId"]: j["resourceName"] for j in state["jobs"]}
    for item in items:
        # Ready shows the outputs too, also when a kill fell between the job's annotation and
        # the status write.
        assert item["status"].get("outputs"), f"{item['metadata']['name']} is Ready without outputs"
        if "import" in item["spec"]:
            app = item["spec"]["appId"]
            assert imports[app] == 1, f"{app}: {imports[app]} imports (seed {SEED + run})"
            assert f"{app}/dev/{item['status']['resourceName']}" in state["links"]
            continue
        resource = item["spec"]["resourceName"]
        key = f"{item['spec']['appId']}/dev/{resource}"
        assert key in state["resources"], f"{item['metadata']['name']} is Ready but AWS has no {key}"
        assert creates[resource] == 1, f"{resource} created {creates[resource]} times (seed {SEED + run})"
        job_id = item["status"].get("jobId")
        if job_id:
            owner = job_owner.get(job_id)
            assert owner == resource, (
                f"{item['metadata']['name']} shows job {job_id} of {owner} (seed {SEED + run})"
            )
    print(f"chaos: {OBJECTS + IMPORTS} Ready after {kills} kills")
