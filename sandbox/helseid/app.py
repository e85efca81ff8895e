"""The HelseID simulator's HTTP face: discovery, JWKS, the token endpoint and its controls.

    /helseid/.well-known/openid-configuration        discovery (issuer = this mount's URL)
    /helseid/.well-known/openid-configuration/jwks   the issuer's public keys
    /helseid/connect/token                           token exchange, client credentials
    /_sandbox/helseid/token          POST {persona, patient?, jkt?, purpose?, lifetime?}: a
                                     persona's token for Kilde (what `kilde token` prints)
    /_sandbox/helseid/keys           GET the kids; POST rotates (new signing key)
    /_sandbox/helseid/keys/{kid}     DELETE unpublishes a key
    /_sandbox/helseid/requests       GET token-endpoint counts per client/grant/audience/
                                     subject; DELETE resets them
    /_sandbox/helseid/settings       GET/PUT {token_lifetime, require_nonce, resource_nonce}
    /_sandbox/helseid/clients[/{id}] GET the registered clients; PUT registers one
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.helseid.checks import PROOF_ALGS, RefusedError
from sandbox.helseid.issuer import GRANTS, KILDE_AUDIENCE, Client, HelseId, sandbox_root

_NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


def create_app(helseid: HelseId) -> Starlette:
    """The OIDC side, mounted at `/helseid`."""

    async def discovery(request: Request) -> Response:
        issuer = helseid.issuer_for(request.scope)
        return JSONResponse({
            "issuer": issuer,
            "jwks_uri": f"{issuer}/.well-known/openid-configuration/jwks",
            "token_endpoint": f"{issuer}/connect/token",
            "grant_types_supported": sorted(GRANTS),
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": sorted(PROOF_ALGS),
            "dpop_signing_alg_values_supported": sorted(PROOF_ALGS),
            "authorization_details_types_supported": ["nhn:tillitsrammeverk:parameters"],
        })

    async def jwks(request: Request) -> Response:
        return JSONResponse(helseid.ring.jwks())

    async def token(request: Request) -> Response:
        issuer = helseid.issuer_for(request.scope)
        if not request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            return JSONResponse({"error": "invalid_request",
                                 "error_description": "Send the form urlencoded."},
                                status_code=400, headers=_NO_STORE)
        # parse_qsl, not request.form(): Starlette's needs python-multipart for urlencoded too
        values = dict(parse_qsl((await request.body()).decode("latin-1")))
        try:
            answer = helseid.token_request(values, request.headers.get("dpop"), issuer=issuer,
                                           endpoint=f"{issuer}/connect/token", now=time.time())
        except RefusedError as refused:
            helseid.refusals[refused.error] += 1
            headers = dict(_NO_STORE)
            if refused.error == "use_dpop_nonce":
                headers["dpop-nonce"] = helseid.nonce
            status = 401 if refused.error == "invalid_client" else 400
            return JSONResponse({"error": refused.error,
                                 "error_description": refused.description},
                                status_code=status, headers=headers)
        headers = dict(_NO_STORE)
        if helseid.require_nonce:
            headers["dpop-nonce"] = helseid.nonce
        return JSONResponse(answer, headers=headers)

    return Starlette(routes=[
        Route("/.well-known/openid-configuration", discovery),
        Route("/.well-known/openid-configuration/jwks", jwks),
        Route("/connect/token", token, methods=["POST"]),
    ])


def _bad(message: str, status: int = 400) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ValueError("Expected a JSON object.") from None
    if not isinstance(body, dict):
        raise ValueError("Expected a JSON object.")
    return body


def control_routes(helseid: HelseId) -> list[Route]:
    """The `/_sandbox/helseid/...` knobs, mounted beside the other sandbox controls."""

    async def persona_token(request: Request) -> Response:
        try:
            body = await _json_object(request)
            persona = body.get("persona")
            if not isinstance(persona, str):
                raise ValueError("Name a 'persona'.")
            lifetime = int(body.get("lifetime", 3600))
            if not 1 <= lifetime <= 86400:
                raise ValueError("'lifetime' must be 1..86400 seconds.")
            jkt = body.get("jkt")
            if jkt is not None and (not isinstance(jkt, str) or not 20 <= len(jkt) <= 128):
                raise ValueError("'jkt' must be a JWK thumbprint (base64url SHA-256).")
            issued = helseid.persona_token(
                persona, body.get("patient"), issuer=helseid.issuer_for(request.scope),
                audience=str(body.get("audience", KILDE_AUDIENCE)), jkt=jkt, lifetime=lifetime,
                attest_age=int(body.get("attest_age", 0)), purpose=body.get("purpose"))
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        return JSONResponse({"access_token": issued, "token_type": "DPoP" if jkt else "Bearer",
                             "expires_in": lifetime}, headers=_NO_STORE)

    async def keys(request: Request) -> Response:
        if request.method == "POST":
            helseid.ring.rotate()
        return JSONResponse({"signing": helseid.ring.signing_kid, "kids": helseid.ring.kids()})

    async def key(request: Request) -> Response:
        try:
            removed = helseid.ring.remove(request.path_params["kid"])
        except ValueError as exc:
            return _bad(str(exc), 409)
        if not removed:
            return _bad("Unknown key.", 404)
        return JSONResponse({"signing": helseid.ring.signing_kid, "kids": helseid.ring.kids()})

    async def requests(request: Request) -> Response:
        if request.method == "DELETE":
            helseid.counts.clear()
            helseid.refusals.clear()
        return JSONResponse({"total": sum(helseid.counts.values()),
                             "requests": helseid.count_rows(),
                             "refused": dict(helseid.refusals)})

    async def settings(request: Request) -> Response:
        if request.method == "PUT":
            try:
                helseid.update(await _json_object(request))
            except (ValueError, TypeError) as exc:
                return _bad(str(exc))
        return JSONResponse(helseid.settings())

    async def clients(request: Request) -> Response:
        return JSONResponse([c.as_json() for c in helseid.clients.values()])

    async def client(request: Request) -> Response:
        client_id = request.path_params["client_id"]
        try:
            helseid.clients[client_id] = Client.from_json(client_id, await _json_object(request))
        except (ValueError, TypeError, AttributeError) as exc:
            return _bad(str(exc))
        return JSONResponse(helseid.clients[client_id].as_json())

    return [
        Route("/_sandbox/helseid/token", persona_token, methods=["POST"]),
        Route("/_sandbox/helseid/keys", keys, methods=["GET", "POST"]),
        Route("/_sandbox/helseid/keys/{kid}", key, methods=["DELETE"]),
        Route("/_sandbox/helseid/requests", requests, methods=["GET", "DELETE"]),
        Route("/_sandbox/helseid/settings", settings, methods=["GET", "PUT"]),
        Route("/_sandbox/helseid/clients", clients),
        Route("/_sandbox/helseid/clients/{client_id}", client, methods=["PUT"]),
    ]


__all__ = ["control_routes", "create_app", "sandbox_root"]
