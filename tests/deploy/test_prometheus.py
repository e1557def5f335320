"""deploy/prometheus: rules and config valid for promtool, alert unit tests, names the server exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.promql_names import (
    REPO,
    RULES,
    check_exprs,
    metric_names,
    run_promtool,
    scrape_exported_names,
    unknown_names,
)
from tests.deploy.tools import tool

PROMETHEUS = REPO / "deploy" / "prometheus"
RULE_TESTS = PROMETHEUS / "rules.test.yml"
CONFIG = PROMETHEUS / "prometheus.yml"
RUNBOOK = PROMETHEUS / "RUNBOOK.md"
CONTAINER_RULES = "/etc/prometheus/rules.yml"


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"] for rule in group["rules"]]


def alerts() -> list[dict]:
    return [rule for rule in rules() if "alert" in rule]


def passed(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == 0


def test_rules_are_valid() -> None:
    result = run_promtool("check", "rules", RULES)
    assert passed(result), result.stdout + result.stderr


def test_alert_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", RULE_TESTS)
    assert passed(result), result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_config_is_valid(tmp_path: Path) -> None:
    """The config names the rules by their path in the container: check a copy pointing at the repo's."""
    text = CONFIG.read_text(encoding="utf-8")
    assert CONTAINER_RULES in text
    config = tmp_path / "prometheus.yml"
    config.write_text(text.replace(CONTAINER_RULES, str(RULES)), encoding="utf-8")
    result = run_promtool("check", "config", config)
    assert passed(result), result.stdout + result.stderr
    assert "1 rule files found" in result.stdout
    scraped = {job["job_name"]: job for job in yaml.safe_load(text)["scrape_configs"]}
    assert scraped["embed-server"]["static_configs"][0]["targets"] == ["embed-server:8000"]
    assert "prometheus" in scraped


def test_a_planted_syntax_error_is_caught(tmp_path: Path) -> None:
    broken = tmp_path / "rules.yml"
    text = RULES.read_text(encoding="utf-8")
    planted = text.replace("expr: embed_ready == 0", "expr: sum by (job (embed_ready) == 0", 1)
    assert planted != text
    broken.write_text(planted, encoding="utf-8")
    result = run_promtool("check", "rules", broken)
    assert not passed(result)
    assert "parse error" in result.stdout + result.stderr
    assert not passed(check_exprs(["rate(embed_requests_total[5m]"]))


def test_the_unit_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    """The fast page made 10x less sensitive: the outage test must notice."""
    text = RULES.read_text(encoding="utf-8")
    mutated = text.replace("ratio_rate1h > 14.4 * 0.001", "ratio_rate1h > 14.4 * 0.01", 1)
    assert mutated != text
    (tmp_path / "rules.yml").write_text(mutated, encoding="utf-8")
    suite = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    suite["tests"] = [test for test in suite["tests"] if test["name"].startswith("availability, total outage")]
    assert suite["tests"]
    (tmp_path / RULE_TESTS.name).write_text(yaml.safe_dump(suite), encoding="utf-8")
    result = run_promtool("test", "rules", tmp_path / RULE_TESTS.name)
    assert not passed(result)
    assert "EmbedServerAvailabilityBudgetBurn" in result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_silent() -> None:
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
             for case in test.get("alert_rule_test", [])]  # fmt: skip
    fires = {case["alertname"] for case in cases if case.get("exp_alerts")}
    silent = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    names = {alert["alert"] for alert in alerts()}
    assert names - fires == set(), "alerts never shown firing"
    assert names - silent == set(), "alerts never shown silent"
    burns = {(case["alertname"], alert["exp_labels"]["window"]) for case in cases
             for alert in case.get("exp_alerts", []) if "window" in alert["exp_labels"]}  # fmt: skip
    windows = {(alert["alert"], alert["labels"]["window"]) for alert in alerts() if "window" in alert["labels"]}
    assert windows - burns == set(), "burn-rate windows never shown firing"


def test_alerts_have_severity_annotations_and_a_runbook_section() -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text(encoding="utf-8").splitlines()
        if line.startswith("## ")
    }
    for alert in alerts():
        assert alert["labels"]["severity"] in {"page", "ticket", "warning"}, alert["alert"]
        annotations = alert["annotations"]
        assert {"summary", "description", "runbook_url"} <= annotations.keys(), alert["alert"]
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert path == "deploy/prometheus/RUNBOOK.md"
        assert anchor == alert["alert"].lower() and anchor in headings, alert["alert"]


def test_the_job_is_named_in_one_place() -> None:
    """Only the embed_server:up recording rule selects by job; everything else by metric name."""
    with_job = [rule.get("record") or rule.get("alert") for rule in rules() if re.search(r"\bjob\s*=", rule["expr"])]
    assert with_job == ["embed_server:up"]


def test_yaml_is_lint_clean() -> None:
    result = subprocess.run(
        [tool("yamllint"), "--strict", "deploy/prometheus", "deploy/grafana"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (namespace, job) (rate(a_total{status=~"5..|429"}[5m]) or 0 * rate(a_total[5m]))', {"a_total"}),
        ('histogram_quantile(0.99, sum(rate(h_bucket{le!="+Inf"}[$__x])) by (le))', {"h_bucket"}),
        ("x:y:rate5m > 14.4 * 0.001 and on (job) group_left (model) info offset 5m", {"x:y:rate5m", "info"}),
        ("count(up == 0) unless absent(b) or vector(1) > bool Inf", {"up", "b"}),
        ('{__name__="c_total", job="x"} / ignoring(instance) d[1h:5m]', {"c_total", "d"}),
        ('label_replace(e, "dst", "$1", "src", "(by|on)")', {"e"}),
    ],
)
def test_metric_names_are_found_in_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.fixture(scope="module")
def exported(minilm_server) -> set[str]:  # type: ignore[no-untyped-def]
    return scrape_exported_names(minilm_server)


def test_rules_use_only_metrics_the_server_exports(exported: set[str]) -> None:
    exprs = {rule.get("record") or rule["alert"] + str(rule["labels"]): rule["expr"] for rule in rules()}
    assert unknown_names(exprs, exported) == {}
    assert unknown_names({"planted": "rate(embed_request_total[5m])"}, exported) == {"planted": {"embed_request_total"}}
    used = set().union(*map(metric_names, exprs.values()))
    assert {"embed_requests_total", "embed_request_duration_seconds_bucket", "embed_ready"} <= used & exported
