"""``deploy/monitoring/``: the Grafana dashboard and the PrometheusRule query what the operator serves.

- Every PromQL expression (each dashboard target, Grafana's variables filled in, and each rule)
  parses, with ``promql-parser`` (the Rust port of Prometheus' parser) and with ``promtool``
  itself (built from the Prometheus Go module by ``tests/tools/build.sh promtool``).
- Every metric they select is one the operator serves, with the labels they group and match
  by: from the operator's own registry (``OperatorMetrics``), and from ``/metrics`` of the real
  operator after it met throttling, an access denial, a job that completed and one that failed.
- The alerts fire when they should and not before: ``promtool test rules`` on series written here.

Without promtool (no Go and nothing built, or a failed build) the promtool tests are skipped,
except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from backendauth_operator.metrics import OperatorMetrics
from harness import Bed, backendauth, wait_until
from specs import minimal_spec
from tools.built import built_tool

REPO = Path(__file__).resolve().parent.parent
MONITORING = REPO / "deploy" / "monitoring"
DASHBOARD = MONITORING / "backendauth-operator-dashboard.json"
RULE = MONITORING / "prometheusrule.yaml"
BUILD_SCRIPT = REPO / "tests" / "tools" / "build.sh"
BUILD_TIMEOUT = 1800  # a cold build of promtool on the 2-core machine

# Labels Prometheus gives every series it scrapes from the operator (a ServiceMonitor's target).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container", "endpoint"}
# Grafana's variables, as Grafana would fill them in before sending the query.
GRAFANA_VARIABLES = {
    "$__rate_interval": "2m", "$__interval": "1m", "$__range": "6h", "$job": ".*", "$account": ".*",
}  # fmt: skip

Served = dict[str, dict[str, set[str]]]  # sample name -> label name -> values seen


# ---- what the dashboard and the rules query -------------------------------------------------------


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # inside a collapsed row


def grafana_filled(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace("${" + variable[1:] + "}", value).replace(variable, value)
    assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
    return expr


def dashboard_queries() -> dict[str, str]:
    """Every target's PromQL, Grafana's variables filled in, by ``panel title/refId``."""
    queries = {}
    for panel in panels(dashboard()):
        for target in panel.get("targets", []):
            queries[f"{panel['title']}/{target['refId']}"] = grafana_filled(target["expr"])
    return queries


def variable_queries() -> list[tuple[str, str]]:
    """(metric, label) of each ``label_values(metric, label)`` template variable."""
    found = []
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = re.fullmatch(r"label_values\((\w+)(?:\{[^}]*\})?,\s*(\w+)\)", query)
            assert match, f"unexpected variable query {query!r}"
            found.append((match.group(1), match.group(2)))
    return found


def rule_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(RULE.read_text())["spec"]
    return spec


def rules() -> list[dict[str, Any]]:
    return [rule for group in rule_spec()["groups"] for rule in group["rules"]]


def alert(name: str) -> dict[str, Any]:
    (found,) = [r for r in rules() if r.get("alert") == name]
    return found


def rule_queries() -> dict[str, str]:
    return {rule.get("alert") or rule["record"]: rule["expr"] for rule in rules()}


def all_queries() -> dict[str, str]:
    queries = {f"dashboard {k}": v for k, v in dashboard_queries().items()}
    queries.update({f"rule {k}": v for k, v in rule_queries().items()})
    return queries


# ---- PromQL, walked ------------------------------------------------------------------------------------


def selectors(expr: Any) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        return True

    promql_parser.walk(expr, visit)
    return found


def groupings(expr: Any) -> list[tuple[list[str], list[promql_parser.VectorSelector]]]:
    """The labels of every ``by (...)`` / ``on (...)``, with the selectors they apply to."""
    found: list[tuple[list[str], list[promql_parser.VectorSelector]]] = []

    def visit(node: Any) -> bool:
        if (
            isinstance(node, promql_parser.AggregateExpr)
            and node.modifier is not None
            and node.modifier.type == promql_parser.AggModifierType.By
        ):
            found.append((list(node.modifier.labels), selectors(node.expr)))
        if (
            isinstance(node, promql_parser.BinaryExpr)
            and node.modifier
            and node.modifier.matching
            and node.modifier.matching.type == promql_parser.LabelModifierType.Include
        ):
            both = selectors(node.lhs) + selectors(node.rhs)
            found.append((list(node.modifier.matching.labels), both))
        return True

    promql_parser.walk(expr, visit)
    return found


def name_of(selector: promql_parser.VectorSelector) -> str:
    if selector.name:
        return str(selector.name)
    names = [m.value for m in selector.matchers.matchers if m.name == "__name__"]
    assert len(names) == 1 and names[0], f"a selector without one metric name: {selector}"
    return str(names[0])


def literal_alternatives(matcher: promql_parser.Matcher) -> list[str] | None:
    """The values a matcher names: ``a`` for ``="a"``, ``a, b`` for ``=~"a|b"``; None for other regexes."""
    if matcher.op == promql_parser.MatchOp.Equal:
        return [str(matcher.value)]
    if matcher.op == promql_parser.MatchOp.Re and re.fullmatch(r"\w+(\|\w+)*", matcher.value):
        return str(matcher.value).split("|")
    return None


def unserved(served: Served, check_values: bool) -> list[str]:
    """What the queries select that ``served`` does not have: metric names, label names in
    matchers and groupings, and (``check_values``) the literal label values they match."""
    problems = []
    for where, query in all_queries().items():
        expr = promql_parser.parse(query)
        for selector in selectors(expr):
            name = name_of(selector)
            if name not in served:
                problems.append(f"{where}: {name} is not served")
                continue
            for matcher in selector.matchers.matchers:
                if matcher.name == "__name__" or matcher.name in TARGET_LABELS:
                    continue
                if matcher.name not in served[name]:
                    problems.append(f"{where}: {name} has no label {matcher.name}")
                    continue
                for value in (literal_alternatives(matcher) or []) if check_values else []:
                    if value not in served[name][matcher.name]:
                        problems.append(f"{where}: {name}{{{matcher.name}={value!r}}} was never served")
        for labels, below in groupings(expr):
            known = set(TARGET_LABELS).union(*(served.get(name_of(s), {}).keys() for s in below))
            problems += [
                f"{where}: grouping by {label}, a label none has" for label in labels if label not in known
            ]
    for metric, label in variable_queries():
        if metric not in served or (label not in served[metric] and label not in TARGET_LABELS):
            problems.append(f"template variable label_values({metric}, {label}): not served")
    return problems


def parse_exposition(text: str) -> Served:
    served: Served = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = served.setdefault(sample.name, {})
            for label, value in sample.labels.items():
                labels.setdefault(label, set()).add(value)
    return served


# ---- the queries -----------------------------------------------------------------------------------------


def test_the_dashboard_and_the_rules_query_something() -> None:
    queries = all_queries()
    assert len(dashboard_queries()) >= 8 and len(rule_queries()) >= 3
    assert all(q.strip() for q in queries.values())


@pytest.mark.parametrize("where", sorted(all_queries()))
def test_every_query_parses_as_promql(where: str) -> None:
    query = all_queries()[where]
    expr = promql_parser.parse(query)
    assert selectors(expr), f"{where} selects no metric"


def test_the_parser_refuses_what_prometheus_refuses() -> None:
    for broken in (
        "sum(rate(backendauth_retries_total[5m])",
        "rate(backendauth_resources)",
        "sum by (a b) (x)",
    ):
        with pytest.raises(ValueError):
            promql_parser.parse(broken)


def test_every_metric_and_label_queried_is_in_the_operators_registry() -> None:
    # The operator's own registry, with one sample in each family (a family without samples
    # exposes no series).
    metrics = OperatorMetrics()
    metrics.record_aws_call("CreateBackendAuth", "ok")
    metrics.record_retry("Throttled")
    metrics.observe_job("CreateBackendAuth", "COMPLETED", 3.0)
    metrics.set_object_state("uid-1", "stalled", "JobFailed")
    served = parse_exposition(metrics.render().decode())
    assert unserved(served, check_values=False) == []


def test_a_query_of_a_name_the_operator_does_not_serve_is_caught() -> None:
    # The check above can fail: a served set without the histogram's buckets misses them.
    metrics = OperatorMetrics()
    metrics.record_aws_call("CreateBackendAuth", "ok")
    metrics.set_object_state("uid-1", "ready", "JobCompleted")
    problems = unserved(parse_exposition(metrics.render().decode()), check_values=False)
    assert any("backendauth_job_duration_seconds_bucket is not served" in p for p in problems), problems
    assert any("backendauth_retries_total is not served" in p for p in problems), problems


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.integration
def test_a_running_operator_serves_every_metric_label_and_value_queried(make_bed: Callable[..., Bed]) -> None:
    bed = make_bed(start_operator=False)
    bed.operator.env["BACKENDAUTH_METRICS_PORT"] = str(free_port())
    bed.operator.start()
    # Throttled twice, then refused once, then created: calls by outcome, retries by reason.
    bed.fault("throttle", count=2)
    bed.fault("access_denied", count=1)
    bed.apply(backendauth("measured", minimal_spec(resourceName="measured")))
    bed.wait_reason("measured", "JobCompleted", status="True")
    # Every job fails from now on: a Stalled object and a FAILED job duration.
    bed.sim_post("config", {"fail_rate": 1.0})
    bed.apply(backendauth("doomed", minimal_spec(resourceName="doomed")))
    bed.wait_reason("doomed", "JobFailed")

    def settled() -> str | None:
        text = bed.operator.metrics()
        ready = 'backendauth_resources{condition="Ready",reason="JobCompleted"} 1.0' in text
        stalled = 'backendauth_resources{condition="Stalled",reason="JobFailed"} 1.0' in text
        return text if ready and stalled else None

    served = parse_exposition(wait_until(settled, what="both objects counted on /metrics"))
    assert served["backendauth_aws_calls_total"]["outcome"] >= {"ok", "Throttled", "AccessDenied"}
    assert unserved(served, check_values=True) == []


# ---- the rules ---------------------------------------------------------------------------------------------


def test_the_alerts_asked_for_are_there() -> None:
    stalled = alert("BackendAuthStalled")
    assert stalled["for"] == "15m"
    assert 'condition="Stalled"' in stalled["expr"] and "backendauth_resources" in stalled["expr"]
    throttling = alert("BackendAuthThrottlingSustained")
    assert 'outcome="Throttled"' in throttling["expr"] and "rate(" in throttling["expr"]
    assert "backendauth_job_duration_seconds_bucket" in alert("BackendAuthJobsSlow")["expr"]
    unreachable = alert("BackendAuthKubeAPIUnreachable")
    assert "backendauth_kube_api_reachable" in unreachable["expr"] and unreachable["for"] == "2m"
    behind = alert("BackendAuthResyncBehind")
    assert behind["for"] == "30m" and "backendauth_resync_round_seconds" in behind["expr"]
    assert "2 * max by (namespace, job) (backendauth_resync_period_seconds)" in behind["expr"]
    for rule in rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_the_prometheus_rule_is_a_prometheus_operator_object() -> None:
    rule = yaml.safe_load(RULE.read_text())
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    assert rule["metadata"]["namespace"] == "backendauth-system"
    assert set(rule) == {"apiVersion", "kind", "metadata", "spec"}


@pytest.fixture(scope="session")
def promtool() -> Path:
    """promtool built by tests/tools/build.sh. Optional, unlike helm: the PromQL is parsed above
    anyway, and its cold build (~4 minutes) would take CI past its half hour. Without a build it
    is skipped with the command that builds it; once built, a broken build fails under CI=true."""
    cache = Path(
        os.environ.get("BACKENDAUTH_TOOLS_CACHE", Path.home() / ".cache" / "amplify-backendauth-operator")
    )
    if not any(cache.glob("promtool-*/promtool")):
        pytest.skip("promtool is not built: `bash tests/tools/build.sh promtool` builds it (~4 minutes)")
    return built_tool(["bash", str(BUILD_SCRIPT), "promtool"], "promtool", BUILD_TIMEOUT)


def run_promtool(promtool: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(promtool), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.timeout(BUILD_TIMEOUT + 120)
def test_promtool_checks_the_rules(promtool: Path, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_spec(), sort_keys=False))
    result = run_promtool(
        promtool, "check", "rules", "--lint=all", "--lint-fatal", "rules.yaml", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


@pytest.mark.timeout(BUILD_TIMEOUT + 120)
def test_promtool_parses_every_dashboard_query(promtool: Path, tmp_path: Path) -> None:
    # As recording rules, so that Prometheus' own parser reads each one.
    recorded = [
        {"record": f"dashboard:query_{i}", "expr": query}
        for i, query in enumerate(dashboard_queries().values())
    ]
    (tmp_path / "dashboard.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recorded}]})
    )
    result = run_promtool(promtool, "check", "rules", "dashboard.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(recorded)} rules found" in result.stdout
    # And it does refuse a broken one.
    recorded.append({"record": "dashboard:broken", "expr": "sum(rate(backendauth_retries_total[5m])"})
    (tmp_path / "dashboard.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recorded}]})
    )
    assert run_promtool(promtool, "check", "rules", "dashboard.yaml", cwd=tmp_path).returncode != 0


# promtool test rules: series written here, and the alerts expected at given times.
TARGET = {"job": "backendauth-operator-metrics", "namespace": "backendauth-system"}


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    all_labels = {**TARGET, **labels}
    selector = ", ".join(f'{k}="{v}"' for k, v in all_labels.items())
    return {"series": f"{name}{{{selector}}}", "values": values}


def rendered(template: str, labels: dict[str, str], value: str, humanized: str = "") -> str:
    """The few template forms the rules use, filled in as Prometheus does (checked by promtool)."""
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], template)
    text = text.replace("{{ $value }}", value)
    text = re.sub(r"\{\{ \$value \| humanize\w+ \}\}", humanized, text)
    assert "{{" not in text, f"a template form this test does not fill in: {text}"
    return text


def firing(name: str, labels: dict[str, str], value: str, humanized: str = "") -> dict[str, Any]:
    rule = alert(name)
    all_labels = {**TARGET, **labels}
    return {
        "exp_labels": {**all_labels, **rule["labels"]},
        "exp_annotations": {
            k: rendered(v, all_labels, value, humanized) for k, v in rule["annotations"].items()
        },
    }


def alert_tests() -> list[dict[str, Any]]:
    calls = "backendauth_aws_calls_total"
    create = {"operation": "CreateBackendAuth"}
    account = "111111111111"
    buckets = "backendauth_job_duration_seconds_bucket"
    return [
        {   # Two objects Stalled for 20 minutes: firing after 15, not at 14.
            "interval": "1m",
            "input_series": [
                series("backendauth_resources", "0 2x20", condition="Stalled", reason="JobFailed"),
                series("backendauth_resources", "3x20", condition="Ready", reason="JobCompleted"),
            ],
            "alert_rule_test": [
                {"eval_time": "14m", "alertname": "BackendAuthStalled", "exp_alerts": []},
                {"eval_time": "17m", "alertname": "BackendAuthStalled",
                 "exp_alerts": [firing("BackendAuthStalled", {"reason": "JobFailed"}, "2")]},
            ],
        },
        {   # Stalled for 10 minutes, then fixed: never fires.
            "interval": "1m",
            "input_series": [
                series("backendauth_resources", "0 1x10 0x20", condition="Stalled", reason="InvalidSpec"),
            ],
            "alert_rule_test": [
                {"eval_time": "12m", "alertname": "BackendAuthStalled", "exp_alerts": []},
                {"eval_time": "30m", "alertname": "BackendAuthStalled", "exp_alerts": []},
            ],
        },
        {   # Half the calls throttled for 90 minutes: firing after 30 minutes of it.
            "interval": "1m",
            "input_series": [
                series(calls, "0+3x90", **create, account=account, outcome="Throttled"),
                series(calls, "0+3x90", **create, account=account, outcome="ok"),
                # Another account, never throttled: the alert names the throttled one only.
                series(calls, "0+3x90", operation="CreateBackendAuth", account="222222222222", outcome="ok"),
            ],
            "alert_rule_test": [
                {"eval_time": "25m", "alertname": "BackendAuthThrottlingSustained", "exp_alerts": []},
                {"eval_time": "60m", "alertname": "BackendAuthThrottlingSustained",
                 "exp_alerts": [firing("BackendAuthThrottlingSustained", {"account": account},
                                       "0.5", "50%")]},
            ],
        },
        {   # A tenth of the calls throttled: the operator copes, no alert.
            "interval": "1m",
            "input_series": [
                series(calls, "0+1x90", **create, outcome="Throttled"),
                series(calls, "0+9x90", **create, outcome="ok"),
            ],
            "alert_rule_test": [
                {"eval_time": "80m", "alertname": "BackendAuthThrottlingSustained", "exp_alerts": []},
            ],
        },
        {   # Every job takes 30-60 minutes: p90 = 1800 + 0.9 * 1800 = 3420 s.
            "interval": "1m",
            "input_series": [
                series(buckets, "0x120", **create, result="COMPLETED", le="900.0"),
                series(buckets, "0x120", **create, result="COMPLETED", le="1800.0"),
                series(buckets, "0+1x120", **create, result="COMPLETED", le="3600.0"),
                series(buckets, "0+1x120", **create, result="COMPLETED", le="+Inf"),
            ],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "BackendAuthJobsSlow", "exp_alerts": []},
                {"eval_time": "90m", "alertname": "BackendAuthJobsSlow",
                 "exp_alerts": [firing("BackendAuthJobsSlow", create, "3420", "57m 0s")]},
            ],
        },
        {   # Jobs of a few minutes: no alert.
            "interval": "1m",
            "input_series": [
                series(buckets, "0+1x120", **create, result="COMPLETED", le="300.0"),
                series(buckets, "0+1x120", **create, result="COMPLETED", le="1800.0"),
                series(buckets, "0+1x120", **create, result="COMPLETED", le="+Inf"),
            ],
            "alert_rule_test": [{"eval_time": "90m", "alertname": "BackendAuthJobsSlow", "exp_alerts": []}],
        },
        {   # An object waiting on its job for 70 minutes: firing after an hour.
            "interval": "1m",
            "input_series": [
                series("backendauth_resources", "1x70", condition="Reconciling", reason="JobInProgress")
            ],
            "alert_rule_test": [
                {"eval_time": "50m", "alertname": "BackendAuthJobRunningLong", "exp_alerts": []},
                {"eval_time": "65m", "alertname": "BackendAuthJobRunningLong",
                 "exp_alerts": [firing("BackendAuthJobRunningLong", {}, "1")]},
            ],
        },
        {   # Every CreateBackendAuth refused for 30 minutes: firing after 15 (and some).
            "interval": "1m",
            "input_series": [series(calls, "0+2x30", **create, outcome="AccessDenied")],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "BackendAuthAWSAccessDenied", "exp_alerts": []},
                {"eval_time": "28m", "alertname": "BackendAuthAWSAccessDenied",
                 "exp_alerts": [firing("BackendAuthAWSAccessDenied", create, "")]},
            ],
        },
        {   # The round stretches to 2.5 periods at 5 minutes: firing 30 minutes later, not before;
            # at 1.5 periods it never fires.
            "interval": "1m",
            "input_series": [
                series("backendauth_resync_round_seconds", "600x5 1500x40 900x20"),
                series("backendauth_resync_period_seconds", "600x65"),
            ],
            "alert_rule_test": [
                {"eval_time": "30m", "alertname": "BackendAuthResyncBehind", "exp_alerts": []},
                {"eval_time": "40m", "alertname": "BackendAuthResyncBehind",
                 "exp_alerts": [firing("BackendAuthResyncBehind", {}, "1500", "25m 0s")]},
                {"eval_time": "60m", "alertname": "BackendAuthResyncBehind", "exp_alerts": []},
            ],
        },
        {
            "interval": "1m",
            "input_series": [series("backendauth_kube_api_reachable", "1x5 0x10 1x5")],
            "alert_rule_test": [
                {"eval_time": "7m", "alertname": "BackendAuthKubeAPIUnreachable", "exp_alerts": []},
                {"eval_time": "9m", "alertname": "BackendAuthKubeAPIUnreachable",
                 "exp_alerts": [firing("BackendAuthKubeAPIUnreachable", {}, "0")]},
                {"eval_time": "18m", "alertname": "BackendAuthKubeAPIUnreachable", "exp_alerts": []},
            ],
        },
    ]  # fmt: skip


@pytest.mark.timeout(BUILD_TIMEOUT + 120)
def test_promtool_unit_tests_the_alerts(promtool: Path, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_spec(), sort_keys=False))
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": alert_tests()}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = run_promtool(promtool, "test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    tested = {t["alertname"] for case in alert_tests() for t in case["alert_rule_test"]}
    assert tested == {r["alert"] for r in rules()}, "every alert has a unit test"


@pytest.mark.timeout(BUILD_TIMEOUT + 120)
def test_promtool_unit_tests_can_fail(promtool: Path, tmp_path: Path) -> None:
    # Expecting the Stalled alert at 14 minutes (one too early) must fail.
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_spec(), sort_keys=False))
    case = alert_tests()[0]
    case["alert_rule_test"][0]["exp_alerts"] = case["alert_rule_test"][1]["exp_alerts"]
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [case]}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = run_promtool(promtool, "test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode != 0, result.stdout


# ---- the dashboard -------------------------------------------------------------------------------------


def test_the_dashboard_is_well_formed() -> None:
    board = dashboard()
    assert board["uid"] and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    all_panels = list(panels(board))
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    cells: set[tuple[int, int]] = set()
    for panel in all_panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            assert 'job=~"$job"' in target["expr"], f"{panel['title']}: not filtered by the job variable"
            process_wide = ("backendauth_resources", "kube_api", "backendauth_resync_", "observation_age")
            if not any(name in target["expr"] for name in process_wide):
                # Calls, retries and jobs carry the AWS account they were made in.
                assert 'account=~"$account"' in target["expr"], f"{panel['title']}: not filtered by account"
    assert (
        variables["account"]["definition"]
        == 'label_values(backendauth_aws_calls_total{job=~"$job"}, account)'
    )


def test_kustomize_renders_the_rule_and_the_dashboard_config_map() -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(MONITORING)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    objects = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(result.stdout) if o}
    assert set(objects) == {
        ("PrometheusRule", "backendauth-operator"),
        ("ConfigMap", "backendauth-operator-dashboard"),
    }
    config_map = objects[("ConfigMap", "backendauth-operator-dashboard")]
    assert config_map["metadata"]["namespace"] == "backendauth-system"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["data"] == {DASHBOARD.name: DASHBOARD.read_text()}
    rule = objects[("PrometheusRule", "backendauth-operator")]
    assert rule["spec"] == rule_spec()
