"""Prometheus metrics shared by every service (each service adds its own)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

HTTP_REQUESTS = Counter(
    "photcal_http_requests_total",
    "HTTP requests answered, by route template and status code",
    ["service", "route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "photcal_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["service", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DB_LATENCY = Histogram(
    "photcal_db_operation_duration_seconds",
    "Time of a database operation",
    ["service", "operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
)


def render() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
