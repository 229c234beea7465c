"""Alert rules, their unit tests, the scrape config and the Grafana dashboard.

promtool (Debian/Ubuntu: `apt-get install prometheus`) checks the rules and
runs deploy/prometheus/tests.yml when it is on PATH; the Python checks run
always.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.promql import ALLOWED, PHOTCAL_METRICS, metric_names, sample_names

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
RULES = PROM / "rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "photcal.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not on PATH (apt-get install prometheus); Python checks of the rules still ran"
)


def _rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _recorded() -> set[str]:
    return {r["record"] for r in _rules() if "record" in r}


def test_rules_structure():
    doc = yaml.safe_load(RULES.read_text())
    assert set(doc) == {"groups"}
    names = set()
    for group in doc["groups"]:
        assert group["name"] not in names, "duplicate group"
        names.add(group["name"])
        for rule in group["rules"]:
            assert ("alert" in rule) != ("record" in rule), rule
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            if "alert" in rule:
                assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"])
                assert rule["labels"]["severity"] in {"critical", "warning", "info"}
                assert rule["annotations"]["summary"]
            else:
                assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]
    alerts = {r["alert"] for r in _rules() if "alert" in r}
    # the ones the issue asks for
    assert {"PhotcalDeadLetters", "PhotcalConsumerLagGrowing", "PhotcalHighHTTPErrorRate"} <= alerts


def test_rules_use_only_known_metrics():
    allowed = ALLOWED | _recorded()
    for rule in _rules():
        used = metric_names(rule["expr"])
        assert used, f"{rule.get('alert') or rule.get('record')}: no metric found in {rule['expr']!r}"
        unknown = used - allowed
        assert not unknown, f"{rule.get('alert') or rule.get('record')} uses unknown metrics {sorted(unknown)}"


def test_dead_letters_alert_fires_on_any():
    rule = next(r for r in _rules() if r.get("alert") == "PhotcalDeadLetters")
    assert "photcal_dead_letters_total" in rule["expr"] and rule["expr"].rstrip().endswith("> 0")
    assert "for" not in rule


def test_dashboard_queries_known_metrics_and_covers_all():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"]
    exprs = []
    ids = set()

    def walk(panels):
        for p in panels:
            assert p["id"] not in ids, "duplicate panel id"
            ids.add(p["id"])
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                exprs.append(t["expr"])

    walk(dash["panels"])
    assert exprs
    used = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert not names - ALLOWED, f"unknown metrics {sorted(names - ALLOWED)} in {expr!r}"
        used |= names
    # every photcal metric family has a panel
    for family in PHOTCAL_METRICS:
        assert any(n == family or n.startswith(family + "_") for n in used), f"no panel shows {family}"
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables


def test_documented_metric_list_matches_readme():
    readme = (ROOT / "deploy" / "README.md").read_text()
    for family in PHOTCAL_METRICS:
        assert family in readme, f"{family} missing from deploy/README.md"
    for name in sample_names():
        assert name.startswith("photcal_")


@needs_promtool
def test_promtool_check_rules():
    assert PROMTOOL is not None
    out = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_promtool_test_rules():
    assert PROMTOOL is not None
    out = subprocess.run([PROMTOOL, "test", "rules", "tests.yml"], cwd=PROM, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_promtool_check_config(tmp_path):
    """The non-operator scrape config. Debian's promtool is built without the
    Kubernetes service discovery: then check the same file with a static target
    in its place, which still checks every relabelling rule and the rule file."""
    assert PROMTOOL is not None
    out = subprocess.run(
        [PROMTOOL, "check", "config", "prometheus.yml"], cwd=PROM, capture_output=True, text=True, timeout=60
    )
    if out.returncode == 0:
        return
    assert "kubernetes_sd_configs" in out.stdout + out.stderr, out.stdout + out.stderr
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs")[0]["role"] == "pod"
        job["static_configs"] = [{"targets": ["localhost:8080"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copy(RULES, tmp_path / "rules.yml")
    assert PROMTOOL is not None
    out = subprocess.run(
        [PROMTOOL, "check", "config", "prometheus.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_scrape_config_names_jobs_like_the_rules():
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert config["rule_files"] == ["rules.yml"]
    relabels = config["scrape_configs"][0]["relabel_configs"]
    targets = {r.get("replacement") for r in relabels if r.get("target_label") == "job"}
    assert targets == {"photcal-$1", "nats"}
