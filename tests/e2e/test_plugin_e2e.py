"""An external connector package over real HTTP: installed by its entry point, in the schema and
the catalogue, denied until a policy enables its category, filtered and audited like any source.

The example package (examples/kilde-velferd) is installed the way pip does it (tests/plugins.py)
next to a "broken" package whose connector raises at run time. The gateways here are real
servers on loopback, talking to the shared sandbox and to the package's own fake hub.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors import ConnectorSettings
from gateway.cli import main
from sandbox.world import by_tag
from tests.e2e.conftest import Stack
from tests.plugins import EXAMPLE, example_installed, on_path, write_distribution
from tests.servers import ServerThread, demo_app, e2e_settings, listening_socket, port_of, running

HOME_CARE = by_tag("multi-service").nin  # Oslo; a safety alarm and a medicine dispenser
NURSING_HOME = by_tag("legevakt-hlr").nin  # Oslo; night supervision, and an R-labelled GPS
BERGEN = by_tag("other-municipality").nin
POLICY = EXAMPLE / "policy.toml"
BROKEN = '''
from connectors import Category, FetchRequest, SourceResult


class Broken:
    name = "broken"
    categories = frozenset({Category.CONDITIONS})

    async def fetch(self, request: FetchRequest) -> SourceResult:
        raise RuntimeError("a bug that mentions " + request.patient_nin)

    async def aclose(self) -> None:
        pass


def create(settings, http):
    return Broken()
'''
DEVICES = """query($nin: String!) { patient(nin: $nin) {
  welfareTechnology { id status kind { code display } responseCentre responsePhone
    sensors { code } recentAlarms { code { code } raisedAt outcome }
    provenance { source recordId municipality } }
  sources { source category status detail } } }"""


class Counting:
    """Counts the requests that reach an ASGI app (the fake hub)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.count = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.count += 1
        await self.app(scope, receive, send)


class Plugged:
    def __init__(self, stack: Stack, hub: Counting, make: Any) -> None:
        self.stack = stack
        self.hub = hub
        self.make = make

    def gateway(self, **overrides: Any) -> Any:
        return self.make(**overrides)


@pytest.fixture(scope="module")
def plugged(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plugged]:
    site = tmp_path_factory.mktemp("site")
    (site / "kilde_broken.py").write_text(BROKEN)
    write_distribution(site, "kilde-broken", "0.0.1", {"broken": "kilde_broken:create"})
    with example_installed(site) as name, on_path(site):
        assert name == "velferd"
        import kilde_velferd

        hub_app = Counting(kilde_velferd.plugin.sandbox())
        with running(hub_app) as hub:

            def make(**overrides: Any) -> Any:
                sock = listening_socket()
                audit = tmp_path_factory.mktemp("audit") / "audit.sqlite3"
                settings = e2e_settings(port_of(sock), stack.sandbox.url, f"sqlite:///{audit}")
                connectors = {**settings.connectors,
                              "velferd": ConnectorSettings(
                                  "velferd", base_url=hub.url, timeout=1.0,
                                  municipalities=frozenset({"0301"})),
                              "broken": ConnectorSettings("broken", timeout=1.0)}
                settings = replace(
                    settings, connectors=connectors, policy_file=str(POLICY),
                    enabled_connectors=(*settings.enabled_connectors, "velferd", "broken"),
                    resilience=replace(settings.resilience, enabled=True))  # health
                return running(demo_app(replace(settings, **overrides)), sock)

            yield Plugged(stack, hub_app, make)


@pytest.fixture(scope="module")
def gateway(plugged: Plugged) -> Iterator[ServerThread]:
    with plugged.gateway() as server:
        yield server


def ask(plugged: Plugged, server: ServerThread, query: str, persona: str,
        patient: str | None = None, **variables: Any) -> dict[str, Any]:
    token = plugged.stack.token(persona, patient)
    response = httpx.post(f"{server.url}/graphql", json={"query": query, "variables": variables},
                          headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def rows(body: dict[str, Any], source: str) -> list[dict[str, Any]]:
    return [r for r in body["data"]["patient"]["sources"] if r["source"] == source]


def test_the_plugin_category_is_denied_until_a_policy_file_enables_it(plugged: Plugged) -> None:
    before = plugged.hub.count
    with plugged.gateway(policy_file="") as server:
        body = ask(plugged, server, DEVICES, "hjemmesykepleier", HOME_CARE, nin=HOME_CARE)
    assert body["data"]["patient"]["welfareTechnology"] == []
    denied = [e for e in body["errors"] if e["extensions"].get("category") == "welfare_technology"]
    assert denied[0]["extensions"]["code"] == "FORBIDDEN"
    assert denied[0]["extensions"]["reason"] == "CATEGORY_NOT_CONFIGURED"
    assert rows(body, "velferd") == [{"source": "velferd", "category": "WELFARE_TECHNOLOGY",
                                      "status": "DENIED", "detail": "CATEGORY_NOT_CONFIGURED"}]
    assert plugged.hub.count == before  # a denied section is not fetched


def test_the_policy_file_opens_the_plugin_category(plugged: Plugged, gateway: ServerThread
                                                   ) -> None:
    body = ask(plugged, gateway, DEVICES, "hjemmesykepleier", HOME_CARE, nin=HOME_CARE)
    devices = {d["id"]: d for d in body["data"]["patient"]["welfareTechnology"]}
    assert sorted(devices) == ["vt-1", "vt-2"]
    alarm = devices["vt-1"]
    assert alarm["kind"] == {"code": "trygghetsalarm", "display": "Trygghetsalarm"}
    assert alarm["responsePhone"] == "+47 21 00 00 01"
    assert alarm["sensors"] == [{"code": "fall"}]
    assert [a["code"]["code"] for a in alarm["recentAlarms"]] == ["fall-detected",
                                                                   "button-pressed"]
    assert alarm["provenance"] == {"source": "velferd", "recordId": "vt-1",
                                   "municipality": "0301"}
    assert rows(body, "velferd") == [{"source": "velferd", "category": "WELFARE_TECHNOLOGY",
                                      "status": "OK", "detail": None}]


def test_a_profession_the_policy_leaves_out_is_denied_the_plugin_category(
        plugged: Plugged, gateway: ServerThread) -> None:
    body = ask(plugged, gateway, DEVICES, "saksbehandler", HOME_CARE, nin=HOME_CARE)
    assert body["data"]["patient"]["welfareTechnology"] == []
    assert rows(body, "velferd")[0]["status"] == "DENIED"


def test_plugin_items_obey_security_labels_like_any_item(plugged: Plugged,
                                                         gateway: ServerThread) -> None:
    plain = ask(plugged, gateway, DEVICES, "legevakt-lege", NURSING_HOME, nin=NURSING_HOME)
    assert [d["id"] for d in plain["data"]["patient"]["welfareTechnology"]] == ["vt-3"]
    query = DEVICES.replace("patient(nin: $nin)",
                            'patient(nin: $nin, emergencyReason: "Savnet, kan ha gått ut")')
    opened = ask(plugged, gateway, query, "legevakt-lege", NURSING_HOME, nin=NURSING_HOME)
    assert sorted(d["id"] for d in opened["data"]["patient"]["welfareTechnology"]) == [
        "vt-3", "vt-4"]


def test_plugin_deliveries_are_audited(plugged: Plugged, gateway: ServerThread) -> None:
    ask(plugged, gateway, DEVICES, "hjemmesykepleier", HOME_CARE, nin=HOME_CARE)
    log = ask(plugged, gateway, """query($nin: String!) { accessLog(nin: $nin, first: 1) {
        edges { node { who categories deliveries { category source status count } } } } }""",
              "personvernombud", nin=HOME_CARE)
    node = log["data"]["accessLog"]["edges"][0]["node"]
    assert "welfare_technology" in node["categories"]
    assert {"category": "welfare_technology", "source": "velferd", "status": "OK",
            "count": 2} in node["deliveries"]


def test_a_source_rolled_out_to_oslo_is_not_asked_for_bergen_personnel(
        plugged: Plugged, gateway: ServerThread) -> None:
    before = plugged.hub.count
    body = ask(plugged, gateway, DEVICES, "hjemmesykepleier-bergen", BERGEN, nin=BERGEN)
    assert body["data"]["patient"]["welfareTechnology"] == []
    assert rows(body, "velferd") == []
    assert plugged.hub.count == before
    assert not [e for e in body.get("errors", []) if e["extensions"].get("source") == "velferd"]


def test_a_connector_that_raises_fails_its_own_source_only(plugged: Plugged,
                                                           gateway: ServerThread) -> None:
    query = """query($nin: String!) { patient(nin: $nin) { conditions { id provenance { source } }
      sources { source category status } } }"""
    body = ask(plugged, gateway, query, "hjemmesykepleier", HOME_CARE, nin=HOME_CARE)
    errors = [e for e in body["errors"] if e["extensions"]["code"].startswith("UPSTREAM_")]
    assert [(e["extensions"]["code"], e["extensions"]["source"]) for e in errors] == [
        ("UPSTREAM_UNAVAILABLE", "broken")]
    assert HOME_CARE not in str(errors)
    assert rows(body, "broken")[0]["status"] == "UNAVAILABLE"
    assert rows(body, "municipal")[0]["status"] == "OK"
    assert {c["provenance"]["source"] for c in body["data"]["patient"]["conditions"]} == {
        "municipal"}


def test_the_catalogue_shows_the_plugin_with_version_standard_rollout_and_last_success(
        plugged: Plugged, gateway: ServerThread) -> None:
    ask(plugged, gateway, DEVICES, "hjemmesykepleier", HOME_CARE, nin=HOME_CARE)
    body = ask(plugged, gateway, """{ sources { name version standard categories municipalities
        health lastSuccess lastError } }""", "hjemmesykepleier")
    sources = {s["name"]: s for s in body["data"]["sources"]}
    velferd = sources["velferd"]
    assert velferd["version"] == "0.1.0"
    assert velferd["categories"] == ["WELFARE_TECHNOLOGY"]
    assert velferd["municipalities"] == ["0301"]
    assert velferd["standard"].startswith("FHIR R4")
    assert velferd["lastSuccess"] is not None
    assert sources["broken"]["lastError"] == "UPSTREAM_UNAVAILABLE"
    assert sources["broken"]["lastSuccess"] is None
    assert sources["kjernejournal"]["municipalities"] == ["0301", "4601", "5001"]


def test_the_schema_describes_the_plugin_types(plugged: Plugged, gateway: ServerThread) -> None:
    body = ask(plugged, gateway, """{ __type(name: "WelfareDevice") { description
        fields { name } } }""", "hjemmesykepleier")
    described = body["data"]["__type"]
    assert "welfare-technology device" in described["description"]
    assert "security" not in [f["name"] for f in described["fields"]]


def test_the_default_gateway_has_no_plugin_field(stack: Stack) -> None:
    body = stack.query(DEVICES, stack.token("hjemmesykepleier", HOME_CARE),
                       {"nin": HOME_CARE}).json()
    assert "welfareTechnology" in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_the_cli_lists_what_a_running_gateway_reports(plugged: Plugged, gateway: ServerThread,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    ask(plugged, gateway, DEVICES, "hjemmesykepleier", HOME_CARE, nin=HOME_CARE)
    token = plugged.stack.token("hjemmesykepleier")
    assert main(["connectors", "list", "--gateway", gateway.url, "--token", token]) == 0
    out = capsys.readouterr().out
    velferd = next(line.split() for line in out.splitlines() if line.startswith("velferd "))
    assert velferd[:4] == ["velferd", "enabled", "0.1.0", "OK"]
    assert velferd[4].startswith("20")  # the time of the last live answer
    assert velferd[-1] == "welfare_technology"
    assert main(["connectors", "list", "--gateway", gateway.url, "--token", "nonsense"]) == 2
    assert capsys.readouterr().err == ("kilde: The gateway refused the catalogue query (HTTP "
                                       "401, UNAUTHENTICATED).\n")


def test_plugin_answers_are_cached_like_any_source(plugged: Plugged) -> None:
    query = DEVICES.replace("provenance { source recordId municipality }",
                            "provenance { source fromCache }")
    with plugged.gateway(cache=replace(plugged.stack.settings.cache, enabled=True)) as server:
        first = ask(plugged, server, query, "hjemmesykepleier", HOME_CARE, nin=HOME_CARE)
        asked = plugged.hub.count
        second = ask(plugged, server, query, "hjemmesykepleier", HOME_CARE, nin=HOME_CARE)
    assert plugged.hub.count == asked
    devices = second["data"]["patient"]["welfareTechnology"]
    assert [d["id"] for d in devices] == [d["id"] for d in
                                          first["data"]["patient"]["welfareTechnology"]]
    assert {d["provenance"]["fromCache"] for d in devices} == {True}
