"""The monitoring files in deploy/monitoring/: valid for promtool, and naming only real metrics.

promtool comes from Debian's ``prometheus`` package (.ci/run installs it);
without it the promtool tests are skipped locally and fail in CI.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from federation.runtime.clock import utc_now
from federation.runtime.metrics import NodeMetrics
from federation.store.database import Database
from federation.store.migrate import upgrade
from tests.conftest import in_ci

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
ALERTS = MONITORING / "hfed-alerts.yml"
DASHBOARD = MONITORING / "hfed-dashboard.json"

#: The samples a family exports besides (or instead of) its own name.
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}


def promtool() -> str:
    """The promtool binary (skipped without one, failed in CI)."""
    found = shutil.which("promtool")
    if found is None:
        message = "promtool not found (apt-get install -y --no-install-recommends prometheus)"
        if in_ci():
            pytest.fail(f"CI must check the alert rules: {message}", pytrace=False)
        pytest.skip(message)
    return found


def run_promtool(*args: str) -> None:
    """``promtool ARGS`` in the monitoring folder; its output when it fails."""
    done = subprocess.run(
        [promtool(), *args], check=False, cwd=MONITORING, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_alert_rules_check() -> None:
    run_promtool("check", "rules", ALERTS.name)


def test_alert_rules_unit_tests() -> None:
    run_promtool("test", "rules", "hfed-alerts.test.yml")


def test_example_prometheus_config_checks() -> None:
    run_promtool("check", "config", "prometheus.yml")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> frozenset[str]:
    """Every sample name a node's registry exports (with the store's gauges)."""
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('metrics') / 'node.db'}")
    try:
        upgrade(db)
        metrics = NodeMetrics()
        metrics.watch_store(db, timedelta(hours=72))
        # As the node's upkeep does: both lifetimes known, a key to sign with.
        soon = utc_now() + timedelta(days=30)
        metrics.watch_lifetimes(lambda: {"roster": soon, "TLS certificate": soon}, lambda: True)
        names = set()
        for family in metrics.registry.collect():
            names.add(family.name)
            names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
    finally:
        db.dispose()
    return frozenset(names)


def named_metrics(expr: str) -> set[str]:
    """The hfed metric names in a PromQL expression (label names never start with hfed_)."""
    return set(re.findall(r"\bhfed_[a-zA-Z0-9_]+", expr))


def dashboard_exprs(node: Any) -> Iterator[str]:
    """Every target expression and variable query of the dashboard."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"expr", "definition"} and isinstance(value, str):
                yield value
            else:
                yield from dashboard_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_exprs(item)


def test_dashboard_names_only_exported_metrics(exported: frozenset[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = list(dashboard_exprs(dashboard))
    assert len(exprs) >= 15
    for expr in exprs:
        names = named_metrics(expr)
        assert names, f"no hfed metric in {expr!r}"
        assert names <= exported, f"{expr!r} names {sorted(names - exported)}"


def test_dashboard_panels_have_queries() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queried = [p for p in panels if p["type"] != "row"]
    assert queried and all(p["targets"] and p["title"] for p in queried)
    assert len({p["id"] for p in panels}) == len(panels)


def alert_rules() -> dict[str, str]:
    """Each alert's block of the rules file by name (no YAML parser among the
    dependencies; promtool checks the structure, this reads the text)."""
    blocks = re.split(r"^\s*- alert: ", ALERTS.read_text(), flags=re.MULTILINE)[1:]
    return {block.split("\n", 1)[0].strip(): block for block in blocks}


def test_alerts_name_only_exported_metrics(exported: frozenset[str]) -> None:
    rules = alert_rules()
    assert len(rules) >= 9
    for name, block in rules.items():
        assert "summary:" in block and "description:" in block, name
        assert re.search(r"severity: (warning|critical)\n", block), name
        expr = re.search(r"^\s*expr: (.+)$", block, flags=re.MULTILINE)
        assert expr, name
        names = named_metrics(expr.group(1))
        assert names <= exported, f"{name} names {sorted(names - exported)}"
        assert names or expr.group(1).startswith("up{"), name
