"""The `kilde` command line: demo, serve, sandbox, token, schema, audit, connectors.

The outermost layer: it reads settings, builds apps with `create_app`, and runs uvicorn.
Configuration errors end the process with their one-sentence message and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from gateway.graphiql import EXAMPLE_QUERY as EXAMPLE_QUERY  # the legevakt query, one place
from gateway.settings import BUILTIN_CONNECTORS, DEMO_TENANTS, Settings, SettingsError


def _fail(problems: Sequence[str]) -> NoReturn:
    if len(problems) == 1:
        print(f"kilde: {problems[0]}", file=sys.stderr)
    else:
        lines = "\n".join(f"  - {p}" for p in problems)
        print(f"kilde: {len(problems)} settings must be fixed before Kilde can start:\n{lines}",
              file=sys.stderr)
    raise SystemExit(2)


def _settings(environ: Mapping[str, str] | None = None, *, serving: bool = True,
              connectors: bool = False) -> Settings:
    """Settings from the environment, or exit 2 naming every problem in one message; with
    `connectors`, every enabled connector is built too and its problems join the list."""
    try:
        settings: Settings | None = Settings.from_env(environ, serving=serving)
        problems: list[str] = []
    except SettingsError as exc:
        settings, problems = exc.partial, list(exc.problems)
    if connectors and settings is not None:
        from gateway.upstream import key_problems

        problems += _connector_problems(settings) + key_problems(settings)
    if problems or settings is None:
        _fail(problems)
    return settings


def _connector_problems(settings: Settings) -> list[str]:
    from gateway.catalogue import check_connectors

    try:
        check_connectors(settings)
    except ValueError as exc:
        return list(getattr(exc, "problems", None) or [str(exc)])
    return []


def _connectors_or_exit(settings: Settings) -> None:
    if problems := _connector_problems(settings):
        _fail(problems)


def _demo_env(command: str) -> dict[str, str]:
    """The environment for a demo-only command: KILDE_MODE=demo, unless it says otherwise."""
    env = dict(os.environ)
    mode = env.get("KILDE_MODE", "demo")
    if mode != "demo":
        _fail([f"kilde {command} is demo-only, but KILDE_MODE is {mode[:20]!r}; unset it "
               "(or use kilde serve for production)."])
    return {**env, "KILDE_MODE": "demo"}


def _demo_base(host: str, port: int) -> str:
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"


def _listen(host: str, port: int, fd: int | None) -> socket.socket:
    from gateway.serving import ListenError, listen

    try:
        return listen(host, port, fd)
    except ListenError as exc:
        print(f"kilde: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def demo_settings(host: str, port: int) -> Settings:
    """The embedded demo: sandbox and its HelseID simulator on the same server (callers'
    tokens come from it, Kilde exchanges them there per source), SQLite audit file."""
    from dataclasses import replace

    from gateway.settings import DEMO_ISSUER
    from sandbox import helseid as simulator

    settings = _settings(_demo_env("demo"))
    base = _demo_base(host, port)
    helseid, audiences = simulator.kilde_settings(base)
    auth = settings.auth
    if auth.issuer == DEMO_ISSUER:  # a caller's issuer set in the environment stays
        auth = replace(auth, issuer=helseid["issuer"],
                       jwks_url=simulator.jwks_url(helseid["issuer"]))
    settings = replace(settings, host=host, port=port, auth=auth).with_sandbox(base)
    if settings.helseid.issuer:  # Kilde registered at a HelseID of the environment's choice
        return settings
    return settings.with_helseid(helseid, audiences)


def kilde_command(argv0: str | None = None, cwd: Path | None = None) -> str:
    """How to run `kilde` from the directory the demo was started in, as the banner prints it:
    `kilde` when that is what runs on PATH, `./dev kilde` in a checkout whose `.venv` runs this
    program (`./dev demo`), else the program's own path. A hint that fails when pasted into a
    plain shell is worse than none."""
    import shlex
    import shutil

    program = Path(argv0 if argv0 is not None else sys.argv[0])
    here = Path.cwd() if cwd is None else cwd
    if program.suffix == ".py":  # python -m gateway.cli
        return f"{shlex.quote(sys.executable)} -m gateway.cli"
    exe = (here / program).resolve()
    on_path = shutil.which("kilde")
    if on_path and Path(on_path).resolve() == exe:
        return "kilde"
    if (here / "dev").is_file() and exe.is_relative_to((here / ".venv").resolve()):
        return "./dev kilde"
    return shlex.quote(str(exe))


def token_hint(command: str, base: str, persona: str, patient: str | None = None) -> str:
    """The `kilde token` line for the demo at `base` (`--sandbox` only off the default)."""
    words = [command, "token", "--persona", persona]
    if patient:
        words += ["--patient", patient]
    if base != _demo_base(Settings().host, Settings().port):
        words += ["--sandbox", base]
    return " ".join(words)


def _print_banner(settings: Settings) -> None:
    from gateway.demo import PERSONAS
    from sandbox.helseid.personas import SERVICE_ACCOUNTS
    from sandbox.world import PATIENTS

    base = _demo_base(settings.host, settings.port)
    kilde = kilde_command()
    story = "14033841389"
    print(f"\nKilde demo: GraphQL and GraphiQL at {base}/graphql")
    print(f"Legevakt web app (pick a persona and a patient): {base}/app/\n")
    print("Scenario patients (synthetic):")
    for p in PATIENTS:
        print(f"  {p.nin}  {p.name:24s} {', '.join(p.tags):32s} municipality {p.municipality}")
    print(f"\nPersonas: {token_hint(kilde, base, 'NAME')} [--patient NIN]; NAME is one of")
    print("  " + ", ".join(PERSONAS))
    print(f"Systems (no person at work): {', '.join(SERVICE_ACCOUNTS)}, the municipal event "
          "store, tells Kilde a patient's data changed (POST /events):")
    print(f"  EVENTS=$({token_hint(kilde, base, 'hendelseslager')})")
    print(f'  curl -s -X POST {base}/events -H "authorization: Bearer $EVENTS" '
          f"-d '{{\"source\": \"municipal\", \"patient\": \"{story}\"}}'")
    print("\nTry the legevakt query (HLR-minus recorded only at the nursing home):")
    print(f"  TOKEN=$({token_hint(kilde, base, 'legevakt-lege', story)})")
    print(f'  curl -s {base}/graphql -H "authorization: Bearer $TOKEN" '
          "-H 'content-type: application/json' \\\n"
          '    -d \'{"query":"{ patient(nin: \\"14033841389\\") { alerts { title provenance '
          '{ source } } sources { source category status } } }"}\'')
    print(f"\nHelseID (simulated) at {base}/helseid: it issues these tokens, and Kilde exchanges "
          f"them there for one per source ({base}/_sandbox/helseid/requests counts them).")
    print(f"\nFault knobs: curl -X PUT {base}/_sandbox/faults/kjernejournal "
          "-d '{\"mode\": \"hang\"}'")
    print(f"  undo: curl -X PUT {base}/_sandbox/faults/kjernejournal "
          "-d '{\"mode\": \"none\"}'")
    if settings.cache.enabled:
        ttl = settings.cache.ttl_for("kjernejournal")
        print(f"  An answer cached in the last {ttl:g} s hides a fault: ask with "
              "-H 'cache-control: no-cache' (or select sources { fromCache }).")
    print(flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from gateway.app import create_app
    from gateway.catalogue import plugin_sandboxes
    from gateway.logs import configure_logging
    from gateway.serving import address, serve
    from sandbox.app import create_app as create_sandbox

    sock = _listen(args.host, args.port, args.fd)
    host, port = address(sock)
    # an enabled plugin without a URL gets its package's own fake upstream, like the built-ins
    settings, fakes = plugin_sandboxes(demo_settings(host, port), _demo_base(host, port))
    _connectors_or_exit(settings)
    configure_logging(settings.log_level)
    _print_banner(settings)
    from gateway.demo import demo_routes

    # the sandbox's event store tells this Kilde when the sandbox's data changes
    base = _demo_base(host, port)
    sandbox = create_sandbox({**os.environ, "KILDE_SANDBOX__EVENTS_URL": os.environ.get(
        "KILDE_SANDBOX__EVENTS_URL") or f"{base}/events"})
    if fakes:
        sandbox = Starlette(routes=[*(Mount(f"/{n}", app=f) for n, f in fakes.items()),
                                    Mount("", app=sandbox)])
    app = create_app(settings, sandbox=sandbox, extra_routes=demo_routes(settings))
    # a fault knob's "hang" keeps a sandbox handler waiting forever: Ctrl+C must still stop it
    return serve(app, sock, access_log=False, log_config=None, lifespan="on",
                 max_header_bytes=settings.limits.max_header_bytes)


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging
    from gateway.serving import serve

    settings = _settings(connectors=True)
    configure_logging(settings.log_level)
    if settings.demo:
        logging.getLogger("kilde.cli").warning(
            "KILDE_MODE=demo: serving the demo signing key, /_demo/token and the web app; "
            "never with real patients or HelseID (unset KILDE_MODE for production)")
    sock = _listen(args.host or settings.host, args.port or settings.port, args.fd)
    return serve("gateway.asgi:app", sock, workers=args.workers or settings.workers,
                 access_log=False, log_config=None, lifespan="on",
                 max_header_bytes=settings.limits.max_header_bytes)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging
    from gateway.serving import address, serve
    from sandbox.app import create_app as create_sandbox

    configure_logging("WARNING")
    try:
        app = create_sandbox()
    except ValueError as exc:
        print(f"kilde: {exc}", file=sys.stderr)
        return 2
    sock = _listen(args.host, args.port, args.fd)
    host, port = address(sock)
    print(f"Kilde sandbox at http://{host}:{port} (patients: /_sandbox/patients)", flush=True)
    return serve(app, sock, access_log=False, log_config=None)


def cmd_token(args: argparse.Namespace) -> int:
    """Ask the running sandbox's HelseID simulator for a persona's token (as an app would get
    one from HelseID after the user logs in)."""
    from gateway.sandbox_token import TokenRequestError, request_token

    settings = _settings(_demo_env("token"), serving=False)
    base = (args.sandbox or _demo_base(settings.host, settings.port)).rstrip("/")
    try:
        token = request_token(base, args.persona, args.patient, purpose=args.purpose,
                              jkt=args.jkt, audience=settings.auth.audience)
    except (TokenRequestError, ValueError) as exc:
        print(f"kilde: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from gateway.sdl import builtin_sdl, configured_sdl

    if not args.configured:  # the published schema: no settings, no network
        sys.stdout.write(builtin_sdl())
        return 0
    settings = _settings(serving=False)
    _connectors_or_exit(settings)
    try:
        sys.stdout.write(configured_sdl(settings))
    except ValueError as exc:
        print(f"kilde: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from gateway.audit import AuditUnavailableError, verify_url

    url = args.url or _settings(serving=False).audit.url
    if not url:
        _fail(["Name the audit trail to verify: --url URL, or set KILDE_AUDIT__URL."])
    try:
        result = asyncio.run(verify_url(url))
    except AuditUnavailableError as exc:
        print(f"kilde: {exc} Check that the audit store is running and reachable.",
              file=sys.stderr)
        return 2
    except ValueError as exc:  # a malformed URL, a missing file, not an audit trail
        print(f"kilde: {exc}", file=sys.stderr)
        return 2
    if result.ok:
        print(f"OK: {result.checked} audit events, hash chain intact.")
        return 0
    print(f"FAILED: {len(result.problems)} problem(s) in {result.checked} events:")
    for problem in result.problems:
        print(f"  - {problem}")
    return 1


async def _export(url: str, args: argparse.Namespace, out: BinaryIO) -> int:
    from gateway.audit import open_audit_sink
    from gateway.audit.export import FORMATS

    start, end = _export_bounds(args)
    writer = FORMATS[args.format][1]
    sink = await open_audit_sink(url, retention_days=36500, create=False)
    count = 0

    async def counted() -> AsyncIterator[Any]:
        nonlocal count
        async for event in sink.stream(patient_nin=args.patient, start=start, end=end):
            count += 1
            yield event

    try:
        async for chunk in writer(counted()):
            out.write(chunk)
    finally:
        await sink.aclose()
    out.flush()
    return count


def _export_bounds(args: argparse.Namespace) -> tuple[Any, Any]:
    from gateway.audit.export import bounds

    return bounds(args.from_, args.to)


def cmd_audit_export(args: argparse.Namespace) -> int:
    from connectors.identifiers import is_valid_nin

    if args.patient is not None and not is_valid_nin(args.patient):
        print("kilde: --patient must be a valid national identity number (11 digits, mod-11).",
              file=sys.stderr)
        return 2
    from schema.errors import InvalidValueError

    try:
        _export_bounds(args)
    except InvalidValueError as exc:
        print(f"kilde: {exc}", file=sys.stderr)
        return 2
    url = args.url or _settings(serving=False).audit.url
    if not url:
        _fail(["Name the audit trail to export: --url URL, or set KILDE_AUDIT__URL."])
    try:
        if args.output:
            with open(args.output, "wb") as out:
                count = asyncio.run(_export(url, args, out))
        else:
            count = asyncio.run(_export(url, args, sys.stdout.buffer))
    except OSError as exc:
        print(f"kilde: the export could not be written ({type(exc).__name__}).", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"kilde: the audit trail could not be read ({type(exc).__name__}).",
              file=sys.stderr)
        return 2
    print(f"kilde: exported {count} audit events.", file=sys.stderr)
    return 0


def cmd_connectors_list(args: argparse.Namespace) -> int:
    from gateway.catalogue import CatalogueError, format_table, gateway_rows, offline_rows

    try:
        if args.gateway:
            rows = gateway_rows(args.gateway, args.token or sys.stdin.readline().strip())
        else:
            settings = _settings(serving=False)
            builtins = [c for n, c in settings.connectors.items() if n in BUILTIN_CONNECTORS]
            if not any(c.base_url or c.stores for c in builtins):  # as the demo runs them
                settings = replace(settings, tenants=settings.tenants or DEMO_TENANTS)
                settings = settings.with_sandbox(f"http://{settings.host}:{settings.port}")
            rows = offline_rows(settings)
    except (CatalogueError, ValueError) as exc:
        print(f"kilde: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


def cmd_connectors_new(args: argparse.Namespace) -> int:
    from connectors.scaffold import ScaffoldError, create_package

    try:
        path = create_package(args.name, args.directory)
    except ScaffoldError as exc:
        print(f"kilde: {exc}", file=sys.stderr)
        return 2
    print(f"Created {path}. Next: pip install -e {path} && pytest {path}")
    return 0


def _whole_number(text: str, what: str, low: int, high: int | None = None) -> int:
    span = f"from {low} to {high}" if high is not None else f"{low} or more"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be a whole number {span}, "
                                         f"not {text[:20]!r}.") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"{what} must be {span}, not {value}.")
    return value


def _port(text: str) -> int:
    return _whole_number(text, "the port", 1, 65535)


def _workers(text: str) -> int:
    return _whole_number(text, "the number of workers", 1)


def _fd(text: str) -> int:
    return _whole_number(text, "the file descriptor", 0)


def _fd_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fd", type=_fd, default=None, help="serve on this inherited, bound TCP "
                   "socket (socket activation) instead of --host/--port")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kilde", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="gateway + sandbox + demo keys, embedded defaults")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8000, help="1-65535 (default 8000)")
    _fd_argument(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="production server, configuration from KILDE_* env")
    p.add_argument("--workers", type=_workers, default=0,
                   help="worker processes, at least 1 (default KILDE_WORKERS)")
    p.add_argument("--host", default="", help="default KILDE_HOST")
    p.add_argument("--port", type=_port, default=0, help="1-65535 (default KILDE_PORT)")
    _fd_argument(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("sandbox", help="the simulated upstreams only")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8001, help="1-65535 (default 8001)")
    _fd_argument(p)
    p.set_defaults(func=cmd_sandbox)

    p = sub.add_parser("token", help="print a persona's token from the sandbox's HelseID")
    p.add_argument("--persona", required=True)
    p.add_argument("--patient", default=None, help="the patient the attest is bound to")
    p.add_argument("--purpose", default=None, help="override purpose of use (TREAT, ETREAT, ...)")
    p.add_argument("--jkt", default=None,
                   help="bind the token to your DPoP key (its RFC 7638 thumbprint, cnf.jkt)")
    p.add_argument("--sandbox", default=None, metavar="URL",
                   help="the running demo or sandbox (default http://KILDE_HOST:KILDE_PORT)")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("schema", help="print the GraphQL schema (SDL); no server needed")
    p.add_argument("--configured", action="store_true",
                   help="this deployment's schema: add the categories of the plugin connectors "
                   "enabled in KILDE_* (default: the published schema.graphql)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("audit", help="audit trail tools")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    v = audit_sub.add_parser("verify", help="check the hash chain of the audit trail")
    v.add_argument("--url", default=None, help="audit store URL (default KILDE_AUDIT__URL)")
    v.set_defaults(func=cmd_audit_verify)
    x = audit_sub.add_parser("export", help="write the audit trail as FHIR AuditEvents "
                             "(HL7 Norway profile), every event unless limited")
    x.add_argument("--url", default=None, help="audit store URL (default KILDE_AUDIT__URL)")
    x.add_argument("--from", dest="from_", default=None,
                   help="first day or instant, e.g. 2026-03-01 or 2026-03-01T12:00:00Z")
    x.add_argument("--to", default=None, help="last day (included) or instant (excluded)")
    x.add_argument("--patient", default=None, help="only this patient's events (a NIN)")
    x.add_argument("--format", choices=("fhir", "ndjson"), default="fhir",
                   help="fhir: one Bundle (default); ndjson: one AuditEvent per line")
    x.add_argument("--output", default=None, help="write here instead of standard output")
    x.set_defaults(func=cmd_audit_export)

    p = sub.add_parser("connectors", help="connector tools")
    con_sub = p.add_subparsers(dest="connectors_command", required=True)
    ls = con_sub.add_parser("list", help="installed and enabled connectors: the catalogue")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--gateway", default="", help="ask a running gateway at this URL "
                    "(adds health and last success)")
    ls.add_argument("--token", default="", help="bearer token for --gateway (default: read "
                    "one line from stdin)")
    ls.set_defaults(func=cmd_connectors_list)
    new = con_sub.add_parser("new", help="create a connector package skeleton")
    new.add_argument("name", help="the connector's name, e.g. 'hub' (lower case)")
    new.add_argument("--directory", default=".", help="where to create kilde-NAME/")
    new.set_defaults(func=cmd_connectors_new)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
