"""Secrets never print: settings objects whose `repr()` hides keys, tokens and URL passwords.

Sits under every settings dataclass (the gateway's and `ConnectorSettings`): a field declared
with `metadata=SECRET` shows as `'<set>'` or `''`, a URL with a password in its user-info
(`postgresql://user:pw@db/kilde`, `redis://:pw@cache:6379/0`) shows with `***` for the
password, and free-form options whose name says secret (`client_secret`, `api_key`,
`password`, `token`) are hidden whole. `str()` of a dataclass is its `repr()`, so both are
safe to log or print; the values themselves are untouched.

>>> from dataclasses import dataclass, field
>>> @redacted_repr
... @dataclass(frozen=True)
... class Example:
...     url: str = "redis://:hunter2@cache:6379/0"
...     key: str = field(default="0123456789abcdef", metadata=SECRET)
>>> Example()
Example(url='redis://:***@cache:6379/0', key='<set>')
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")

SECRET: Mapping[str, bool] = {"secret": True}
"""Field metadata for a value that must never be shown (`field(metadata=SECRET)`)."""

_SECRET_NAME = re.compile(r"(secret|password|passwd|token|api_?key|private_?key|credential)",
                          re.IGNORECASE)
_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<rest>[^\s,'\"]*)", re.IGNORECASE)


def _hide_password(match: re.Match[str]) -> str:
    rest = match["rest"]
    at = rest.rfind("@")  # the last one: a password with an unencoded '@' or '/' is hidden too
    if at < 0 or ":" not in rest[:at]:
        return match[0]
    user = rest[:at].split(":", 1)[0]
    return f"{match['scheme']}{user}:***{rest[at:]}"


def redact_url(text: str) -> str:
    """`text` with the password of every `scheme://user:password@host` replaced by `***`.

    >>> redact_url("postgresql://kilde:s3cret@db:5432/kilde,redis://:pw@r:6379")
    'postgresql://kilde:***@db:5432/kilde,redis://:***@r:6379'
    """
    return _URL.sub(_hide_password, text)


def is_secret_name(name: str) -> bool:
    """Whether a free-form option called `name` holds a secret by its name alone."""
    return bool(_SECRET_NAME.search(name))


def shown(value: Any, *, secret: bool = False) -> str:
    """The `repr()` of one value, with secrets hidden."""
    if secret:
        return repr("<set>" if value else "")
    if isinstance(value, str):
        return repr(redact_url(value))
    if isinstance(value, Mapping):
        inner = ", ".join(f"{k!r}: {shown(v, secret=isinstance(k, str) and is_secret_name(k))}"
                          for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, tuple | list | frozenset | set) and any(isinstance(v, str) for v in value):
        items = ", ".join(shown(v) for v in value)
        if isinstance(value, tuple):
            return f"({items}{',' if len(value) == 1 else ''})"
        return f"[{items}]" if isinstance(value, list) else f"{type(value).__name__}({{{items}}})"
    return repr(value)


def redacted_repr(cls: type[T]) -> type[T]:
    """Class decorator for a dataclass: a `repr()` (and so `str()`) with secrets hidden."""

    def redacted(self: Any) -> str:
        parts = [f"{f.name}={shown(getattr(self, f.name), secret=bool(f.metadata.get('secret')))}"
                 for f in dataclasses.fields(self) if f.repr]
        return f"{type(self).__qualname__}({', '.join(parts)})"

    cls.__repr__ = redacted  # type: ignore[method-assign]
    return cls
