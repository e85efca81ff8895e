"""The Helm chart renders with real Helm, every manifest validates against the Kubernetes
schemas, and values.schema.json refuses bad values.

Helm itself comes from PyPI: helm-python-sdk binds Helm's Go SDK (v4) as a C library, so no
`helm` binary is needed; kubernetes-validate holds the Kubernetes OpenAPI schemas (strict mode
also refuses unknown fields, as kubeconform -strict does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

helm = pytest.importorskip("helm_python", reason="helm-python-sdk (test extra) is missing")
kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is missing")

CHART = Path(__file__).resolve().parents[2] / "charts" / "kilde"
KUBE_VERSIONS = ("1.29.0", "1.33.0")
EVERYTHING_ON: dict[str, Any] = {
    "autoscaling": {"enabled": True}, "networkPolicy": {"enabled": True},
    "podDisruptionBudget": {"enabled": True}, "allowlist": {"enabled": True},
    "otlpEndpoint": "http://otel-collector:4318",
}
EVERYTHING_OFF: dict[str, Any] = {
    "autoscaling": {"enabled": False}, "networkPolicy": {"enabled": False},
    "podDisruptionBudget": {"enabled": False}, "redis": {"enabled": False},
    "postgresql": {"enabled": False}, "secretEnv": {}, "replicaCount": 1,
    "config": {"MODE": "production", "AUDIT__URL": "sqlite:////data/audit.sqlite3"},
}


def _render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name="kilde", namespace="helse")
    docs = []
    for path, text in rendered.items():
        if not path.endswith(".yaml"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def _kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind)


@pytest.mark.parametrize("values", [None, EVERYTHING_ON, EVERYTHING_OFF],
                         ids=["defaults", "everything-on", "everything-off"])
@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(
        values: dict[str, Any] | None, kube: str) -> None:
    docs = _render(values)
    assert docs
    for doc in docs:
        kv.validate(doc, kube, strict=True)  # raises ValidationError naming the field


def test_defaults_render_the_production_set_of_resources() -> None:
    kinds = sorted(d["kind"] for d in _render())
    assert kinds == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy",
                     "PodDisruptionBudget", "Service"]
    assert "HorizontalPodAutoscaler" not in {d["kind"] for d in _render(EVERYTHING_OFF)}


def test_pod_runs_as_non_root_on_a_read_only_root_filesystem_with_health_probes() -> None:
    deployment = _kind(_render(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]["cpu"]
    assert pod["terminationGracePeriodSeconds"] > 20  # uvicorn drains for up to 20 s


def test_secrets_are_referenced_never_inlined() -> None:
    docs = _render()
    env = _kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env}
    assert refs["KILDE_CACHE__KEY"] == {"name": "kilde-keys", "key": "cache-key"}
    assert "KILDE_AUDIT__URL" in refs
    assert not any(d["kind"] == "Secret" for d in docs)
    config = _kind(docs, "ConfigMap")["data"]
    assert "KILDE_CACHE__KEY" not in config
    assert config["KILDE_CONNECTORS__PLL__BASE_URL"].startswith("https://")
    assert config["KILDE_MODE"] == "production"


def test_helseid_keys_are_mounted_read_only_from_a_secret_at_the_configured_paths() -> None:
    docs = _render()
    pod = _kind(docs, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "helseid-keys")
    assert volume["secret"]["secretName"] == "kilde-helseid"
    assert volume["secret"]["defaultMode"] == 0o400
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "helseid-keys")
    assert mount["readOnly"] is True
    config = _kind(docs, "ConfigMap")["data"]
    for variable, item in (("KILDE_HELSEID__CLIENT_KEY", "client.pem"),
                           ("KILDE_HELSEID__DPOP_KEY", "dpop.pem")):
        assert config[variable] == f"{mount['mountPath']}/{item}"
        assert {"key": item, "path": item} in volume["secret"]["items"]
    assert config["KILDE_CONNECTORS__KJERNEJOURNAL__AUDIENCE"] == "nhn:kjernejournal"


def test_rendered_configmap_is_accepted_by_kildes_own_settings_parser() -> None:
    from gateway.settings import Settings

    config = _kind(_render(), "ConfigMap")["data"]
    env = {**config, "KILDE_CACHE__KEY": "x" * 32, "KILDE_AUDIT__URL": "postgresql://k@db/k"}
    settings = Settings.from_env(env)
    assert settings.production
    assert settings.rate_limit.requests == 600
    assert settings.helseid.client_id == "kilde"
    assert all(settings.connectors[n].audience for n in settings.enabled_connectors)


@pytest.mark.parametrize("bad", [
    {"replicaCount": "three"},
    {"image": {"tag": ""}},
    {"connectors": {"pll": {"baseUrl": "ftp://nope"}}},
    {"secretEnv": {"KILDE_CACHE__KEY": "an-inline-secret"}},
    {"config": {"MODE": "yolo"}},
    {"replicas": 3},
    {"terminationGracePeriodSeconds": 5},
    {"helseid": {"issuer": "ftp://sts"}},
    {"helseid": {"dpopKeyFile": "../etc/passwd"}},
    {"connectors": {"pll": {"grant": "password"}}},
])
def test_values_schema_rejects_a_bad_values_file(bad: dict[str, Any]) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError):
        chart.validate_schema(chart.merge_values(bad))


def test_helm_lint_finds_no_errors() -> None:
    report = helm.lint(CHART, strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_dockerfile_runs_as_non_root_and_serves_in_production_mode() -> None:
    text = (CHART.parents[1] / "Dockerfile").read_text()
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in ("0", "root")
    assert "KILDE_MODE=production" in text
    assert '"serve"' in text
