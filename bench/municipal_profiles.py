"""Round trips and CPU per municipal store for the legevakt query, per store capability profile.

    python -m bench.municipal_profiles [--requests 200]

The municipal connector alone (no gateway), in this process, against the sandbox store under
each `sandbox.fhirsearch.PROFILES` entry (over `httpx.ASGITransport`, so the store's CPU is in
the figures too: they compare profiles, they are not the connector's cost in production). For
each profile: the requests one cold fetch makes (the CapabilityStatement included), the
requests every later fetch makes, and wall and process CPU milliseconds per fetch for the
multi-service patient with all categories. Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.base import ConnectorSettings, FetchRequest, Requester
from connectors.model import Category
from connectors.municipal import create
from sandbox import municipal
from sandbox.fhirsearch import PROFILES
from sandbox.world import by_tag


class Counting(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.count = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        return await self.inner.handle_async_request(request)


async def measure(profile: str, requests: int) -> tuple[int, int, float, float]:
    app = Starlette(routes=[Mount("/municipal", app=municipal.create_app(PROFILES[profile]))])
    transport = Counting(httpx.ASGITransport(app=app))
    async with httpx.AsyncClient(transport=transport) as http:
        conn = create(ConnectorSettings("municipal", stores={
            "0301": "http://store/municipal/0301"}), http)
        request = FetchRequest(
            patient_nin=by_tag("multi-service").nin, timeout=5.0,
            categories=frozenset(Category) - {Category.LAB_RESULTS},
            municipalities=frozenset({"0301"}),
            requester=Requester(hpr_number="9144901", role_code="LE", purpose_of_use="ETREAT"))
        await conn.fetch(request)
        cold = transport.count
        transport.count = 0
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(requests):
            await conn.fetch(request)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return cold, transport.count // requests, wall / requests * 1000, cpu / requests * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    print("| store profile | requests, first fetch | requests per fetch after | "
          "wall ms/fetch | CPU ms/fetch |")
    print("| --- | --- | --- | --- | --- |")
    for name in ("full", "batch", "plain", "paged"):
        cold, warm, wall, cpu = asyncio.run(measure(name, args.requests))
        print(f"| {name} ({PROFILES[name].description}) | {cold} | {warm} | {wall:.2f} | "
              f"{cpu:.2f} |")


if __name__ == "__main__":
    main()
