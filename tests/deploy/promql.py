"""Metric names a deployment may query: photcal's own (documented in
deploy/README.md, "Metrics") and the few from Prometheus and the NATS exporter,
plus a small PromQL scanner that lists the metric names an expression uses."""

from __future__ import annotations

import re

#: family name -> type, as the services register them (prometheus_client)
PHOTCAL_METRICS = {
    "photcal_http_requests": "counter",
    "photcal_http_request_duration_seconds": "histogram",
    "photcal_db_operation_duration_seconds": "histogram",
    "photcal_uploads": "counter",
    "photcal_calibrate_redeliveries": "counter",
    "photcal_dead_letters": "counter",
    "photcal_calibrate_retries": "counter",
    "photcal_calibrate_in_flight": "gauge",
    "photcal_calibrate_consumer_pending": "gauge",
    "photcal_calibration_stage_duration_seconds": "histogram",
    "photcal_catalog_cone_duration_seconds": "histogram",
    "photcal_catalog_cone_requests": "counter",
    "photcal_gateway_uploads": "counter",
    "photcal_gateway_frames_in_flight": "gauge",
    "photcal_gateway_parse_duration_seconds": "histogram",
    "photcal_gateway_rate_limited": "counter",
    "photcal_gateway_db_fallbacks": "counter",
    "photcal_photometry_frames": "counter",
    "photcal_photometry_in_flight": "gauge",
    "photcal_photometry_consumer_pending": "gauge",
    "photcal_photometry_frame_pixels": "histogram",
    "photcal_photometry_extraction_seconds": "histogram",
    "photcal_photometry_solve_seconds": "histogram",
    "photcal_recalibration_tasks": "counter",
    "photcal_recalibration_retries": "counter",
    "photcal_recalibrate_consumer_pending": "gauge",
    "photcal_intake_feed_last_success_timestamp_seconds": "gauge",
    "photcal_intake_feed_interval_seconds": "gauge",
    "photcal_intake_feed_polls": "counter",
    "photcal_intake_feed_failures": "counter",
    "photcal_intake_alerts": "counter",
    "photcal_notify_events": "counter",
    "photcal_notify_consumer_pending": "gauge",
    "photcal_notify_deliveries": "counter",
    "photcal_notify_deliveries_pending": "gauge",
    "photcal_notify_post_duration_seconds": "histogram",
}

#: not ours, documented in deploy/README.md: Prometheus' own `up`, and the
#: prometheus-nats-exporter sidecar's JetStream consumer gauges (-jsz=all)
EXTERNAL_METRICS = {
    "up",
    "jetstream_consumer_num_pending",
    "jetstream_consumer_num_ack_pending",
    "jetstream_consumer_num_redelivered",
}

_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "gauge": ("",)}


def sample_names() -> set[str]:
    """Every series name the photcal families expose, as Prometheus stores them."""
    out = set()
    for family, kind in PHOTCAL_METRICS.items():
        for suffix in _SUFFIXES[kind]:
            out.add(family + suffix)
    return out


ALLOWED = sample_names() | EXTERNAL_METRICS

_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
    "atan2",
    # aggregations that may be written `sum by (x) (...)`, i.e. not directly followed by "("
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "limitk",
    "limit_ratio",
}


def metric_names(expr: str) -> set[str]:
    """Metric (or recording-rule) names used in a PromQL expression.

    Good enough for our rules and dashboards: removes strings, label matchers,
    ranges, grouping clauses and Grafana variables, then keeps the identifiers
    that are not functions, keywords or numbers.
    """
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    s = re.sub(r"\$\{?\w+\}?", "1", s)  # Grafana variables ($__rate_interval, ${x})
    s = re.sub(r"\{[^}]*\}", "", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", "", s)  # ranges and subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", s):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names
