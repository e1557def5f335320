"""Shared by the deployment tests: metric names in PromQL, names a server exports, promtool.

PromQL has no parser in Python here, and promtool 2.42 cannot print a parse tree, so the names are found
lexically: strings, label matchers, ranges and grouping label lists are removed first; what remains is
identifiers, of which those followed by "(" are functions or aggregations and a few are keywords.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.tools import tool

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules.yml"

# Series that Prometheus makes itself, not the server.
PROMETHEUS_MADE = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"})
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "atan2",
     "offset", "inf", "nan"}
)  # fmt: skip

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r'__name__\s*(=~|!=|!~|=)\s*("(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\')')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")
_GRAFANA_NUMBERS = re.compile(r"\$\{?__(?:range_s|range_ms|interval_ms)\b\}?")
_GRAFANA_DURATIONS = re.compile(r"\$\{?__(?:rate_interval|interval|range)\b\}?")
_GRAFANA_VARIABLE = re.compile(r"\$\{?\w+(?::\w+)?\}?")


def metric_names(expr: str) -> set[str]:
    """The metric (and recording rule) names an expression reads."""
    names: set[str] = set()
    for op, quoted in _NAME_MATCHER.findall(expr):
        if op != "=":
            raise ValueError(f"cannot resolve a __name__{op} matcher: {expr}")
        names.add(quoted[1:-1])
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    for name, call in _IDENTIFIER.findall(text):
        if not call and name.lower() not in KEYWORDS and name != "__name__":
            names.add(name)
    return names


def grafana_to_promql(expr: str) -> str:
    """A panel query with Grafana's variables replaced by values Prometheus accepts."""
    expr = _GRAFANA_NUMBERS.sub("300", expr)
    expr = _GRAFANA_DURATIONS.sub("5m", expr)
    return _GRAFANA_VARIABLE.sub(".*", expr)  # the rest are label values inside matchers


def label_values_selector(query: str) -> str:
    """The series selector of a `label_values(selector, label)` variable query."""
    match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query, flags=re.S)
    assert match, f"not a label_values(selector, label) query: {query}"
    return match.group(1)


def exported_names(exposition: str) -> set[str]:
    """Every series name the text exposition offers, families without samples included."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(sample.name for sample in family.samples)
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def scrape_exported_names(server) -> set[str]:  # type: ignore[no-untyped-def]
    """The real server's /metrics after one embedding (so that histograms have samples)."""
    server.embed(["hello"])
    response = httpx.get(server.url + "/metrics", timeout=30)
    assert response.status_code == 200
    return exported_names(response.text)


def recorded_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def unknown_names(exprs: dict[str, str], exported: set[str]) -> dict[str, set[str]]:
    """Per expression (keyed by where it is), the names neither the server, Prometheus nor a rule makes."""
    recorded = recorded_names()
    unknown = {}
    for where, expr in exprs.items():
        names = metric_names(expr) - exported - PROMETHEUS_MADE - recorded
        if names:
            unknown[where] = names
    return unknown


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *map(str, args)], capture_output=True, text=True, timeout=300, check=False)


def check_exprs(exprs: list[str]) -> subprocess.CompletedProcess[str]:
    """Parse many expressions in one promtool call, as recording rules of a throwaway file."""
    rules = [{"record": f"check:expr_{i}", "expr": expr} for i, expr in enumerate(exprs)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "exprs.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}), encoding="utf-8")
        return run_promtool("check", "rules", path)
