"""docs/grafana-dashboard.json: its expressions name only the metrics the
two planes expose (the list in the issue's shared spec, copied below), and
they parse as PromQL."""

import json
import re
import shutil
import subprocess

import pytest
import yaml

from chartlib import ROOT

DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"

HISTOGRAMS = {
    # data plane
    "gen_ai_server_request_duration_seconds",
    "gen_ai_server_time_to_first_token_seconds",
    "gen_ai_server_time_per_output_token_seconds",
    "gen_ai_client_token_usage",
    # control plane
    "ccag_admin_api_request_duration_seconds",
    "ccag_config_push_duration_seconds",
    "ccag_usage_ingest_lag_seconds",
}
SERIES = {
    # data plane
    "ccag_http_requests_total", "ccag_inference_requests_total", "ccag_rate_limit_refusals_total",
    "ccag_budget_refusals_total", "ccag_bedrock_attempts_total", "ccag_requests_in_flight",
    "ccag_connections_open", "ccag_streams_open", "ccag_config_revision", "ccag_config_age_seconds",
    "ccag_control_plane_connected", "ccag_usage_spool_bytes", "ccag_usage_spool_oldest_age_seconds",
    "ccag_usage_records_dropped_total", "ccag_draining",
    # control plane
    "ccag_admin_api_requests_total", "ccag_dataplanes_connected", "ccag_config_nacks_total",
    "ccag_usage_records_ingested_total", "ccag_notification_deliveries_total", "ccag_db_pool_connections",
    "ccag_db_pool_max_connections", "ccag_leader",
    # both
    "ccag_build_info", "process_cpu_seconds_total", "process_resident_memory_bytes",
}
KNOWN = SERIES | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
# Labels each metric carries (the spec's), for the by()/{} clauses.
LABELS = {
    "gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type", "endpoint",
    "error_type", "route", "status_class", "outcome", "scope", "result", "service", "method", "code", "channel",
    "state", "version", "plane", "le", "reason",
    # added by Prometheus
    "job", "instance",
}
PROMQL_WORDS = {
    "sum", "by", "rate", "increase", "histogram_quantile", "max", "min", "count", "avg", "on", "ignoring",
    "group_left", "group_right", "without", "label_values", "bool", "and", "or", "unless", "offset",
}


def dashboard():
    return json.loads(DASHBOARD.read_text())


def panels(d):
    for p in d["panels"]:
        yield p
        yield from p.get("panels", [])


def expressions(d):
    for p in panels(d):
        for t in p.get("targets", []):
            yield p["title"], t["expr"]
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            yield v["name"], v["definition"]


def identifiers(expr):
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    stripped = re.sub(r"\[[^\]]*\]", "", stripped)  # ranges
    stripped = re.sub(r"\$\w+", "", stripped)  # Grafana variables
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", stripped))


def metric_names(expr):
    return {w for w in identifiers(expr) if w not in PROMQL_WORDS and w not in LABELS}


def test_the_dashboard_names_only_metrics_from_the_spec():
    used = set()
    for title, expr in expressions(dashboard()):
        names = metric_names(expr)
        assert names, (title, expr)
        unknown = names - KNOWN
        assert not unknown, f"{title}: {sorted(unknown)} in {expr}"
        used |= names
    # Every panel the issue asks for has its metric.
    for needed in ("ccag_http_requests_total", "gen_ai_server_request_duration_seconds_bucket",
                   "gen_ai_server_time_to_first_token_seconds_bucket", "gen_ai_client_token_usage_sum",
                   "ccag_bedrock_attempts_total", "ccag_streams_open", "ccag_requests_in_flight",
                   "ccag_config_revision", "ccag_config_age_seconds", "ccag_usage_spool_bytes",
                   "ccag_usage_spool_oldest_age_seconds", "ccag_admin_api_requests_total",
                   "ccag_dataplanes_connected", "ccag_usage_ingest_lag_seconds_bucket",
                   "ccag_notification_deliveries_total", "ccag_db_pool_connections"):
        assert needed in used, needed


def test_the_metric_check_can_fail():
    assert metric_names('sum(rate(ccag_requests_total{job=~"$dp_job"}[5m]))') - KNOWN == {"ccag_requests_total"}


def test_quantiles_are_taken_over_bucket_series_by_le():
    quantiles = [e for _, e in expressions(dashboard()) if "histogram_quantile" in e]
    assert len(quantiles) >= 8
    for e in quantiles:
        assert re.search(r"sum by \(le(, \w+)?\) \(rate\(\w+_bucket\{", e), e


def test_the_dashboard_has_a_prometheus_datasource_variable_and_a_current_schema():
    d = dashboard()
    assert d["schemaVersion"] >= 39
    (ds,) = [v for v in d["templating"]["list"] if v["type"] == "datasource"]
    assert (ds["name"], ds["query"]) == ("datasource", "prometheus")
    for p in panels(d):
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            for t in p["targets"]:
                assert t["datasource"]["uid"] == "${datasource}"
    ids = [p["id"] for p in panels(d)]
    assert len(ids) == len(set(ids))


def test_panels_do_not_overlap():
    seen = set()
    for p in panels(dashboard()):
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & seen, p["title"]
        seen |= cells


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian prometheus) is not installed")
def test_every_expression_parses_as_promql(tmp_path):
    # promtool checks PromQL in rule files; Grafana's variables are replaced
    # with what they expand to.
    subst = {"$__rate_interval": "5m", "$dp_job": ".*", "$cp_job": ".*", "$model": ".*"}
    rules = []
    for i, (title, expr) in enumerate(expressions(dashboard())):
        if expr.startswith("label_values("):
            continue
        for k, v in subst.items():
            expr = expr.replace(k, v)
        assert "$" not in expr, (title, expr)
        rules.append({"record": f"dashboard:expr_{i}", "expr": expr})
    f = tmp_path / "rules.yaml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    p = subprocess.run(["promtool", "check", "rules", str(f)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
