"""One error tree (schema/errors.py): one root, each code of DESIGN.md's contract given by
exactly one class and produced by exactly one branch of the map, and no handler that turns
somebody else's ValueError into the client's mistake."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest
import strawberry
from graphql import GraphQLError

from connectors.errors import ConnectorError, KildeError
from schema.errors import (
    CONTRACT,
    INTERNAL_MESSAGE,
    BadUserInputError,
    InvalidValueError,
    LaunchUnavailableError,
    StoppingError,
    classify,
    error_dict,
    format_error,
)

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT.parent / "shared" / "DESIGN.md"
INTERNAL = "INTERNAL_SERVER_ERROR"
# every module a client's error can come from (the asgi entry point builds an app on import)
SKIP = {"gateway.asgi"}


def contract_codes() -> set[str]:
    text = DESIGN.read_text()
    section = text[text.index("**Errors**"):]
    section = section[:section.index("with `extensions.source`")]
    return set(re.findall(r"\b[A-Z][A-Z_]{3,}\b", section))


def kilde_modules() -> list[str]:
    names = []
    for package in ("connectors", "policies", "schema", "gateway"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if name not in SKIP and "scaffold.templates" not in name:
                names.append(name)
    return names


def error_classes() -> list[type[Exception]]:
    """Every exception class Kilde's packages define."""
    found: dict[str, type[Exception]] = {}
    for name in kilde_modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (inspect.isclass(value) and issubclass(value, Exception)
                    and value.__module__.split(".")[0] in {"connectors", "policies", "schema",
                                                           "gateway"}):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def test_the_contract_is_designs_list() -> None:
    codes = contract_codes()
    assert "UPSTREAM_TIMEOUT" in codes  # the section was found
    assert set(CONTRACT) == codes
    assert all(cls.code == code for code, cls in CONTRACT.items())
    assert len(set(CONTRACT.values())) == len(CONTRACT)


def test_one_root_every_class_with_a_code_descends_from_it() -> None:
    roots = [cls for cls in error_classes()
             if hasattr(cls, "code") and not issubclass(cls, KildeError)
             and isinstance(cls.code, str) and cls.code.isupper()]
    assert roots == []


def test_each_class_gives_the_code_of_the_contract_class_it_descends_from() -> None:
    """Only the contract's classes (and the root, and ConnectorError's default for a bare
    one) say a code; any other class takes the code of the first contract class it
    descends from, so one code is one branch of the tree."""
    contract = set(CONTRACT.values())
    checked = 0
    for cls in error_classes():
        if not issubclass(cls, KildeError) or cls.__qualname__ in WRAPPERS:
            continue
        checked += 1
        if cls in contract or cls in (KildeError, ConnectorError):
            continue
        assert "code" not in vars(cls), f"{cls.__qualname__} says a code of its own"
        owners = [base for base in cls.__mro__ if base in contract]
        assert owners, f"{cls.__qualname__} descends from no contract class"
        assert cls.code == owners[0].code, cls.__qualname__
    assert checked > len(CONTRACT)  # the gateway's own branches were found too


# errors that carry the code of the source error they wrap, per instance: a write whose
# outcome is unknown, or that was never sent, says which UPSTREAM_* failure left it so
WRAPPERS = {"WriteUnknownError", "WriteNotSentError"}


def test_a_wrapper_gives_its_source_errors_code() -> None:
    from connectors.errors import UpstreamTimeoutError
    from schema.write.record import WriteUnknownError

    error = WriteUnknownError(UpstreamTimeoutError("municipal", "Source 'municipal' failed."))
    assert error.code == "UPSTREAM_TIMEOUT"
    assert error_dict(error)["extensions"]["source"] == "municipal"


def _instance(cls: type[KildeError]) -> KildeError:
    if issubclass(cls, ConnectorError):
        return cls("pll", "Source 'pll' failed.")
    return cls("It failed.", reason="X")


@pytest.mark.parametrize("code", sorted(CONTRACT))
def test_each_code_comes_from_one_branch_of_the_map(code: str) -> None:
    error = _instance(CONTRACT[code])
    answer = format_error(GraphQLError(error.message, path=["patient"], original_error=error))
    assert answer["extensions"]["code"] == code
    assert error_dict(error)["extensions"]["code"] == code
    # the other branches of the map give BAD_USER_INPUT or the masked root only
    others = {classify(GraphQLError("Syntax Error: Unexpected Name 'x'.")).code,
              classify(GraphQLError("boom", path=["patient"],
                                    original_error=ValueError("boom"))).code}
    assert code not in others or code == "BAD_USER_INPUT"
    if issubclass(CONTRACT[code], ConnectorError):
        assert answer["extensions"]["source"] == "pll"
    else:
        assert answer["extensions"]["reason"] == "X"


def test_the_launch_store_is_an_unavailable_source_named_launch() -> None:
    answer = error_dict(LaunchUnavailableError("The launch could not be checked."))
    assert answer["extensions"] == {"code": "UPSTREAM_UNAVAILABLE", "source": "launch"}


def test_a_stopping_kilde_is_unavailable_named_kilde_with_the_reason() -> None:
    answer = error_dict(StoppingError())
    assert answer["extensions"] == {"code": "UPSTREAM_UNAVAILABLE", "source": "kilde",
                                    "reason": "SHUTTING_DOWN"}
    assert issubclass(StoppingError, CONTRACT["UPSTREAM_UNAVAILABLE"])


@strawberry.type
class Query:
    @strawberry.field
    def broken(self) -> int:
        raise ValueError("a bug's message with 14033841389 in it")

    @strawberry.field
    def bad(self) -> int:
        raise BadUserInputError("'first' must be between 1 and 100.", argument="first")

    @strawberry.field
    def echo(self, n: int) -> int:
        return n


SCHEMA = strawberry.Schema(query=Query)


@pytest.mark.parametrize(("query", "variables", "code", "extra"), [
    ("{ broken }", None, INTERNAL, {}),
    ("{ bad }", None, "BAD_USER_INPUT", {"argument": "first"}),
    ("{ nope }", None, "BAD_USER_INPUT", {}),
    ("{ broken", None, "BAD_USER_INPUT", {}),
    ("query ($n: Int!) { echo(n: $n) }", {"n": "14033841389"}, "BAD_USER_INPUT",
     {"variable": "n"}),
])
async def test_a_real_execution_gets_one_code_per_error(
        query: str, variables: dict[str, object] | None, code: str,
        extra: dict[str, str]) -> None:
    result = await SCHEMA.execute(query, variable_values=variables)
    assert result.errors
    answer = format_error(result.errors[0])
    assert answer["extensions"] == {"code": code, **extra}
    assert "14033841389" not in str(answer)
    if code == INTERNAL:
        assert answer["message"] == INTERNAL_MESSAGE  # a bug's ValueError is no bad input


def test_a_value_the_client_sent_is_bad_input_and_a_value_error_for_the_cli() -> None:
    error = InvalidValueError("'to' must be later than 'from'.", argument="to")
    assert isinstance(error, ValueError)
    assert error.code == "BAD_USER_INPUT"


def _translating_handlers(path: Path) -> list[str]:
    """`except ValueError` (or Exception) handlers that answer with a client's error code,
    and the number of statements they guard."""
    source = path.read_text()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Try):
            continue
        for handler in node.handlers:
            caught = handler.type
            names = [getattr(n, "id", getattr(n, "attr", "")) for n in (
                caught.elts if isinstance(caught, ast.Tuple) else [caught])] if caught else [
                "Exception"]
            text = ast.get_source_segment(source, handler) or ""
            if ({"ValueError", "Exception"} & set(names)
                    and re.search(r"BAD_USER_INPUT|BadUserInput|InvalidValue|_error\(400", text)
                    and (len(node.body) > 1 or isinstance(node.body[0], ast.If | ast.For
                                                          | ast.With | ast.Try))):
                found.append(f"{path.relative_to(ROOT)}:{handler.lineno}")
    return found


def test_no_value_error_handler_guards_more_than_one_parse() -> None:
    """A handler that turns a ValueError into BAD_USER_INPUT guards one statement (the parse
    of what the client sent), so a bug's ValueError elsewhere is never the client's mistake."""
    found = [hit for package in ("gateway", "schema")
             for path in sorted((ROOT / package).rglob("*.py")) if path.name != "cli.py"
             for hit in _translating_handlers(path)]
    assert found == []


def test_the_handler_scan_finds_a_wide_one(tmp_path: Path) -> None:
    wide = tmp_path / "door.py"
    wide.write_text("def f(body):\n    try:\n        a = parse(body)\n        b = use(a)\n"
                    "    except ValueError:\n        return _error(400, 'BAD_USER_INPUT', 'no')\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert _translating_handlers(wide) == ["door.py:5"]
    finally:
        ROOT = saved


# Modules that read a code a response or an error carries (never make one): the judge maps
# UPSTREAM_* codes to statuses (home.py and municipal/ too), the contract kit names the code each fault must give, the CDS
# cards word codes in Norwegian.
READERS = {"schema/pipeline/judge.py", "schema/pipeline/home.py", "connectors/testing/checks.py",
           "gateway/cds/cards.py", "connectors/municipal/connector.py",
           "connectors/municipal/reading.py"}
TREE = {"connectors/errors.py", "schema/errors.py"}


def test_a_code_is_written_only_by_its_class() -> None:
    """No door writes `extensions.code` as a string of its own: every error body comes from an
    error of the tree (`error_dict`), so a code cannot drift from the contract."""
    codes = set(CONTRACT) | {INTERNAL}
    found = []
    for package in ("connectors", "policies", "schema", "gateway"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in READERS | TREE:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and (
                        node.value in codes or node.value in {"CACHE_UNAVAILABLE", "NOT_FOUND"}):
                    found.append(f"{rel}:{node.lineno} {node.value}")
    assert found == []
