"""The NATS configuration as deployed: it parses, it has the read-only subscriber, and the opt-in
component ``nats-subscribers`` opens NATS's WebSocket and nothing else."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import yaml

from tests.deploy.test_manifests import GATEWAY, K8S, build, kubectl, named, of_kind, pod_specs, selects
from tools.infra import venv_binary


def _nats_config_files(tmp_path: Path, overlay: str) -> Path:
    """The ConfigMap nats-config of the built overlay, written out as the pods mount it."""
    [config] = [c for c in of_kind(build(overlay), "ConfigMap") if c["metadata"]["name"].startswith("nats-config")]
    for name, text in config["data"].items():
        (tmp_path / name).write_text(text)
    return tmp_path / "nats.conf"


def test_the_deployed_nats_config_is_valid_with_the_secret_passwords_and_not_without(tmp_path):
    conf = _nats_config_files(tmp_path, "prod")
    env = os.environ | {"SERVER_NAME": "nats-0", "PHOTCAL_NATS_PASSWORD": "p", "SUBSCRIBER_NATS_PASSWORD": "s"}
    ok = subprocess.run([venv_binary("nats-server"), "-t", "-c", str(conf)], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    env.pop("SUBSCRIBER_NATS_PASSWORD")
    missing = subprocess.run(
        [venv_binary("nats-server"), "-t", "-c", str(conf)], env=env, capture_output=True, text=True
    )
    assert missing.returncode != 0 and "SUBSCRIBER_NATS_PASSWORD" in missing.stdout + missing.stderr


def test_the_nats_pods_get_both_passwords_from_the_secret():
    nats = named(build("prod"), "StatefulSet", "nats")["spec"]["template"]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in nats["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs == {
        "PHOTCAL_NATS_PASSWORD": {"name": "nats-users", "key": "photcal-password"},
        "SUBSCRIBER_NATS_PASSWORD": {"name": "nats-users", "key": "subscriber-password"},
    }


#: photcal pods that do not use NATS (services/intake: ServiceSpec uses_nats=False)
WITHOUT_NATS = {"photcal-intake"}


def test_every_photcal_pod_logs_in_to_nats_with_the_secret_url():
    for owner, meta, pod in pod_specs(build("prod")):
        if (
            meta.get("labels", {}).get("app.kubernetes.io/name") != "photcal"
            or owner["metadata"]["name"] in WITHOUT_NATS
        ):
            continue
        for container in pod["containers"]:
            urls = [e for e in container.get("env", []) if e["name"] == "PHOTCAL_NATS_URL"]
            assert urls == [
                {
                    "name": "PHOTCAL_NATS_URL",
                    "valueFrom": {"secretKeyRef": {"name": "photcal-secrets", "key": "nats-url"}},
                }
            ], owner["metadata"]["name"]


def test_the_subscribers_component_opens_only_the_websocket_of_nats(tmp_path):
    overlay = tmp_path / "with-subscribers"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        textwrap.dedent(
            f"""\
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            resources: [{os.path.relpath(K8S / "overlays" / "prod", overlay)}]
            components: [{os.path.relpath(K8S / "components" / "nats-subscribers", overlay)}]
            """
        )
    )
    out = subprocess.run([kubectl(), "kustomize", str(overlay)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    backends = {
        (p["backend"]["service"]["name"], p["backend"]["service"]["port"]["name"])
        for ing in of_kind(docs, "Ingress")
        for rule in ing["spec"]["rules"]
        for p in rule["http"]["paths"]
    }
    assert backends == {(GATEWAY, "http"), ("nats", "websocket")}
    nats_service = named(docs, "Service", "nats")
    assert {"name": "websocket", "port": 8443, "targetPort": "websocket"} in nats_service["spec"]["ports"]
    nats_labels = named(docs, "StatefulSet", "nats")["spec"]["template"]["metadata"]["labels"]
    open_to_anyone = {
        port["port"]
        for policy in of_kind(docs, "NetworkPolicy")
        if selects(policy["spec"]["podSelector"], nats_labels)
        for rule in policy["spec"].get("ingress", [])
        if not rule.get("from")
        for port in rule.get("ports", [])
    }
    assert open_to_anyone == {8443}
