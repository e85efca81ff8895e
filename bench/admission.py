"""The costliest documents the query limits admit: parse, limits and validation CPU per query.

A client can send a new query text on every request, so the parse and validation caches do not
help against one that is built to be slow. This constructs worst cases family by family (one
field repeated, same-named trees, fragments spread together, aliases, directives, variables,
arguments, operations, unknown fields with suggestions, introspection), grows each until the
limits refuse it, keeps the largest admitted one, and measures what the gateway spends on it
before execution: `Limiter.parse` + `Limiter.check` + graphql-core validation. A seeded random
search then mixes the families. Figures are CPU milliseconds (process time), best of a few
runs, next to the legevakt query for scale.

    python -m bench.admission                  # production limits (introspection off)
    python -m bench.admission --introspection  # demo: introspection and suggestions on
"""

from __future__ import annotations

import argparse
import platform
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from graphql import GraphQLSchema, specified_rules

from gateway.cli import EXAMPLE_QUERY
from gateway.limits import Limiter
from gateway.settings import LimitsSettings
from schema.errors import KildeError
from schema.query import build_schema
from schema.validation import Validator

NIN = "14033841389"
RULES = tuple(specified_rules)
V = "query($n: String!) "


@dataclass(frozen=True)
class Case:
    family: str
    size: int
    query: str


def _nest(name: str, inner: str, copies: int) -> str:
    return " ".join(f"{name} {{ {inner} }}" for _ in range(copies))


FAMILIES: dict[str, Callable[[int], str]] = {
    "one field repeated": lambda n: "{ me { " + "kind " * n + "} }",
    "root field repeated": lambda n: "{ " + "me { kind } " * n + "}",
    "same-named tree (branching 2)": lambda n: V + "{ " + _nest(
        "patient(nin: $n)", _nest("labResults", _nest("results", _nest(
            "code", "system " * max(1, n // 8), 2), 2), 2), 2) + " }",
    "same-named tree (branching 3)": lambda n: V + "{ " + _nest(
        "patient(nin: $n)", _nest("labResults", _nest("results", _nest(
            "code", "system " * max(1, n // 27), 3), 3), 3), 1) + " }",
    "fragments spread together": lambda n: V + "{ patient(nin: $n) { " + " ".join(
        f"...F{i}" for i in range(n)) + " } } " + " ".join(
        f"fragment F{i} on Patient {{ nin alerts {{ title kind }} }}" for i in range(n)),
    "fragments at every level": lambda n: V + "{ patient(nin: $n) { ...A labResults { ...B "
        "results { ...C } } } } " + " ".join(
        f"fragment {k} on {t} {{ {f * n} }}" for k, t, f in (
            ("A", "Patient", "nin "), ("B", "LabReport", "id "), ("C", "LabResult", "id "))),
    "aliases that clash": lambda n: "{ " + " ".join(
        "a: me { kind } a: me { name }" for _ in range(n)) + " }",
    "directives on one field": lambda n: "{ me { kind " + "@include(if: true) " * n + "} }",
    "variables, all unused": lambda n: "query(" + " ".join(
        f"$v{i}: String" for i in range(n)) + ") { me { kind } }",
    "arguments repeated": lambda n: "{ patient(" + ", ".join(
        f'nin: "{NIN}"' for _ in range(n)) + ") { nin } }",
    "operations": lambda n: " ".join(f"query Q{i} {{ me {{ kind }} }}" for i in range(n)),
    "unknown fields (suggestions)": lambda n: "{ me { " + " ".join(
        f"kinx{i}" for i in range(n)) + " } }",
    "unused fragments": lambda n: "{ me { kind } } " + " ".join(
        f"fragment F{i} on Principal {{ kind name }}" for i in range(n)),
    "nested lists in an argument": lambda n: '{ usage(from: ' + "[" * n + "1" + "]" * n +
        ") { day } }",
    "deep introspection": lambda n: '{ __type(name: "Query") { ' + "ofType { " * n + "name" +
        " }" * n + " } }",
    "introspection repeated": lambda n: "{ " + " ".join(
        f"s{i}: __schema {{ types {{ name fields {{ name type {{ name ofType {{ name }} }} }} }} }}"
        for i in range(n)) + " }",
}


def cpu_ms(fn: Callable[[], object], repeats: int = 7) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best * 1000


def admission_cost(limiter: Limiter, schema: GraphQLSchema, query: str) -> float | None:
    """CPU ms to parse, limit and validate `query` as the gateway does (a fresh text every
    time: the parse cache is bypassed), or None when the limits refuse it."""

    def run() -> None:
        document = limiter._parse(query)
        limiter.check(document, schema, {"n": NIN})
        Validator(maxsize=0, suggestions=limiter.introspection).errors(
            schema, document, None, RULES)  # as the schema does: demo mode suggests

    try:
        run()
    except KildeError:
        return None
    return cpu_ms(run)


def largest_admitted(limiter: Limiter, schema: GraphQLSchema, family: Callable[[int], str],
                     ceiling: int = 4096) -> tuple[int, str] | None:
    """The largest size of `family` the limits admit (doubling, then bisecting)."""

    def admitted(n: int) -> bool:
        try:
            limiter.check(limiter._parse(family(n)), schema, {"n": NIN})
        except KildeError:
            return False
        return True

    if not admitted(1):
        return None
    low, high = 1, 2
    while high <= ceiling and admitted(high):
        low, high = high, high * 2
    high = min(high, ceiling + 1)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if admitted(mid) else (low, mid)
    return low, family(low)


def random_cases(seed: int, count: int) -> Iterator[Case]:
    """Mixtures of the families at random sizes (seeded, so a run can be repeated)."""
    rng = random.Random(seed)
    names = [n for n in FAMILIES if "introspection" not in n]
    for _ in range(count):
        parts = rng.sample(names, rng.randint(2, 3))
        sizes = [rng.choice((4, 8, 16, 32, 64, 100, 150)) for _ in parts]
        bodies = []
        for name, size in zip(parts, sizes, strict=True):
            text = FAMILIES[name](size)
            if text.startswith(("{", V)) and "fragment" not in text and "query(" not in text[1:]:
                bodies.append(text.removeprefix(V).strip()[1:-1])
        if bodies:
            yield Case("+".join(parts), sum(sizes), V + "{ " + " ".join(bodies) + " }")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--introspection", action="store_true",
                        help="allow introspection (the demo's setting)")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--random", type=int, default=300, help="random mixtures to try")
    args = parser.parse_args(argv)
    limits = LimitsSettings()
    limiter = Limiter(limits, introspection=args.introspection)
    schema = build_schema()._schema
    mode = "demo: introspection on" if args.introspection else "production: introspection off"
    machine = platform.processor() or platform.machine()
    print(f"# Admission cost under the default limits ({mode}); {machine}, "
          f"Python {platform.python_version()}")
    print(f"limits: tokens {limits.max_tokens}, selections {limits.max_selections}, overlaps "
          f"{limits.max_overlaps}, aliases {limits.max_aliases}, depth {limits.max_depth}, "
          f"cost {limits.max_cost}\n")
    legevakt = admission_cost(limiter, schema, EXAMPLE_QUERY) or 0.0
    print("| family | largest admitted size | CPU ms (parse + limits + validate) | x legevakt |")
    print("|---|---:|---:|---:|")
    print(f"| the legevakt query (cli.EXAMPLE_QUERY), for scale | - | {legevakt:.2f} | 1.0 |")
    worst = ("", 0.0)
    for name, family in FAMILIES.items():
        found = largest_admitted(limiter, schema, family)
        if found is None:
            print(f"| {name} | refused at any size | - | - |")
            continue
        size, query = found
        cost = admission_cost(limiter, schema, query) or 0.0
        worst = max(worst, (name, cost), key=lambda w: w[1])
        print(f"| {name} | {size} | {cost:.2f} | {cost / legevakt:.1f} |")
    mixed = ("", 0.0)
    for case in random_cases(args.seed, args.random):
        cost = admission_cost(limiter, schema, case.query)
        if cost is not None and cost > mixed[1]:
            mixed = (case.family, cost)
    print(f"| random mixtures ({args.random}, seed {args.seed}); worst: {mixed[0] or '-'} | - | "
          f"{mixed[1]:.2f} | {mixed[1] / legevakt:.1f} |")
    overall = max(worst, mixed, key=lambda w: w[1])
    print(f"\nworst admitted: {overall[1]:.2f} ms CPU ({overall[0]}); "
          f"legevakt query {legevakt:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
