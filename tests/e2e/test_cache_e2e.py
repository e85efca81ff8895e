"""Cache and resilience end to end: the real gateway with its cache in the real Redis (behind a
TCP proxy we can cut), the sandbox's fault knobs and request counters as the upstreams."""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.resilience import ResilienceSettings
from gateway.demo import mint_event_token
from gateway.settings import CacheSettings
from sandbox.app import create_app as create_sandbox
from sandbox.world import by_tag
from tests.conftest import _need
from tests.e2e.conftest import Stack
from tests.proxy import TcpProxy
from tests.servers import demo_app, e2e_settings, listening_socket, port_of, running

pytestmark = [pytest.mark.slow, pytest.mark.redis]

Q = """query($nin: String!, $fresh: Boolean) { patient(nin: $nin, fresh: $fresh) {
  criticalInformation { description provenance { source fromCache ageSeconds } }
  medications { name provenance { fromCache ageSeconds } }
  labResults { id }
  municipalServices { id }
  sources { source category status fromCache ageSeconds detail }
} }"""
FIVE = {"municipal", "kjernejournal", "pll", "eresept", "proevesvar"}


class CacheStack(Stack):
    proxy: TcpProxy

    def ask(self, persona: str, tag: str, *, fresh: bool | None = None,
            headers: dict[str, str] | None = None) -> dict[str, Any]:
        nin = by_tag(tag).nin
        r = httpx.post(f"{self.gateway.url}/graphql", timeout=10, json={
            "query": Q, "variables": {"nin": nin, "fresh": fresh}},
            headers={"authorization": f"Bearer {self.token(persona, nin)}", **(headers or {})})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def event(self, source: str, tag: str, token: str | None = "event-store") -> httpx.Response:
        if token == "event-store":
            token = mint_event_token(issuer=self.settings.auth.issuer,
                                     audience=self.settings.auth.audience)
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.post(f"{self.gateway.url}/events", headers=headers,
                          json={"source": source, "patient": by_tag(tag).nin})

    def ready(self) -> dict[str, Any]:
        r = httpx.get(f"{self.gateway.url}/readyz")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def audited(self) -> int:
        with sqlite3.connect(self.audit_path) as db:
            return int(db.execute("SELECT count(*) FROM audit_events").fetchone()[0])


# The open breaker's fail-fast window: the breaker test's requests must fit in it, so it is
# seconds, not a fraction of one, to hold on a busy machine (no other test here opens a breaker).
BREAKER_RESET_SECONDS = 3.0


@pytest.fixture(scope="module")
def cstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CacheStack]:
    _need("Redis", "127.0.0.1", 6379)
    proxy = TcpProxy("127.0.0.1", 6379)
    audit_path = tmp_path_factory.mktemp("cache-audit") / "audit.sqlite3"
    # A Redis call may take 5 s here (production: 0.25 s): these tests are about what Redis holds
    # and shares, and under load a short timeout degraded the store by itself (the recovery test
    # then saw its last answer come live, not from the cache). A proxy cut resets at once.
    cache = CacheSettings(url=f"redis://{proxy.url_host}/0", key=secrets.token_hex(24),
                          default_ttl_seconds=120, max_stale_seconds=120, retry_seconds=0.2,
                          fresh_per_minute=1000, op_timeout_seconds=5.0)
    resilience = ResilienceSettings(attempts=2, backoff_initial=0.01, backoff_max=0.02,
                                    jitter=0.01, failure_threshold=3,
                                    reset_seconds=BREAKER_RESET_SECONDS)
    try:
        with running(create_sandbox({})) as sandbox:
            sock = listening_socket()
            settings = e2e_settings(port_of(sock), sandbox.url, f"sqlite:///{audit_path}",
                                    cache=cache, resilience=resilience)
            with running(demo_app(settings), sock) as gateway:
                stack = CacheStack(gateway, sandbox, settings, audit_path)
                stack.proxy = proxy
                yield stack
    finally:
        proxy.close()


@pytest.fixture
def cs(cstack: CacheStack) -> Iterator[CacheStack]:
    cstack.reset()
    yield cstack
    cstack.reset()


def statuses(body: dict[str, Any], source: str) -> set[str]:
    return {s["status"] for s in body["data"]["patient"]["sources"] if s["source"] == source}


def test_a_repeated_query_is_served_from_cache_and_every_request_is_audited(
    cs: CacheStack,
) -> None:
    cs.event("pll", "multi-service")  # whatever an earlier run left behind
    first = cs.ask("legevakt-lege", "multi-service")
    asked = cs.requests()
    audited = cs.audited()
    second = cs.ask("legevakt-lege", "multi-service")
    assert cs.requests() == asked  # no upstream call at all
    assert cs.audited() == audited + 1
    p1, p2 = first["data"]["patient"], second["data"]["patient"]
    assert {s["source"] for s in p2["sources"]} == FIVE
    assert all(s["fromCache"] and s["ageSeconds"] >= 0 for s in p2["sources"])
    assert p2["medications"]
    assert all(m["provenance"]["fromCache"] for m in p2["medications"])
    assert [m["name"] for m in p2["medications"]] == [m["name"] for m in p1["medications"]]
    assert "errors" not in second


def test_policy_runs_on_every_cache_hit(cs: CacheStack) -> None:
    # the legevakt physician fills the cache with lab results of this patient ...
    assert cs.ask("legevakt-lege", "multi-service")["data"]["patient"]["labResults"]
    asked = cs.requests()["proevesvar"]
    # ... a health worker, who may not see lab results, never gets them, cached or not
    body = cs.ask("helsefagarbeider", "multi-service")
    assert body["data"]["patient"]["labResults"] == []
    assert statuses(body, "proevesvar") == {"DENIED"}
    assert cs.requests()["proevesvar"] == asked
    # and a restriction judged on a cached answer stays closed without an emergency reason
    for _ in range(2):
        closed = cs.ask("legevakt-lege", "restricted-lab")
        assert closed["data"]["patient"]["labResults"] == []
        assert statuses(closed, "proevesvar") == {"RESTRICTED"}
    assert all(s["fromCache"] for s in closed["data"]["patient"]["sources"])


@pytest.mark.parametrize("how", ["argument", "header"])
def test_a_clinician_can_ask_for_fresh_data(cs: CacheStack, how: str) -> None:
    cs.ask("hjemmesykepleier", "multi-service")
    before = cs.requests()
    if how == "argument":
        body = cs.ask("hjemmesykepleier", "multi-service", fresh=True)
    else:
        body = cs.ask("hjemmesykepleier", "multi-service", headers={"cache-control": "no-cache"})
    after = cs.requests()
    assert all(after[s] > before[s] for s in ("municipal", "kjernejournal", "pll"))
    assert not any(s["fromCache"] for s in body["data"]["patient"]["sources"])


def test_an_event_evicts_the_patient_at_that_source_only(cs: CacheStack) -> None:
    cs.ask("legevakt-lege", "legevakt-hlr")
    cs.ask("legevakt-lege", "legevakt-hlr")
    before = cs.requests()
    r = cs.event("municipal", "legevakt-hlr")
    assert r.status_code == 202
    assert r.json()["evicted"] is True
    body = cs.ask("legevakt-lege", "legevakt-hlr")
    after = cs.requests()
    assert after["municipal"] > before["municipal"]
    assert {s: after[s] - before[s] for s in FIVE - {"municipal"}} == dict.fromkeys(
        FIVE - {"municipal"}, 0)
    assert not any(s["fromCache"] for s in body["data"]["patient"]["sources"]
                   if s["source"] == "municipal")


def test_events_need_the_events_scope(cs: CacheStack) -> None:
    assert cs.event("municipal", "legevakt-hlr", token=None).status_code == 401
    clinician = cs.token("legevakt-lege", by_tag("legevakt-hlr").nin)
    assert cs.event("municipal", "legevakt-hlr", token=clinician).status_code == 403
    bad = httpx.post(f"{cs.gateway.url}/events", json={"source": "municipal", "patient": "1"},
                     headers={"authorization": "Bearer " + mint_event_token(
                         issuer=cs.settings.auth.issuer, audience=cs.settings.auth.audience)})
    assert bad.status_code == 400
    assert "1" not in bad.json()["errors"][0]["message"][-3:]


def test_a_failing_source_is_served_stale_with_its_age(cs: CacheStack) -> None:
    cs.ask("hjemmesykepleier", "legevakt-hlr")
    cs.fault("pll", mode="error")
    body = cs.ask("hjemmesykepleier", "legevakt-hlr", fresh=True)
    assert statuses(body, "pll") == {"STALE"}
    row = next(s for s in body["data"]["patient"]["sources"] if s["source"] == "pll")
    assert row["fromCache"]
    assert row["ageSeconds"] >= 0
    assert "s old" in row["detail"]
    assert body["data"]["patient"]["medications"]
    assert "errors" not in body  # the data is there, marked STALE; nothing failed for the user


def test_a_transient_upstream_error_is_retried_once(cs: CacheStack) -> None:
    cs.fault("eresept", mode="error")
    body = cs.ask("legevakt-lege", "reserved-kj")  # nothing cached for it: the source is asked
    assert cs.requests()["eresept"] == 2  # one call and one retry, no more
    assert statuses(body, "eresept") == {"UNAVAILABLE"}


def test_a_hanging_source_is_not_retried_past_the_deadline(cs: CacheStack) -> None:
    cs.fault("kjernejournal", mode="hang")
    started = time.monotonic()
    body = cs.ask("lege-annen-kommune", "no-data")
    elapsed = time.monotonic() - started
    assert elapsed < cs.settings.connectors["kjernejournal"].timeout + 0.75
    assert statuses(body, "kjernejournal") == {"TIMEOUT"}


def test_the_breaker_opens_fails_fast_and_closes_after_a_good_probe(cs: CacheStack) -> None:
    cs.fault("proevesvar", mode="error")
    cs.ask("lege-annen-kommune", "blocked-kj")
    before_opening = time.monotonic()  # the breaker opens after this: it is open until +reset
    cs.ask("lege-annen-kommune", "blocked-kj")  # 2 attempts each: the third failure opens it
    assert cs.ready()["breakers"]["proevesvar"] == "open"
    asked = cs.requests()["proevesvar"]
    body = cs.ask("lege-annen-kommune", "blocked-kj")
    assert cs.requests()["proevesvar"] == asked  # fast UNAVAILABLE, no upstream call
    row = next(s for s in body["data"]["patient"]["sources"] if s["source"] == "proevesvar")
    assert row["status"] == "UNAVAILABLE"
    assert "circuit breaker is open" in row["detail"]
    health = httpx.post(f"{cs.gateway.url}/graphql", json={"query": "{ sources { name health } }"},
                        headers={"authorization": "Bearer " + cs.token("legevakt-lege")}).json()
    assert time.monotonic() - before_opening < BREAKER_RESET_SECONDS, "the machine is too slow"
    assert {"name": "proevesvar", "health": "UNAVAILABLE"} in health["data"]["sources"]
    cs.fault("proevesvar", mode="none")
    deadline = time.monotonic() + BREAKER_RESET_SECONDS + 5
    while statuses(cs.ask("lege-annen-kommune", "blocked-kj"), "proevesvar") == {"UNAVAILABLE"}:
        assert time.monotonic() < deadline, "the breaker never let a probe through"
        time.sleep(0.1)
    assert cs.ready()["breakers"]["proevesvar"] == "closed"


def test_redis_cut_mid_run_fails_no_request_and_recovers_by_itself(cs: CacheStack) -> None:
    cs.ask("helsefagarbeider", "legevakt-hlr")
    cs.proxy.cut()
    try:
        for _ in range(5):
            body = cs.ask("helsefagarbeider", "legevakt-hlr")
            codes = {e["extensions"]["code"] for e in body.get("errors", [])}
            assert codes <= {"FORBIDDEN"}, body["errors"]  # lab results: policy, not Redis
            assert all(s["status"] in ("OK", "EMPTY", "DENIED")
                       for s in body["data"]["patient"]["sources"])
        ready = cs.ready()  # 200: degraded is not an outage
        assert ready["cache"] == "degraded"
        assert ready["status"] == "ok"
    finally:
        cs.proxy.restore()
    deadline = time.monotonic() + 5
    while cs.ready()["cache"] != "ok":
        assert time.monotonic() < deadline, "the cache never recovered"
        time.sleep(0.1)
    cs.ask("helsefagarbeider", "legevakt-hlr", fresh=True)
    again = cs.ask("helsefagarbeider", "legevakt-hlr")
    assert all(s["fromCache"] for s in again["data"]["patient"]["sources"]
               if s["status"] != "DENIED")
