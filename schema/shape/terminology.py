"""The treatment-limitation terminology as data: which codes and words mean HLR-minus, full
treatment or another limitation.

Sits beside the shape stage: the gateway loads it once at start (`load_terminology`, from
`limitations.toml` here plus the operator's `KILDE_TERMINOLOGY_FILE`), the services carry it,
and `schema.shape.conflicts` asks it what each decision means. A bad file fails the start with
one `ValueError` naming the file and the entry.

>>> terms = load_terminology()
>>> terms.meaning_of(Coding("http://snomed.info/sct", "304253006"), "")
<LimitationMeaning.HLR_MINUS: 'HLR_MINUS'>
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from connectors.model import Coding, LimitationMeaning

_BUILTIN = "limitations.toml"
_KNOWN = {m.value: m for m in LimitationMeaning if m is not LimitationMeaning.UNKNOWN}


@dataclass(frozen=True)
class Terminology:
    """Codes ((system, code) -> meaning) and words (substring -> meaning, in order)."""

    codes: Mapping[tuple[str, str], LimitationMeaning] = field(default_factory=dict)
    texts: tuple[tuple[str, LimitationMeaning], ...] = ()

    def meaning_of(self, code: Coding, *texts: str | None) -> LimitationMeaning:
        """The meaning of a decision coded `code` and described by `texts`: the code decides
        when it is known; otherwise the first phrase found in any text; else UNKNOWN."""
        known = self.codes.get((code.system, code.code))
        if known is not None:
            return known
        words = " ".join(t for t in (code.display, *texts) if t).casefold()
        for phrase, meaning in self.texts:
            if phrase in words:
                return meaning
        return LimitationMeaning.UNKNOWN


def load_terminology(path: str | None = None) -> Terminology:
    """The built-in terminology, with `path`'s codes and words added (when given)."""
    text = resources.files("schema.shape").joinpath(_BUILTIN).read_text(encoding="utf-8")
    layers = [_parse(_decode(text, f"schema/shape/{_BUILTIN}"), f"schema/shape/{_BUILTIN}")]
    if path:
        layers.append(_parse(_read(path), path))
    codes: dict[tuple[str, str], LimitationMeaning] = {}
    texts: list[tuple[str, LimitationMeaning]] = []
    for layer_codes, layer_texts in layers:
        codes.update(layer_codes)
        # a later file's phrases are tried first: an operator's words override ours
        texts = layer_texts + [t for t in texts if t[0] not in {p for p, _ in layer_texts}]
    return Terminology(codes, tuple(texts))


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ValueError(f"Terminology file {path!r} cannot be read "
                         f"({exc.strerror or type(exc).__name__}).") from exc
    try:
        return _decode(raw.decode("utf-8"), path)
    except UnicodeDecodeError as exc:
        raise ValueError(f"Terminology file {path!r} is not UTF-8 text.") from exc


def _decode(text: str, file: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"Terminology file {file!r} is not valid TOML: {exc}.") from exc


def _meaning(entry: Mapping[str, Any], where: str, file: str) -> LimitationMeaning:
    value = entry.get("meaning")
    if value not in _KNOWN:
        raise ValueError(f"Terminology file {file!r} has an invalid meaning in {where}: "
                         f"expected one of {sorted(_KNOWN)}.")
    return _KNOWN[value]


def _parse(doc: dict[str, Any], file: str
           ) -> tuple[dict[tuple[str, str], LimitationMeaning], list[tuple[str, LimitationMeaning]]]:
    unknown = sorted(set(doc) - {"codes", "texts"})
    if unknown:
        raise ValueError(f"Terminology file {file!r} has an unknown key {unknown[0]!r}.")
    codes: dict[tuple[str, str], LimitationMeaning] = {}
    texts: list[tuple[str, LimitationMeaning]] = []
    for i, entry in enumerate(_entries(doc, "codes", file)):
        where = f"codes[{i}]"
        system, code = entry.get("system"), entry.get("code")
        if not (isinstance(system, str) and system and isinstance(code, str) and code):
            raise ValueError(f"Terminology file {file!r} has an invalid {where}: expected a "
                             "'system' and a 'code'.")
        codes[(system, code)] = _meaning(entry, where, file)
    for i, entry in enumerate(_entries(doc, "texts", file)):
        where = f"texts[{i}]"
        phrase = entry.get("contains")
        if not isinstance(phrase, str) or not phrase.strip():
            raise ValueError(f"Terminology file {file!r} has an invalid {where}: expected a "
                             "'contains' phrase.")
        texts.append((phrase.strip().casefold(), _meaning(entry, where, file)))
    return codes, texts


def _entries(doc: dict[str, Any], key: str, file: str) -> list[dict[str, Any]]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise ValueError(f"Terminology file {file!r} has an invalid {key!r}: expected an "
                         f"array of [[{key}]] tables.")
    return value
