"""POST /events answers each outcome in the contract's words: a body that is not an event is
BAD_USER_INPUT (one sentence, nothing echoed), and a cache store that does not answer is the
source that failed (UPSTREAM_UNAVAILABLE, source "cache"), never a code of the door's own."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import httpx
import pytest

from gateway.demo import mint_event_token
from sandbox.world import by_tag
from tests.gateway.inprocess import ISSUER, Harness, gateway, settings_for

NIN = by_tag("legevakt-hlr").nin


async def _post(h: Harness, body: Any) -> httpx.Response:
    token = mint_event_token(issuer=ISSUER, audience=h.settings.auth.audience)
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    return await h.client.post("/events", content=content, headers={
        "authorization": f"Bearer {token}", "content-type": "application/json"})


@pytest.mark.parametrize("body", [
    b"not json", b"[]", {"source": "municipal"}, {"patient": NIN}, {"source": 1, "patient": NIN},
    {"source": "municipal", "patient": NIN, "pad": "x" * 5000},
])
async def test_a_body_that_is_no_event_is_bad_input(body: Any) -> None:
    async with gateway() as h:
        r = await _post(h, body)
    assert r.status_code == 400
    [error] = r.json()["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert error["message"].startswith("An event ")
    assert NIN not in r.text


async def test_an_unknown_source_or_a_bad_number_is_bad_input() -> None:
    async with gateway() as h:
        unknown = await _post(h, {"source": "nowhere", "patient": NIN})
        bad = await _post(h, {"source": "municipal", "patient": NIN[:-1] + "0"})
    assert unknown.status_code == bad.status_code == 400
    assert unknown.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert bad.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert NIN[:-1] not in bad.text


@pytest.mark.redis
async def test_a_cache_store_that_does_not_answer_is_an_unavailable_source(
        redis_url: str) -> None:
    from tests.proxy import TcpProxy

    host, port = "127.0.0.1", int(redis_url.rsplit(":", 1)[1].split("/")[0])
    proxy = TcpProxy(host, port)
    try:
        base = settings_for()
        settings = replace(base, cache=replace(
            base.cache, url=f"redis://127.0.0.1:{proxy.port}/0",
            key="events-test-secret-0123456789", namespace=f"test-{uuid.uuid4().hex}:"))
        async with gateway(settings) as h:
            ok = await _post(h, {"source": "municipal", "patient": NIN})
            proxy.cut()
            down = await _post(h, {"source": "municipal", "patient": NIN})
    finally:
        proxy.close()
    assert ok.status_code == 202
    assert down.status_code == 503
    assert down.json()["errors"][0]["extensions"] == {"code": "UPSTREAM_UNAVAILABLE",
                                                      "source": "cache"}
