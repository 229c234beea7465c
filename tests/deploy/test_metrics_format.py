"""Every service's /metrics body is valid Prometheus text and carries the
documented families (the ones deploy/prometheus/rules.yml and the Grafana
dashboard query). The services share one process-wide registry per process:
importing their metric modules here gives the union of what they expose."""

from __future__ import annotations

import importlib

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.promql import PHOTCAL_METRICS, sample_names

MODULES = {
    "shared": "shared.metrics",
    "calibrate": ["services.calibrate.worker", "services.calibrate.pipeline", "services.calibrate.recalibrate"],
    "photometry": ["services.photometry.worker", "services.photometry.measure"],
    "catalog": "services.catalog.handlers",
    "ingest": "services.ingest.uploads",
    "intake": "services.intake.poller",
    "notify": ["services.notify.consumer", "services.notify.sender"],
}
#: the families each service adds to the shared ones
BY_MODULE = {
    "shared.metrics": {
        "photcal_http_requests",
        "photcal_http_request_duration_seconds",
        "photcal_db_operation_duration_seconds",
    },
    "services.calibrate.worker": {
        "photcal_uploads",
        "photcal_calibrate_redeliveries",
        "photcal_calibrate_retries",
        "photcal_calibrate_in_flight",
        "photcal_calibrate_consumer_pending",
    },
    "services.calibrate.pipeline": {"photcal_calibration_stage_duration_seconds"},
    "services.calibrate.recalibrate": {
        "photcal_recalibration_tasks",
        "photcal_recalibration_retries",
        "photcal_recalibrate_consumer_pending",
    },
    "services.ingest.frameslots": {"photcal_gateway_frames_in_flight"},
    "shared.dead_letters": {"photcal_dead_letters"},
    "services.photometry.worker": {
        "photcal_photometry_frames",
        "photcal_photometry_in_flight",
        "photcal_photometry_consumer_pending",
    },
    "services.photometry.measure": {
        "photcal_photometry_frame_pixels",
        "photcal_photometry_extraction_seconds",
        "photcal_photometry_solve_seconds",
    },
    "services.catalog.handlers": {"photcal_catalog_cone_duration_seconds", "photcal_catalog_cone_requests"},
    "services.ingest.uploads": {"photcal_gateway_uploads", "photcal_gateway_parse_duration_seconds"},
    "services.ingest.ratelimit": {"photcal_gateway_rate_limited"},
    "services.ingest.cache": {"photcal_gateway_db_fallbacks"},
    "services.intake.poller": {
        "photcal_intake_feed_last_success_timestamp_seconds",
        "photcal_intake_feed_interval_seconds",
        "photcal_intake_feed_polls",
        "photcal_intake_feed_failures",
        "photcal_intake_alerts",
    },
    "services.notify.consumer": {"photcal_notify_events", "photcal_notify_consumer_pending"},
    "services.notify.sender": {
        "photcal_notify_deliveries",
        "photcal_notify_deliveries_pending",
        "photcal_notify_post_duration_seconds",
    },
}


@pytest.fixture(scope="module")
def modules():
    return {name: importlib.import_module(name) for name in BY_MODULE}


def parse(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_documented_list_is_complete():
    assert set().union(*BY_MODULE.values()) == set(PHOTCAL_METRICS)


def test_metrics_output_parses_with_documented_families(modules):
    body = generate_latest(REGISTRY).decode()
    families = parse(body)
    for module, expected in BY_MODULE.items():
        for name in expected:
            assert name in families, f"{name} (from {module}) not in /metrics"
            assert families[name].type == PHOTCAL_METRICS[name], name
    # the text parser reports prometheus_client's *_created timestamps as families of their own
    photcal = {n for n in families if n.startswith("photcal_") and not n.endswith("_created")}
    assert photcal == set(PHOTCAL_METRICS), f"undocumented metrics: {sorted(photcal - set(PHOTCAL_METRICS))}"


def test_shared_render_is_prometheus_text(modules):
    body, content_type = modules["shared.metrics"].render()
    assert content_type.startswith("text/plain;"), content_type  # the text exposition format
    parse(body.decode())


def test_metrics_with_samples_parse_and_use_documented_names(modules):
    """Observe one value in every family, as a running service would, then
    check every sample's name and labels as Prometheus will store them."""
    m = modules
    shared, worker, pipeline = m["shared.metrics"], m["services.calibrate.worker"], m["services.calibrate.pipeline"]
    catalog, uploads = m["services.catalog.handlers"], m["services.ingest.uploads"]
    shared.HTTP_REQUESTS.labels("deploytest", "/cgi/upload", "POST", "200").inc()
    shared.HTTP_LATENCY.labels("deploytest", "/cgi/upload").observe(0.2)
    shared.DB_LATENCY.labels("deploytest", "insert").observe(0.003)
    worker.UPLOADS.labels("ok").inc(0)
    worker.RETRIES.labels("database").inc(0)
    worker.REDELIVERIES.inc(0)
    m["shared.dead_letters"].DEAD_LETTERS.inc(0)
    m["services.photometry.worker"].FRAMES.labels("measured").inc(0)
    pipeline.STAGE_DURATION.labels("fit").observe(0.01)
    catalog.CONE_LATENCY.observe(0.02)
    catalog.CONE_REQUESTS.labels("ok").inc(0)
    uploads.ACCEPTED.labels("accepted").inc(0)
    uploads.PARSE_TIME.observe(0.001)
    m["services.ingest.ratelimit"].REFUSED.labels("ip").inc(0)
    m["services.ingest.cache"].FALLBACKS.labels("observatory", "hit").inc(0)
    m["services.calibrate.recalibrate"].TASKS.labels("compute", "changed").inc(0)
    m["services.calibrate.recalibrate"].RETRIES.labels("catalog").inc(0)
    m["services.intake.poller"].FEED_FAILURES.labels("unreachable").inc(0)
    m["services.notify.consumer"].EVENTS.labels("recorded").inc(0)
    m["services.notify.sender"].DELIVERIES.labels("callback", "delivered").inc(0)
    m["services.notify.sender"].POST_SECONDS.observe(0.05)

    families = parse(generate_latest(REGISTRY).decode())
    expected_labels = {
        "photcal_http_requests": {"service", "route", "method", "status"},
        "photcal_http_request_duration_seconds": {"service", "route"},
        "photcal_db_operation_duration_seconds": {"service", "operation"},
        "photcal_uploads": {"outcome"},
        "photcal_calibrate_retries": {"reason"},
        "photcal_photometry_frames": {"outcome"},
        "photcal_calibration_stage_duration_seconds": {"stage"},
        "photcal_catalog_cone_requests": {"outcome"},
        "photcal_gateway_uploads": {"outcome"},
        "photcal_gateway_rate_limited": {"limit"},
        "photcal_gateway_db_fallbacks": {"kind", "outcome"},
        "photcal_recalibration_tasks": {"action", "outcome"},
        "photcal_recalibration_retries": {"reason"},
        "photcal_intake_feed_polls": {"outcome"},
        "photcal_intake_feed_failures": {"reason"},
        "photcal_intake_alerts": {"outcome"},
        "photcal_notify_events": {"outcome"},
        "photcal_notify_deliveries": {"kind", "outcome"},
        "photcal_notify_consumer_pending": {"consumer"},
    }
    allowed = sample_names()
    for name in PHOTCAL_METRICS:
        family = families[name]
        assert family.samples, f"{name} has no samples"
        for sample in family.samples:
            assert sample.name in allowed, sample.name
            labels = set(sample.labels) - {"le"}
            assert labels == expected_labels.get(name, set()), (sample.name, sample.labels)
            if sample.name.endswith("_bucket"):
                assert "le" in sample.labels
