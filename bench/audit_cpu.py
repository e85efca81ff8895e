"""CPU and instructions per audit event written to PostgreSQL, as the gateway writes them.

    .venv/bin/python -m bench.audit_cpu [--events 1000] [--writers 2]
    TMPDIR=/tmp valgrind --tool=callgrind --instr-atstart=no \\
        .venv/bin/python -m bench.audit_cpu --events 200      # instructions: `totals:`

`bench.audit_bench` asks how many events per second the store takes; this asks what one costs
the gateway's process: `PostgresAuditSink.write` (storable, canonical JSON, the group commit's
statements through asyncpg) with `--writers` concurrent callers (2: the cold bench's batches
hold ~1.8 events), in a throwaway schema. Under callgrind only the writes are counted
(`callgrind_control -i on/off`), so the count does not move with the load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time

from bench.audit_bench import DEFAULT_PG, _drop, _event, _postgres_schema
from gateway.audit import open_audit_sink


def _callgrind(state: str) -> None:
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=False,
                   capture_output=True)


async def run(url: str, writers: int, events: int) -> None:
    made = await _postgres_schema(url)
    if made is None:
        print("postgres not reachable")
        return
    schema_url, schema = made
    try:
        sink = await open_audit_sink(schema_url, retention_days=3650)
        await sink.write(_event(-1))  # connect and create the tables outside the count
        per = events // writers

        async def writer(k: int) -> None:
            for j in range(per):
                await sink.write(_event(k * per + j))

        before = sink.batches_committed  # type: ignore[attr-defined]
        _callgrind("on")
        cpu = time.process_time()
        await asyncio.gather(*(writer(k) for k in range(writers)))
        cpu = time.process_time() - cpu
        _callgrind("off")
        batches = sink.batches_committed - before  # type: ignore[attr-defined]
        ok = (await sink.verify()).ok
        await sink.aclose()
        print(f"{cpu * 1e6 / (per * writers):.0f} us CPU per event, "
              f"{per * writers / max(batches, 1):.2f} events per batch, "
              f"chain {'ok' if ok else 'BROKEN'}")
    finally:
        await _drop(url, schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    args = parser.parse_args()
    asyncio.run(run(args.postgres_url, args.writers, args.events))


if __name__ == "__main__":
    main()
