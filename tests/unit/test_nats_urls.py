"""``PHOTCAL_NATS_URL`` names one server or a cluster's nodes, comma-separated (deploy/k8s overlays/prod)."""

import pytest

from shared.natsio import server_urls


def test_a_cluster_url_is_every_node_in_order():
    url = "nats://nats-0.nats:4222, nats://nats-1.nats:4222,nats://nats-2.nats:4222"
    assert server_urls(url) == ["nats://nats-0.nats:4222", "nats://nats-1.nats:4222", "nats://nats-2.nats:4222"]


def test_one_server_is_a_list_of_one():
    assert server_urls("nats://127.0.0.1:4222") == ["nats://127.0.0.1:4222"]


def test_an_empty_url_says_what_to_give():
    with pytest.raises(ValueError, match="comma-separated"):
        server_urls(" , ")
