"""Patient-context handover: POST /launch, then launchContext(launch) once, by the same user,
before it expires; across replicas through Redis, and never twice when Redis fails."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import pytest

from connectors.cachestore import CacheStore, CacheUnavailableError, open_store
from connectors.crypto import CacheKeys
from gateway.demo.tokens import DEMO_KID, DEMO_PRIVATE_KEY_PEM
from gateway.launch import LaunchStore, LaunchUnavailableError
from policies.model import Principal, PrincipalKind
from sandbox.world import by_tag
from tests.gateway.inprocess import Harness, gateway, settings_for

HLR = by_tag("legevakt-hlr")
OTHER = by_tag("multi-service")
KEYS = CacheKeys.from_secret("launch-test-secret-0123456789")
LEGE = Principal(PrincipalKind.CLINICIAN, "01017012345")
NURSE = Principal(PrincipalKind.CLINICIAN, "02027012345")
CONTEXT = "query($launch: String!) { launchContext(launch: $launch) { patient encounter } }"


async def _launch(h: Harness, token: str, body: Any) -> Any:
    return await h.client.post("/launch", json=body, headers={"authorization": f"Bearer {token}"})


async def _read(h: Harness, token: str, launch: str) -> dict[str, Any]:
    r = await h.post({"query": CONTEXT, "variables": {"launch": launch}},
                     headers={"authorization": f"Bearer {token}"})
    return r.json()  # type: ignore[no-any-return]


def _code(body: dict[str, Any]) -> str:
    return str(body["errors"][0]["extensions"]["code"])


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with gateway() as harness:
        yield harness


async def test_the_same_user_reads_the_patient_once(h: Harness) -> None:
    r = await _launch(h, h.token("legevakt-lege", HLR.nin),
                      {"patient": HLR.nin, "encounter": "kontakt-2026-0042"})
    assert r.status_code == 201
    assert r.headers["cache-control"] == "no-store"
    answer = r.json()
    assert answer["iss"] == "http://kilde.test"
    assert answer["expiresIn"] == 300
    assert answer["url"].startswith("http://kilde.test/app/?launch=")
    assert HLR.nin not in answer["url"]
    # the app signs the same user in with a token of its own, not bound to any patient yet
    body = await _read(h, h.token("legevakt-lege", None), answer["launch"])
    assert body["data"]["launchContext"] == {"patient": HLR.nin, "encounter": "kontakt-2026-0042"}
    again = await _read(h, h.token("legevakt-lege", None), answer["launch"])
    assert again["data"] is None
    assert _code(again) == "BAD_USER_INPUT"
    assert "already used or expired" in again["errors"][0]["message"]


async def test_another_user_neither_reads_nor_spends_the_launch(h: Harness) -> None:
    launch = (await _launch(h, h.token("legevakt-lege", HLR.nin), {"patient": HLR.nin})).json()
    stranger = await _read(h, h.token("hjemmesykepleier", HLR.nin), launch["launch"])
    assert _code(stranger) == "BAD_USER_INPUT"
    assert HLR.nin not in str(stranger)
    citizen = await _read(h, h.token("innbygger", HLR.nin), launch["launch"])
    assert _code(citizen) == "BAD_USER_INPUT"
    owner = await _read(h, h.token("legevakt-lege", None), launch["launch"])
    assert owner["data"]["launchContext"]["patient"] == HLR.nin


@pytest.mark.parametrize("launch", ["", "x" * 500, "not-a-launch", "../../etc"])
async def test_a_made_up_launch_is_bad_user_input(h: Harness, launch: str) -> None:
    assert _code(await _read(h, h.token("legevakt-lege", None), launch)) == "BAD_USER_INPUT"


async def test_a_citizen_may_hand_over_only_themself(h: Harness) -> None:
    own = await _launch(h, h.token("innbygger", HLR.nin), {"patient": HLR.nin})
    assert own.status_code == 201
    assert (await _read(h, h.token("innbygger", HLR.nin), own.json()["launch"]))[
        "data"]["launchContext"]["patient"] == HLR.nin
    other = await _launch(h, h.token("innbygger", HLR.nin), {"patient": OTHER.nin})
    assert other.status_code == 403


async def test_a_privacy_officer_cannot_hand_over_a_patient(h: Harness) -> None:
    r = await _launch(h, h.token("personvernombud", None), {"patient": HLR.nin})
    assert (r.status_code, r.json()["errors"][0]["extensions"]["code"]) == (403, "FORBIDDEN")


@pytest.mark.parametrize("body", [
    {"patient": "14033841388"}, {"patient": 14033841389}, {}, [HLR.nin],
    {"patient": HLR.nin, "encounter": "has spaces"},
    {"patient": HLR.nin, "encounter": f"k-{HLR.nin}"},
])
async def test_bad_launch_requests_are_400_without_echoing_them(h: Harness, body: Any) -> None:
    r = await _launch(h, h.token("legevakt-lege", HLR.nin), body)
    assert r.status_code == 400
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "1403384138" not in r.text


async def test_launch_needs_a_valid_token(h: Harness) -> None:
    assert (await h.client.post("/launch", json={"patient": HLR.nin})).status_code == 401
    r = await _launch(h, "not.a.token", {"patient": HLR.nin})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_smart_configuration_says_what_kilde_does_and_leaves_to_helseid(
        h: Harness) -> None:
    r = await h.client.get("/.well-known/smart-configuration")
    assert r.status_code == 200
    config = r.json()
    for required in ("authorization_endpoint", "token_endpoint", "grant_types_supported",
                     "capabilities", "code_challenge_methods_supported", "issuer", "jwks_uri"):
        assert config[required]
    assert config["issuer"] == h.settings.auth.issuer
    assert config["token_endpoint"] == f"{h.settings.auth.issuer}/connect/token"
    assert "S256" in config["code_challenge_methods_supported"]
    assert {"launch-ehr", "context-ehr-patient"} <= set(config["capabilities"])
    assert config["kilde_launch_endpoint"] == "http://kilde.test/launch"


async def test_production_without_an_app_url_gives_no_link_and_configured_endpoints() -> None:
    base = settings_for()
    settings = replace(base, launch=replace(
        base.launch, authorization_endpoint="https://helseid.test/connect/authorize",
        app_url="https://legevakt.kommune.test/app"))
    async with gateway(settings) as h:
        r = await _launch(h, h.token("legevakt-lege", HLR.nin), {"patient": HLR.nin})
        config = (await h.client.get("/.well-known/smart-configuration")).json()
    assert r.json()["url"].startswith("https://legevakt.kommune.test/app?launch=")
    assert config["authorization_endpoint"] == "https://helseid.test/connect/authorize"


# -- the store itself: expiry, replicas, Redis trouble --------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_launch_expires_after_its_ttl_in_process() -> None:
    clock = Clock()
    store = LaunchStore(KEYS, None, ttl_seconds=120, clock=clock)
    launch, ttl = await store.create(LEGE, HLR.nin, None)
    assert ttl == 120
    clock.now += 120
    assert await store.redeem(LEGE, launch) is None


@pytest.fixture
async def shared(redis_url: str) -> AsyncIterator[CacheStore]:
    # a generous timeout: these tests are about atomicity, not about a slow Redis
    store = open_store(redis_url, op_timeout=5.0, namespace=f"test-{uuid.uuid4().hex}:")
    yield store
    await store.aclose()


async def test_a_launch_made_on_one_replica_is_redeemed_once_on_any(shared: CacheStore) -> None:
    a, b = LaunchStore(KEYS, shared, ttl_seconds=60), LaunchStore(KEYS, shared, ttl_seconds=60)
    launch, _ = await a.create(LEGE, HLR.nin, "k1")
    assert await b.redeem(NURSE, launch) is None  # someone else: not found, not spent
    results = await asyncio.gather(*(s.redeem(LEGE, launch) for s in (a, b) * 10))
    assert [r.patient for r in results if r is not None] == [HLR.nin]


async def test_a_launch_in_redis_expires_by_the_embedded_time_too(shared: CacheStore) -> None:
    clock = Clock()
    store = LaunchStore(KEYS, shared, ttl_seconds=60, clock=clock)
    launch, _ = await store.create(LEGE, HLR.nin, None)
    clock.now += 61  # Redis keeps it a moment longer on a slow clock: the value says no
    assert await store.redeem(LEGE, launch) is None


async def test_nothing_readable_in_redis_names_the_patient_or_the_launch(
        shared: CacheStore, redis_url: str) -> None:
    import redis.asyncio

    launch, _ = await LaunchStore(KEYS, shared, ttl_seconds=60).create(LEGE, HLR.nin, None)
    client = redis.asyncio.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{shared.namespace}*")]
        values = [await client.get(k) for k in keys]
    finally:
        await client.aclose()
    assert len(keys) == 1
    dump = b"".join(keys + [v or b"" for v in values])
    assert HLR.nin.encode() not in dump
    assert launch.encode() not in dump
    assert LEGE.person_id.encode() not in dump


class WritesThenTimesOut(CacheStore):
    """Redis took the write, but the answer came too late: the caller cannot know."""

    def __init__(self, inner: CacheStore) -> None:
        self.__dict__.update(inner.__dict__)
        self.inner = inner

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        await self.inner.set(key, value, ttl)
        raise CacheUnavailableError("timed out")


async def test_a_write_in_doubt_never_yields_a_launch_that_works_twice(
        shared: CacheStore) -> None:
    doubtful = LaunchStore(KEYS, WritesThenTimesOut(shared), ttl_seconds=60)
    other = LaunchStore(KEYS, shared, ttl_seconds=60)
    launch, _ = await doubtful.create(LEGE, HLR.nin, None)  # kept here, under a fresh id
    assert await other.redeem(LEGE, launch) is None         # the Redis copy has another id
    assert (await doubtful.redeem(LEGE, launch)).patient == HLR.nin
    assert await doubtful.redeem(LEGE, launch) is None


async def test_with_redis_down_a_launch_is_kept_here_and_others_cannot_tell() -> None:
    down = open_store("redis://127.0.0.1:9/0", op_timeout=0.05, retry_seconds=60)
    try:
        here = LaunchStore(KEYS, down, ttl_seconds=60)
        launch, _ = await here.create(LEGE, HLR.nin, None)
        with pytest.raises(LaunchUnavailableError):
            await LaunchStore(KEYS, down, ttl_seconds=60).redeem(LEGE, launch)
        assert (await here.redeem(LEGE, launch)).patient == HLR.nin
        with pytest.raises(LaunchUnavailableError):  # spent here; Redis cannot be asked
            await here.redeem(LEGE, launch)
    finally:
        await down.aclose()


async def test_launch_context_says_unavailable_when_redis_does_not_answer(
        redis_url: str) -> None:
    # a Redis that answered at creation and is then cut: the launch is neither given out
    # nor called unknown
    from tests.proxy import TcpProxy

    host, port = "127.0.0.1", int(redis_url.rsplit(":", 1)[1].split("/")[0])
    proxy = TcpProxy(host, port)
    try:
        base = settings_for()
        settings = replace(base, cache=replace(base.cache, url=f"redis://127.0.0.1:{proxy.port}/0",
                                               key="launch-test-secret-0123456789",
                                               namespace=f"test-{uuid.uuid4().hex}:"))
        async with gateway(settings) as h:
            r = await _launch(h, h.token("legevakt-lege", HLR.nin), {"patient": HLR.nin})
            proxy.cut()
            body = await _read(h, h.token("legevakt-lege", None), r.json()["launch"])
    finally:
        proxy.close()
    assert body["errors"][0]["extensions"] == {"code": "UPSTREAM_UNAVAILABLE", "source": "launch"}


@pytest.mark.parametrize(("name", "value"), [
    ("KILDE_LAUNCH__TTL_SECONDS", "0"), ("KILDE_LAUNCH__TTL_SECONDS", "7200"),
    ("KILDE_LAUNCH__APP_URL", "legevakt.example/app"),
    ("KILDE_LAUNCH__TOKEN_ENDPOINT", "ftp://helseid/token"),
])
def test_launch_settings_that_cannot_work_fail_at_start(name: str, value: str) -> None:
    from gateway.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match=name):
        Settings.from_env({"KILDE_MODE": "demo", name: value})


async def test_a_policy_files_own_clinical_scope_is_the_one_launch_asks_for(
        tmp_path: Path) -> None:
    """The launch door asks the authenticator's trust (the loaded policy), not the built-in
    scope name: with a policy file's own clinical scope a clinician's token carrying it hands
    over a context, one carrying only the built-in name is no clinician's, and the SMART
    configuration lists the policy's scopes."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[scopes]\nclinical = "acme/clinical.read"\n', encoding="utf-8")
    async with gateway(policy_file=str(policy)) as h:
        builtin = h.token("legevakt-lege", HLR.nin)
        claims = jwt.decode(builtin, options={"verify_signature": False})
        custom = jwt.encode({**claims, "scope": "acme/clinical.read"}, DEMO_PRIVATE_KEY_PEM,
                            algorithm="RS256", headers={"kid": DEMO_KID, "typ": "at+jwt"})
        assert (await _launch(h, custom, {"patient": HLR.nin})).status_code == 201
        refused = await _launch(h, builtin, {"patient": HLR.nin})
        assert refused.status_code in (401, 403), refused.text
        config = (await h.client.get("/.well-known/smart-configuration")).json()
        assert "acme/clinical.read" in config["scopes_supported"]
        assert "kilde/patient.read" not in config["scopes_supported"]
