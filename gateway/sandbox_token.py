"""`kilde token`: a persona's access token from the running sandbox's HelseID simulator.

Sits beside the request flow, used only by the CLI: the simulator (`sandbox.helseid`) is the
demo's HelseID, so the token the command prints is one HelseID issued, for Kilde's audience,
carrying the persona's claims and care-relationship attest, and (with `jkt`) bound to the
caller's DPoP key (`cnf.jkt`). httpx errors become `TokenRequestError` with one sentence.

>>> request_token("http://127.0.0.1:8000", "legevakt-lege", "14033841389")  # doctest: +SKIP
'eyJ...'
"""

from __future__ import annotations

import httpx

from connectors.identifiers import is_valid_nin


class TokenRequestError(Exception):
    """The simulator could not be reached or refused the request; the message says which."""


def request_token(base_url: str, persona: str, patient: str | None = None, *,
                  purpose: str | None = None, jkt: str | None = None,
                  audience: str = "kilde", timeout: float = 5.0) -> str:
    """The access token the simulator at `base_url` issues `persona` (ValueError for a bad
    identity number, before anything is sent)."""
    if patient is not None and not is_valid_nin(patient):
        raise ValueError("The patient must be a valid national identity number.")
    body: dict[str, str] = {"persona": persona, "audience": audience}
    for name, value in (("patient", patient), ("purpose", purpose), ("jkt", jkt)):
        if value is not None:
            body[name] = value
    url = f"{base_url.rstrip('/')}/_sandbox/helseid/token"
    try:
        response = httpx.post(url, json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        raise TokenRequestError(
            f"No sandbox HelseID answers at {base_url} ({type(exc).__name__}); start "
            "`kilde demo` (or `kilde sandbox`) first, or name it with --sandbox URL.") from exc
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code != 200 or not isinstance(answer, dict):
        reason = answer.get("error") if isinstance(answer, dict) else None
        raise TokenRequestError(f"The sandbox HelseID refused the token request "
                                f"(HTTP {response.status_code}): {reason or 'no reason given'}")
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise TokenRequestError("The sandbox HelseID sent no access token.")
    return token
