"""The fan-out tells the activity record when each source last answered live, and last failed."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from connectors import Category, FetchRequest, SourceResult, UpstreamInvalidError
from connectors.activity import SourceActivity
from connectors.fanout import fetch_one, start_fetches

REQUEST = FetchRequest("14033841389", frozenset({Category.DOCUMENTS}), timeout=0.2)


class Source:
    categories = frozenset({Category.DOCUMENTS})

    def __init__(self, name: str, behaviour: str) -> None:
        self.name = name
        self.behaviour = behaviour

    async def fetch(self, request: FetchRequest) -> SourceResult:
        if self.behaviour == "hang":
            await asyncio.sleep(10)
        if self.behaviour == "invalid":
            raise UpstreamInvalidError(self.name, "Source sent garbage.")
        if self.behaviour == "bug":
            raise KeyError("resource")
        result = SourceResult.empty(self.name, request.categories)
        return replace(result, from_cache=self.behaviour == "cached")

    async def aclose(self) -> None:
        pass


async def test_live_answers_are_successes_and_failures_keep_their_code() -> None:
    activity = SourceActivity()
    sources = {name: Source(name, name) for name in ("live", "hang", "invalid", "bug", "cached")}
    tasks = start_fetches({n: (s, REQUEST) for n, s in sources.items()}, activity)
    await asyncio.gather(*tasks.values())
    assert activity.get("live").last_success is not None
    assert activity.get("live").last_failure is None
    assert [(n, activity.get(n).last_error) for n in ("hang", "invalid", "bug")] == [
        ("hang", "UPSTREAM_TIMEOUT"), ("invalid", "UPSTREAM_INVALID"),
        ("bug", "UPSTREAM_UNAVAILABLE")]
    assert activity.get("cached").last_success is None  # the cache answered, not the source


async def test_a_later_failure_keeps_the_last_success() -> None:
    activity = SourceActivity()
    source = Source("kj", "live")
    await fetch_one(source, REQUEST, activity)
    source.behaviour = "invalid"
    await fetch_one(source, REQUEST, activity)
    seen = activity.get("kj")
    assert seen.last_success is not None
    assert seen.last_failure is not None
    assert seen.last_success <= seen.last_failure
    assert activity.get("unknown").last_success is None


async def test_the_fan_out_works_without_an_activity_record() -> None:
    outcome = await fetch_one(Source("kj", "live"), REQUEST)
    assert outcome.error is None
