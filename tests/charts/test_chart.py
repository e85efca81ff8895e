"""The Helm chart renders with real Helm, every manifest validates against the Kubernetes
schemas, and values.schema.json refuses bad values.

Helm itself comes from PyPI (the `charts` extra): helm-python-sdk binds Helm's Go SDK (v4) as a C library, so no
`helm` binary is needed; kubernetes-validate holds the Kubernetes OpenAPI schemas (strict mode
also refuses unknown fields, as kubeconform -strict does).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def _chart_tool(module: str) -> ModuleType:
    """The chart tools come with the `charts` extra (`KILDE_TEST__EXTRAS=charts ./dev test`);
    without them these tests skip, saying so, except where KILDE_TEST__REQUIRE_CHARTS=1 (CI:
    .ci/run installs the extra) makes their absence a failure."""
    try:
        return importlib.import_module(module)
    except ImportError:
        message = (f"{module} is not installed: the chart tests need the `charts` extra "
                   "(KILDE_TEST__EXTRAS=charts ./dev test)")
        if os.environ.get("KILDE_TEST__REQUIRE_CHARTS") == "1":
            pytest.fail(f"{message}, and KILDE_TEST__REQUIRE_CHARTS=1 requires them.",
                        pytrace=False)
        pytest.skip(message, allow_module_level=True)


helm = _chart_tool("helm_python")
kv = _chart_tool("kubernetes_validate")
yaml = _chart_tool("yaml")  # PyYAML, which kubernetes-validate brings

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
    # `config` is described by the settings (gateway/settingsdoc.py): a typo, a secret or a
    # password in a URL is refused by the schema, before any pod starts
    {"config": {"AUTH__ISUER": "https://helseid-sts.nhn.no"}},
    {"config": {"KILDE_MODE": "production"}},
    {"config": {"CACHE__KEY": "x" * 32}},
    {"config": {"AUDIT__URL": "postgresql://kilde:hunter2@db/kilde"}},
    {"config": {"CACHE__URL": "redis://:hunter2@redis:6379/0"}},
    {"config": {"CONNECTORS__PLL__BASE_URL": "https://user:pw@pll.example/fhir"}},
    {"config": {"DEADLINE_SECONDS": "soon"}},
    {"config": {"GRAPHIQL": "maybe"}},
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


def test_a_misspelt_setting_fails_install_and_lint_naming_it() -> None:
    typo = {"config": {"AUTH__ISUER": "https://helseid-sts.nhn.no"}}
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError, match="AUTH__ISUER"):
        chart.render(typo, name="kilde", namespace="helse", is_install=True)
    report = helm.lint(CHART, typo, strict=True)
    assert any("AUTH__ISUER" in e for e in report["errors"])


def test_every_setting_of_the_definitions_is_accepted_in_config() -> None:
    from gateway.settingsdoc import settings

    names = {s.name[len("KILDE_"):] for s in settings() if s.group == "gateway" and not s.secret}
    assert "AUTH__ISSUER" in names
    with helm.Chart.load(CHART) as chart:
        for name in sorted(names):
            value = "production" if name == "MODE" else "1"
            chart.validate_schema(chart.merge_values({"config": {name: value}}))


def test_a_variable_from_a_secret_is_never_in_the_configmap() -> None:
    values = {"secretEnv": {"KILDE_AUDIT__URL": {"name": "kilde-audit", "key": "url"},
                            "KILDE_CACHE__KEY": {"name": "kilde-keys", "key": "cache-key"},
                            "KILDE_CACHE__URL": {"name": "kilde-redis", "key": "url"}},
              "config": {"AUDIT__URL": "sqlite:////data/audit.sqlite3"}}
    docs = _render(values)
    config = _kind(docs, "ConfigMap")["data"]
    assert "KILDE_AUDIT__URL" not in config  # secretEnv wins; the config value is not shown
    assert "KILDE_CACHE__URL" not in config  # Redis's URL (with its password) from the Secret
    env = _kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {e["name"] for e in env} == set(values["secretEnv"])
    assert all("value" not in e for e in env)
    # and nothing secret anywhere in what the chart renders
    for doc in docs:
        text = yaml.safe_dump(doc)
        assert "hunter2" not in text


def test_prometheus_finds_the_pods_by_annotations_or_a_servicemonitor() -> None:
    pod = _kind(_render(), "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert pod["prometheus.io/scrape"] == "true"
    assert pod["prometheus.io/path"] == "/metrics"
    assert pod["prometheus.io/port"] == "8000"
    assert not any(d["kind"] == "ServiceMonitor" for d in _render())
    docs = _render({"metrics": {"scrapeAnnotations": False,
                                "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}})
    assert "prometheus.io/scrape" not in _kind(docs, "Deployment")["spec"]["template"][
        "metadata"]["annotations"]
    monitor = _kind(docs, "ServiceMonitor")
    service = _kind(docs, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    policy = _kind(_render(EVERYTHING_ON), "NetworkPolicy")
    allowed = [s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
               for s in policy["spec"]["ingress"][0]["from"]]
    assert "monitoring" in allowed
