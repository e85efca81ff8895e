"""The floor: the least a Python program must do to answer the legevakt query's upstream part.

Sits beside Kilde in the side-by-side benchmark (`bench/compare.py`), not in the request flow.
A raw aiohttp server on uvloop: `POST /graphql` reads `variables.nin`, makes the same upstream
calls Kilde makes (the plan `bench.workload.record_plan` recorded: same methods, URLs, headers
and bodies, all at once, follow-up pages after their predecessor), decodes every answer with
orjson, and returns them as one JSON document. No GraphQL, no token, no policy, no audit.

Run: `python -m bench.floor --port 8300 --plan bench/out/plan.json`
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections import defaultdict
from typing import Any

import aiohttp
import orjson
from aiohttp import web

PLAN_KEY = web.AppKey("plan", list)
SESSION_KEY = web.AppKey("session", aiohttp.ClientSession)


class UpstreamError(Exception):
    """An upstream answered with an error status or could not be reached."""


async def _call(session: aiohttp.ClientSession, call: dict[str, Any], nin: str,
                placeholder: str) -> Any:
    url = call["url"].replace(placeholder, nin)
    headers = {k: v.replace(placeholder, nin) for k, v in call["headers"].items()}
    body = call["body"].replace(placeholder, nin).encode() if call["body"] else None
    try:
        async with session.request(call["method"], url, headers=headers, data=body) as resp:
            payload = await resp.read()
            if resp.status >= 500 or (resp.status >= 400 and resp.status != 403):
                raise UpstreamError(f"{call['source']} answered HTTP {resp.status}")
    except aiohttp.ClientError as exc:
        raise UpstreamError(f"{call['source']} could not be reached") from exc
    return orjson.loads(payload)


async def _source(session: aiohttp.ClientSession, calls: list[dict[str, Any]], nin: str,
                  placeholder: str) -> list[Any]:
    """One source's calls in Kilde's order: each stage at once, once the stage before it
    answered (a follow-up page after its predecessor, a search after the lookup it needs)."""
    answers: list[Any] = []
    for stage in sorted({c["stage"] for c in calls}):
        answers.extend(await asyncio.gather(*(_call(session, c, nin, placeholder)
                                              for c in calls if c["stage"] == stage)))
    return answers


async def graphql(request: web.Request) -> web.Response:
    plan: dict[str, Any] = request.app[PLAN_KEY][0]
    params = orjson.loads(await request.read())
    nin = str((params.get("variables") or {}).get("nin", ""))
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in plan["calls"]:
        by_source[call["source"]].append(call)
    session = request.app[SESSION_KEY]
    try:
        answers = await asyncio.gather(*(
            _source(session, calls, nin, plan["placeholder"]) for calls in by_source.values()))
    except (UpstreamError, orjson.JSONDecodeError) as exc:
        body = {"errors": [{"message": str(exc)}], "data": None}
        return web.Response(body=orjson.dumps(body), status=502,
                            content_type="application/json")
    data = dict(zip(by_source, answers, strict=True))
    return web.Response(body=orjson.dumps({"data": data}), content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(plan: dict[str, Any]) -> web.Application:
    app = web.Application()
    app[PLAN_KEY] = [plan]

    async def session_context(app: web.Application) -> Any:
        # The same connection budget as Kilde's shared client (connectors/http.py).
        app[SESSION_KEY] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=512), trust_env=False)
        yield
        await app[SESSION_KEY].close()

    app.cleanup_ctx.append(session_context)
    app.router.add_post("/graphql", graphql)
    app.router.add_get("/healthz", healthz)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8300)
    parser.add_argument("--fd", type=int, default=None, help="serve on this inherited socket")
    parser.add_argument("--plan", required=True, help="a plan written by bench.workload")
    args = parser.parse_args(argv)
    with open(args.plan, "rb") as f:
        plan = orjson.loads(f.read())
    loop: asyncio.AbstractEventLoop | None = None
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # uvicorn[standard] brings it; without it asyncio's loop serves
        pass
    where: dict[str, Any] = ({"sock": socket.socket(fileno=args.fd)} if args.fd is not None
                             else {"host": "127.0.0.1", "port": args.port})
    web.run_app(create_app(plan), print=None, access_log=None, loop=loop, **where)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
