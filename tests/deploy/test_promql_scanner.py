"""The little PromQL scanner the rule and dashboard checks rely on."""

from tests.deploy.promql import metric_names


def test_scanner_finds_metrics_not_functions_or_labels():
    expr = (
        'sum by (service) (rate(photcal_http_requests_total{status=~"5..", route="/x"}[5m]))'
        " / on(service) group_left sum without (le) (rate(up[$__rate_interval]))"
        ' and deriv(max(photcal_calibrate_consumer_pending)[15m:1m]) > 0 or absent(up{job="a"})'
        " unless histogram_quantile(0.95, sum(rate(x_bucket[5m])) by (le)) > bool 1e3"
    )
    assert metric_names(expr) == {
        "photcal_http_requests_total",
        "up",
        "photcal_calibrate_consumer_pending",
        "x_bucket",
    }


def test_recording_rule_names_and_offsets():
    assert metric_names("photcal:http_errors:rate5m offset 5m / photcal:http_requests:rate5m") == {
        "photcal:http_errors:rate5m",
        "photcal:http_requests:rate5m",
    }
