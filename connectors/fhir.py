"""Helpers for connectors that speak FHIR R4 over HTTP: one request, one Bundle, codings, dates.

Sits inside every built-in connector and is public for external ones (`__all__`).
`request_json` is the only place httpx errors are caught: they leave as our own
`ConnectorError`s, chained, with messages that carry no URL path, identifier or body. Readers are tolerant: unknown fields are
ignored, missing optional ones give None; a wrong *shape* is `UpstreamInvalidError`.

>>> coding_of({"coding": [{"system": "http://snomed.info/sct", "code": "304253006"}]})
Coding(system='http://snomed.info/sct', code='304253006', display=None)
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple
from urllib.parse import urlencode

import aiohttp
import httpx
import orjson

from connectors.credentials.upstream import UpstreamAuth
from connectors.deadline import timed_out
from connectors.errors import (
    UpstreamInvalidError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from connectors.http import error_name, is_timeout
from connectors.model import Coding

__all__ = [
    "FHIR_JSON",
    "MAX_BODY_BYTES",
    "JsonResponse",
    "bundle_entries",
    "bundle_resources",
    "coding_of",
    "expect_resource",
    "extension_value",
    "identifier_by_type",
    "identifier_value",
    "identifiers_by_type",
    "names_another_patient",
    "now",
    "parse_date",
    "parse_datetime",
    "patient_identifier",
    "request_json",
    "request_json_response",
    "security_of",
    "text_of",
]

FHIR_JSON = "application/fhir+json"
MAX_BODY_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class JsonResponse:
    """A decoded JSON answer with its status code and headers, for upstreams that signal
    privacy state in-band (a 403 OperationOutcome, a response header)."""

    status_code: int
    headers: Mapping[str, str]
    body: Any


async def request_json(
    http: httpx.AsyncClient,
    source: str,
    method: str,
    url: str,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    data: Mapping[str, str] | None = None,
    json: Any = None,
    auth: UpstreamAuth | None = None,
) -> Any:
    """Send one request and decode its JSON body, translating every failure.

    Timeouts -> `UpstreamTimeoutError` (`connectors.deadline.timed_out`); connection errors and 5xx -> `UpstreamUnavailableError`;
    4xx -> `UpstreamRejectedError`; a body that is not JSON -> `UpstreamInvalidError`.
    `auth` (from `request.credentials.to(audience)`) adds the upstream's HelseID token and a
    DPoP proof, and answers a DPoP nonce challenge (`connectors.credentials`).
    """
    response = await request_json_response(
        http, source, method, url, timeout=timeout, headers=headers, params=params, data=data,
        json=json, auth=auth,
    )
    return response.body


async def request_json_response(
    http: httpx.AsyncClient,
    source: str,
    method: str,
    url: str,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    data: Mapping[str, str] | None = None,
    json: Any = None,
    accept_status: Collection[int] = (),
    auth: UpstreamAuth | None = None,
) -> JsonResponse:
    """Like `request_json`, but keeps the status code and headers, and decodes (instead of
    raising for) the 4xx statuses in `accept_status`."""
    content = orjson.dumps(json) if json is not None else None
    all_headers = {"accept": FHIR_JSON, **(headers or {})}
    if content is not None:
        all_headers.setdefault("content-type", FHIR_JSON)
    session: aiohttp.ClientSession | None = getattr(http, "session", None)
    direct = session is not None and not http.event_hooks["request"]

    async def send(extra: Mapping[str, str]) -> _Answer:
        sent = {**all_headers, **extra} if extra else all_headers
        if direct and session is not None:
            return await _send_aiohttp(session, source, method, url, timeout=timeout,
                                       headers=sent, params=params, data=data, content=content)
        return await _send_httpx(http, source, method, url, timeout=timeout, headers=sent,
                                 params=params, data=data, content=content)

    if auth is None:
        answer = await send({})
    else:
        answer = await auth.send(source, method, url, send, timeout=timeout)
    _check_status(source, answer.status, accept_status)
    return _decode(source, answer.status, answer.headers, answer.body)


class _Answer(NamedTuple):
    """One response as both clients deliver it (a NamedTuple: built for every upstream call,
    ~4x cheaper than a frozen dataclass; read-only all the same)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def _check_status(source: str, status: int, accept_status: Collection[int]) -> None:
    """5xx -> unavailable; 4xx not in `accept_status` -> rejected (one rule for both clients)."""
    if status >= 500:
        raise UpstreamUnavailableError(source, f"Source {source!r} failed with HTTP {status}.")
    if status == 401 and 401 not in accept_status:
        raise UpstreamRejectedError(
            source, f"Source {source!r} did not accept Kilde's credentials (HTTP 401).", status
        )
    if status >= 400 and status not in accept_status:
        raise UpstreamRejectedError(
            source, f"Source {source!r} rejected the request with HTTP {status}.", status
        )


def _decode(source: str, status: int, headers: Mapping[str, str], raw: bytes) -> JsonResponse:
    if len(raw) > MAX_BODY_BYTES:
        raise UpstreamInvalidError(source, f"Source {source!r} sent an oversized response.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamInvalidError(source, f"Source {source!r} sent a body that is not JSON.") from exc
    return JsonResponse(status_code=status, headers=headers, body=body)


async def _send_httpx(
    http: httpx.AsyncClient,
    source: str,
    method: str,
    url: str,
    *,
    timeout: float,
    headers: Mapping[str, str],
    params: Mapping[str, str] | None,
    data: Mapping[str, str] | None,
    content: bytes | None,
) -> _Answer:
    try:
        response = await http.request(
            method, url, headers=headers, params=params, data=data, content=content,
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        if is_timeout(exc):
            raise timed_out(source, timeout) from exc
        raise UpstreamUnavailableError(
            source, f"Source {source!r} could not be reached ({error_name(exc)})."
        ) from exc
    return _Answer(response.status_code, response.headers, response.content)


async def _send_aiohttp(
    session: aiohttp.ClientSession,
    source: str,
    method: str,
    url: str,
    *,
    timeout: float,
    headers: Mapping[str, str],
    params: Mapping[str, str] | None,
    data: Mapping[str, str] | None,
    content: bytes | None,
) -> _Answer:
    """The same request straight on aiohttp (see `connectors.http.AiohttpClient`)."""
    body: Any = content
    if body is None and data is not None:
        body, headers = _form_body(data, headers)
    try:
        async with session.request(
            method, url, headers=headers, params=params, data=body,
            timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False,
        ) as response:
            if (response.content_length or 0) > MAX_BODY_BYTES:
                raise UpstreamInvalidError(
                    source, f"Source {source!r} sent an oversized response.")
            return _Answer(response.status, response.headers, await response.read())
    except TimeoutError as exc:
        raise timed_out(source, timeout) from exc
    except aiohttp.ClientError as exc:
        raise UpstreamUnavailableError(
            source, f"Source {source!r} could not be reached ({type(exc).__name__})."
        ) from exc


_FORM = "application/x-www-form-urlencoded"
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # what aiohttp refuses in a field name


def _form_body(data: Mapping[str, str],
               headers: Mapping[str, str]) -> tuple[Any, Mapping[str, str]]:
    """A form's urlencoded bytes, as aiohttp's `FormData` would encode the same dict, and the
    headers with its content type (unless one is set). aiohttp reaches FormData only after
    asking each of its payload types whether it takes a dict: ~75k instructions a form call,
    over a tenth of the whole exchange (bench/RESULTS.md). Anything that is not a dict of strings
    with plain field names (FormData warns about, or makes multipart, or refuses those) is
    left to aiohttp."""
    if type(data) is not dict or not all(
            type(k) is str and type(v) is str for k, v in data.items()) or _CONTROL.search(
            "".join(data)):
        return data, headers
    if not any(k.lower() == "content-type" for k in headers):
        headers = {**headers, "Content-Type": _FORM}
    return urlencode(list(data.items()), doseq=True).encode(), headers


def expect_resource(body: Any, resource_type: str, source: str) -> dict[str, Any]:
    """`body` as a FHIR resource of `resource_type`, or `UpstreamInvalidError`."""
    if not isinstance(body, dict) or body.get("resourceType") != resource_type:
        raise UpstreamInvalidError(source, f"Source {source!r} did not send a {resource_type}.")
    return body


def bundle_entries(bundle: Any, source: str) -> Iterator[dict[str, Any]]:
    """The entries of a Bundle (each a dict with `resource` and maybe `search`)."""
    expect_resource(bundle, "Bundle", source)
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise UpstreamInvalidError(source, f"Source {source!r} sent a Bundle with bad entries.")
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            raise UpstreamInvalidError(source, f"Source {source!r} sent a Bundle entry without "
                                               "a resource.")
        yield entry


def bundle_resources(
    bundle: Any, source: str, resource_type: str | None = None
) -> list[dict[str, Any]]:
    """The resources in a Bundle, optionally only those of `resource_type`."""
    resources = [e["resource"] for e in bundle_entries(bundle, source)]
    if resource_type is None:
        return resources
    return [r for r in resources if r.get("resourceType") == resource_type]


def coding_of(concept: Any, prefer_system: str | None = None) -> Coding | None:
    """The first (or the `prefer_system`) coding of a CodeableConcept, or None."""
    if not isinstance(concept, dict):
        return None
    # one pass, no list or sort: this runs for every coded field of every record
    c = None
    for candidate in concept.get("coding", []):
        if isinstance(candidate, dict) and candidate.get("code"):
            if not prefer_system or candidate.get("system") == prefer_system:
                c = candidate
                break
            if c is None:
                c = candidate  # the first, unless one of `prefer_system` follows
    if c is None:
        text = concept.get("text")
        return Coding("", "", text) if isinstance(text, str) else None
    display = c.get("display") or concept.get("text")
    system = c.get("system", "")
    code = c["code"]
    # str() of a str is the str itself, only dearer: called for the others alone
    return Coding(system if type(system) is str else str(system),
                  code if type(code) is str else str(code),
                  (display if type(display) is str else str(display)) if display else None)


def text_of(concept: Any) -> str | None:
    coding = coding_of(concept)
    if coding is None:
        return None
    return coding.display or coding.code or None


def security_of(resource: Mapping[str, Any]) -> tuple[Coding, ...]:
    """The `meta.security` labels of a resource, as Codings.

    A label that cannot be read (not an object, a code that is no string) raises `ValueError`:
    read leniently it would vanish, and the record would be shown as if unlabelled (an `R`
    item without its restriction). Connectors count such a record as unreadable."""
    meta = resource.get("meta")
    if meta is None:
        return ()
    labels = meta.get("security") if isinstance(meta, dict) else ()
    if labels is None:
        return ()
    if not isinstance(meta, dict) or not isinstance(labels, list):
        raise ValueError("A resource whose security labels cannot be read.")
    codings = []
    for label in labels:
        code = label.get("code") if isinstance(label, dict) else None
        if not isinstance(code, str) or not code:
            raise ValueError("A resource with a security label that cannot be read.")
        system, display = label.get("system", ""), label.get("display")
        codings.append(Coding(system if isinstance(system, str) else "", code,
                              display if isinstance(display, str) else None))
    return tuple(codings)


def parse_datetime(value: Any) -> datetime | None:
    """A FHIR dateTime/instant (also a bare date) as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        if len(value) == 4:
            return datetime(int(value), 1, 1, tzinfo=UTC)
        if len(value) == 7:
            return datetime(int(value[:4]), int(value[5:7]), 1, tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_date(value: Any) -> date | None:
    """A FHIR date (or the date part of a dateTime), or None."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    try:
        if len(value) == 10:  # the usual YYYY-MM-DD: no slice
            return date.fromisoformat(value)
        if len(value) == 4:
            return date(int(value), 1, 1)
        if len(value) == 7:
            return date(int(value[:4]), int(value[5:7]), 1)
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def identifier_value(resource: Mapping[str, Any], system: str) -> str | None:
    for ident in resource.get("identifier", []) or []:
        if isinstance(ident, dict) and ident.get("system") == system and ident.get("value"):
            return str(ident["value"])
    return None


def identifier_by_type(resource: Mapping[str, Any], type_text: str) -> str | None:
    """An identifier whose `type.text` is `type_text` (e.g. the PLL-id slice)."""
    return identifiers_by_type(resource).get(type_text)


def identifiers_by_type(resource: Mapping[str, Any]) -> dict[str, str]:
    """Each identifier of `resource` by its `type.text`, the first of each type with a value,
    in one walk (a medication list of thousands of statements asks for three types of each)."""
    found: dict[str, str] = {}
    for ident in resource.get("identifier", []) or []:
        if not isinstance(ident, dict) or not ident.get("value"):
            continue
        itype = ident.get("type")
        text = itype.get("text") if isinstance(itype, dict) else None
        if isinstance(text, str) and text not in found:
            found[text] = str(ident["value"])
    return found


def extension_value(resource: Mapping[str, Any], url: str) -> Any:
    for ext in resource.get("extension", []) or []:
        if isinstance(ext, dict) and ext.get("url") == url:
            for key, value in ext.items():
                if key.startswith("value"):
                    return value
    return None


def names_another_patient(element: Any, nin: str) -> bool:
    """True when a record's `patient`/`subject` element (or a Patient's `identifier` list) names
    a person by an identifier that is not `nin`, or by one Kilde cannot read: a source asked
    about one patient that answers with such a record has answered about someone else. An
    element without an identifier (a reference only) says nothing here."""
    if isinstance(element, list):
        found = [i for i in element if isinstance(i, _OBJECT)]
        return bool(element) and not any(
            isinstance(i.get("value"), str) and i["value"].strip() == nin for i in found)
    if not isinstance(element, _OBJECT) or element.get("identifier") is None:
        return False
    identifier = element["identifier"]
    value = identifier.get("value") if isinstance(identifier, _OBJECT) else None
    return not isinstance(value, str) or value.strip() != nin


# A JSON object: a dict is told by its type before the Mapping ABC (whose check runs Python)
_OBJECT = (dict, Mapping)


def patient_identifier(nin: str, system: str) -> str:
    """The FHIR token search value `system|value` for a patient identifier."""
    return f"{system}|{nin}"


def now() -> datetime:
    return datetime.now(UTC)
