"""The Gen 2 check itself: ``tsc --strict`` against the pinned ``@aws-amplify/backend`` accepts a
``referenceAuth`` file written by hand and refuses one with a wrong or a missing property, so a
test that relies on it (the export's ``amplify/auth/resource.ts``) can fail.

The packages come from ``tests/tools/npm.sh gen2`` (installed once into the tools cache);
without npm these tests are skipped, and under ``CI=true`` they fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.tsc import MODULE_SETTINGS, gen2_packages, typecheck, typecheck_many

REFERENCE_AUTH = """import { referenceAuth } from '@aws-amplify/backend';

export const auth = referenceAuth({
  userPoolId: 'eu-west-1_AbCdEf123',
  identityPoolId: 'eu-west-1:00000000-0000-0000-0000-000000000000',
  userPoolClientId: '1example23456789abcdefghij',
  authRoleArn: 'arn:aws:iam::123456789012:role/amplify-app-staging-authRole',
  unauthRoleArn: 'arn:aws:iam::123456789012:role/amplify-app-staging-unauthRole',
});
"""


CASES = {
    "good": REFERENCE_AUTH,
    "groups": REFERENCE_AUTH.replace(
        "});", "  groups: { admins: 'arn:aws:iam::123456789012:role/admins' },\n});"
    ),
    "wrong-name": REFERENCE_AUTH.replace("userPoolClientId:", "webClientId:"),
    # What a USER_POOL_ONLY resource would give: referenceAuth needs an identity pool and both roles.
    "user-pool-alone": "\n".join(
        line
        for line in REFERENCE_AUTH.splitlines()
        if not line.strip().startswith(("identityPoolId", "authRoleArn", "unauthRoleArn"))
    ),
    "wrong-type": REFERENCE_AUTH.replace("'eu-west-1_AbCdEf123'", "42"),
}


@pytest.fixture(scope="module")
def packages() -> Path:
    return gen2_packages()


@pytest.fixture(scope="module")
def results(packages: Path) -> dict[str, list[str]]:
    """Every case in one compilation per module setting (tsc spends its time loading aws-cdk-lib)."""
    return typecheck_many(dict(CASES), packages)


def test_pinned_versions_are_what_is_installed(packages: Path) -> None:
    lock = json.loads((Path(__file__).parent / "tools" / "gen2" / "package-lock.json").read_text())
    for name in ("typescript", "@aws-amplify/backend", "aws-cdk-lib", "constructs"):
        installed = json.loads((packages / "node_modules" / name / "package.json").read_text())
        assert installed["version"] == lock["packages"][f"node_modules/{name}"]["version"], name


def test_a_reference_auth_file_compiles(results: dict[str, list[str]]) -> None:
    assert results["good"] == []


def test_groups_are_accepted_too(results: dict[str, list[str]]) -> None:
    assert results["groups"] == []


def test_a_wrong_property_name_is_refused(results: dict[str, list[str]]) -> None:
    for setting in MODULE_SETTINGS:
        prefix = f"[{setting}] amplify/auth/resource.ts("
        ours = [line for line in results["wrong-name"] if line.startswith(prefix)]
        assert any("webClientId" in line for line in ours), (setting, results["wrong-name"])


def test_a_user_pool_alone_does_not_compile(results: dict[str, list[str]]) -> None:
    """So the export must say so for a USER_POOL_ONLY resource rather than print this."""
    assert any("identityPoolId" in line for line in results["user-pool-alone"]), results["user-pool-alone"]


def test_a_value_of_the_wrong_type_is_refused(results: dict[str, list[str]]) -> None:
    assert any("TS2322" in line for line in results["wrong-type"]), results["wrong-type"]


def test_one_file_alone(packages: Path, tmp_path: Path) -> None:
    """typecheck() reads a path too, and a file that is not TypeScript at all fails."""
    path = tmp_path / "resource.ts"
    path.write_text("export const auth = referenceAuth({ userPoolId: 'x' }")
    assert typecheck(path, packages)
