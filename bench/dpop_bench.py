"""What DPoP verification costs per request, in CPU, against the bearer path it replaces.

    python -m bench.dpop_bench [--requests 2000] [--redis-url redis://127.0.0.1:6379/9]

Runs `Authenticator.authenticate` in one process, on one core, with the access token already
verified (the verified-token cache hit every app's second request gets), so the figures are
the proof's own cost: header checks, thumbprint, signature, claims, replay store. Rows: Bearer
(the floor), DPoP with an ES256 / PS256 / RS256 proof key, DPoP with server nonces, and DPoP
with the replay store in Redis (when `--redis-url` is given). Each proof is made before the
clock starts (making it is the client's cost). Appends a table to bench/RESULTS.md with
`--record`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from connectors.credentials import PrivateKey, dpop_proof, generate_key
from gateway.auth import Authenticator
from gateway.auth.dpop import ProofRules
from gateway.auth.replay import open_replay_store
from gateway.settings import DEMO_TENANTS, AuthSettings

ISSUER = "https://helseid-sts.bench.example"
URL = "https://kilde.bench.example/graphql"
PID = "04125845687"


@dataclass(frozen=True)
class Row:
    name: str
    per_request_us: float
    cpu_us: float


def _issuer() -> tuple[rsa.RSAPrivateKey, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return key, {"keys": [{**jwk, "kid": "bench-1", "use": "sig", "alg": "RS256"}]}


def _token(key: rsa.RSAPrivateKey, jkt: str | None) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER, "aud": "kilde", "iat": now, "nbf": now, "exp": now + 3600,
        "client_id": "bench", "scope": "kilde/patient.read",
        "helseid://claims/identity/pid": PID,
        "helseid://claims/identity/security_level": "4",
        "helseid://claims/hpr/hpr_number": "9144901",
        "helseid://claims/client/claims/orgnr_parent": "910000004",
    }
    if jkt:
        claims["cnf"] = {"jkt": jkt}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "bench-1", "typ": "at+jwt"})


async def _run(name: str, auth: Authenticator, token: str, key: PrivateKey | None,
               requests: int, nonce: str | None = None) -> Row:
    scheme = "DPoP" if key is not None else "Bearer"
    proofs = [dpop_proof(key, "POST", URL, access_token=token, nonce=nonce) if key else ""
              for _ in range(requests)]
    await auth.authenticate(f"{scheme} {token}", proofs=[proofs[0]] if key else [],
                            method="POST", url=URL)  # the token is verified once, here
    started, cpu = time.perf_counter(), time.process_time()
    for proof in proofs[1:]:
        await auth.authenticate(f"{scheme} {token}", proofs=[proof] if key else [],
                                method="POST", url=URL)
    n = requests - 1
    return Row(name, (time.perf_counter() - started) / n * 1e6,
               (time.process_time() - cpu) / n * 1e6)


async def measure(requests: int, redis_url: str | None) -> list[Row]:
    issuer_key, jwks = _issuer()
    rows = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(
            lambda r: httpx.Response(200, json=jwks))) as http:

        def auth(**changes: Any) -> Authenticator:
            settings = AuthSettings(issuer=ISSUER, audience="kilde", jwks_url="https://j/",
                                    dpop="allowed", **changes)
            return Authenticator(settings, http, DEMO_TENANTS)

        rows.append(await _run("Bearer (verified token, no proof)", auth(),
                               _token(issuer_key, None), None, requests))
        for alg in ("ES256", "PS256", "RS256"):
            key = generate_key(alg=alg)
            rows.append(await _run(f"DPoP, {alg} proof, replay store in process", auth(),
                                   _token(issuer_key, key.thumbprint), key, requests))
        key = generate_key()
        nonced = auth(dpop_nonce=True)
        assert nonced.dpop.nonces is not None
        rows.append(await _run("DPoP, ES256 proof, server nonce", nonced,
                               _token(issuer_key, key.thumbprint), key, requests,
                               nonce=nonced.dpop.nonces.current()))
        if redis_url:
            replay = open_replay_store(redis_url, ProofRules().replay_window, op_timeout=0.25,
                                       retry_seconds=1.0)
            try:
                shared = Authenticator(AuthSettings(issuer=ISSUER, audience="kilde",
                                                    jwks_url="https://j/"), http, DEMO_TENANTS,
                                       replay=replay)
                rows.append(await _run("DPoP, ES256 proof, replay store in Redis", shared,
                                       _token(issuer_key, key.thumbprint), key, requests))
            finally:
                await replay.aclose()
    return rows


def _table(rows: list[Row]) -> str:
    base = rows[0].cpu_us
    lines = ["| path | wall µs/request | CPU µs/request | CPU added vs Bearer |",
             "|---|---:|---:|---:|"]
    lines += [f"| {r.name} | {r.per_request_us:.0f} | {r.cpu_us:.0f} | "
              f"{r.cpu_us - base:+.0f} |" for r in rows]
    return "\n".join(lines)


def _commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+uncommitted changes" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    load = os.getloadavg()
    rows = asyncio.run(measure(max(2, args.requests), args.redis_url))
    table = _table(rows)
    print(table)
    if args.record:
        command = "python -m bench.dpop_bench --requests {}{}".format(
            args.requests, f" --redis-url {args.redis_url}" if args.redis_url else "")
        entry = (f"\n### DPoP verification cost per request, "
                 f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {_commit()}\n\n"
                 f"`{command}` (one process, one event loop, token already verified; "
                 f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
                 f"Python {platform.python_version()}; load average before: "
                 f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f})\n\n{table}\n")
        with Path(__file__).with_name("RESULTS.md").open("a", encoding="utf-8") as results:
            results.write(entry)


if __name__ == "__main__":
    main()
