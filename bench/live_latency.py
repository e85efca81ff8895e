"""Live-update latency: from a change posted to POST /events to the `next` a subscriber gets.

Two `kilde demo` processes (replicas) on one Redis with the same cache key. A subscriber on
replica A holds `patientUpdates` open over graphql-transport-ws; the event store posts changes
one after the other, each timed from the POST leaving to the update arriving: to A itself (the
in-process path) and to B (through Redis pub/sub). Prints p50/p95/max per path.

    python -m bench.live_latency --events 100 --redis-url redis://127.0.0.1:6379/0 [--record]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from bench.dpop_bench import _commit
from bench.harness import kilde, listening_socket, percentile, port_of, process

NIN = "14033841389"  # the legevakt scenario patient (sandbox.world)
UPDATES = ("subscription($nin: String!) { patientUpdates(nin: $nin) { source changedAt } }")


def _token(base: str, persona: str, patient: str | None = None) -> str:
    r = httpx.post(f"{base}/_sandbox/helseid/token", json={"persona": persona,
                                                           "patient": patient}, timeout=30)
    r.raise_for_status()
    return str(r.json()["access_token"])


async def _measure(a: str, b: str, events: int) -> dict[str, list[float]]:
    viewer = _token(a, "legevakt-lege", NIN)
    stores = {"same replica": a, "other replica (Redis)": b}
    times: dict[str, list[float]] = {name: [] for name in stores}
    async with connect(a.replace("http", "ws") + "/graphql", proxy=None,
                       subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init",
                                  "payload": {"authorization": f"Bearer {viewer}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"type": "subscribe", "id": "1", "payload": {
            "query": UPDATES, "variables": {"nin": NIN}}}))
        async with httpx.AsyncClient(timeout=30) as http:
            for _ in range(600):  # the subscription starts a moment after the ack
                if "kilde_live_watchers 1" in (await http.get(f"{a}/metrics")).text:
                    break
                await asyncio.sleep(0.05)
            tokens = {name: _token(url, "hendelseslager") for name, url in stores.items()}
            for i in range(events):
                for name, url in stores.items():
                    started = time.perf_counter()
                    r = await http.post(f"{url}/events", json={
                        "source": "municipal", "patient": NIN,
                        "categories": ["treatment_limitations"]},
                        headers={"authorization": f"Bearer {tokens[name]}"})
                    assert r.status_code == 202, r.text
                    message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    assert message["type"] == "next", message
                    times[name].append((time.perf_counter() - started) * 1000)
                if i % 25 == 0:
                    print(f"  {i}/{events}", flush=True)
    return times


def _table(times: dict[str, list[float]]) -> str:
    rows = ["| path | events | p50 ms | p95 ms | max ms |", "|---|---:|---:|---:|---:|"]
    for name, values in times.items():
        rows.append(f"| POST /events -> `next` on replica A, event to {name} | {len(values)} | "
                    f"{statistics.median(values):.1f} | {percentile(values, 0.95):.1f} | "
                    f"{max(values):.1f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    env = {"KILDE_CACHE__URL": args.redis_url, "KILDE_CACHE__KEY": secrets.token_hex(24),
           "KILDE_CACHE__NAMESPACE": f"bench-live-{secrets.token_hex(4)}:"}
    load = os.getloadavg()
    with ExitStack() as stack:
        urls = []
        for name in ("a", "b"):
            sock = listening_socket()
            url = f"http://127.0.0.1:{port_of(sock)}"
            stack.enter_context(process(kilde("demo", "--fd", str(sock.fileno())), env,
                                        f"{url}/readyz", log=f"live-{name}", sock=sock))
            urls.append(url)
        times = asyncio.run(_measure(urls[0], urls[1], args.events))
    table = _table(times)
    print(table)
    if args.record:
        command = f"python -m bench.live_latency --events {args.events} --redis-url {args.redis_url}"
        entry = (f"\n### Live updates: event to subscriber, "
                 f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {_commit()}\n\n"
                 f"`{command}` (two `kilde demo` replicas on one Redis, one subscriber on A, "
                 f"events posted one at a time; {os.cpu_count()} cores, "
                 f"{platform.processor() or platform.machine()}, Python "
                 f"{platform.python_version()}; load average before: "
                 f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f})\n\n{table}\n")
        with Path(__file__).with_name("RESULTS.md").open("a", encoding="utf-8") as results:
            results.write(entry)


if __name__ == "__main__":
    main()
