"""Operators' view: /metrics counters and histograms move when an upload goes through."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration import test_end_to_end
from tests.integration.test_end_to_end import FIELD, curl_upload

field_stack = test_end_to_end.field_stack  # the end-to-end module's stack, a fixture by that name here

pytestmark = pytest.mark.integration


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_an_upload_moves_the_counters_and_histograms(field_stack):
    stack, _truth, hashtag, ivorn = field_stack
    gateway, calibrate, catalog = stack.port, stack.port + 1, stack.port + 2
    before = {port: scrape(port) for port in (gateway, calibrate, catalog)}
    code, answer = curl_upload(stack, FIELD / "sex_cpcs.cat", hashtag, ivorn)
    assert code == 200, answer
    after = {port: scrape(port) for port in (gateway, calibrate, catalog)}

    def moved(port, name, **labels):
        return value(after[port], name, **labels) - value(before[port], name, **labels)

    assert moved(calibrate, "photcal_uploads_total", outcome="ok") == 1
    for stage in ("cone", "calibrate", "match", "fit", "limit"):
        assert moved(calibrate, "photcal_calibration_stage_duration_seconds_count", stage=stage) == 1
    # and the answer says where the time went, gateway and worker stages together
    stages = {
        "parse",
        "publish",
        "fetch",
        "cone",
        "match",
        "fit",
        "limit",
        "calibrate",
        "publish_to_result",
        "gateway_total",
    }
    assert stages <= answer["duration_ms"].keys(), answer["duration_ms"]
    parts = sum(answer["duration_ms"][k] for k in ("match", "fit", "limit"))
    assert parts <= answer["duration_ms"]["calibrate"] + 0.1
    assert moved(gateway, "photcal_gateway_uploads_total", outcome="accepted") == 1
    assert (
        moved(
            gateway, "photcal_http_requests_total", service="ingest", route="/cgi/upload", method="POST", status="200"
        )
        == 1
    )
    assert moved(gateway, "photcal_http_request_duration_seconds_count", service="ingest", route="/cgi/upload") == 1
    assert moved(catalog, "photcal_catalog_cone_requests_total", outcome="ok") >= 1
    assert moved(calibrate, "photcal_db_operation_duration_seconds_count", service="calibrate", operation="update") >= 1
