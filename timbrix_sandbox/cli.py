"""The ``timbrix-sandbox`` command: ``serve``, ``reset``, ``conformance`` and ``faults``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import secrets
import sys
import typing as t
import urllib.error
import urllib.request

from timbrix_sandbox import __version__
from timbrix_sandbox.contract.model import ContractError
from timbrix_sandbox.engine.faults import UnknownFault, available
from timbrix_sandbox.engine.fixtures import FixtureError
from timbrix_sandbox.engine.store import DamagedStore, StoreInUse, WrongContract
from timbrix_sandbox.engine.stores import StoreUnavailable, is_database_url
from timbrix_sandbox.http.compat import UnpinnedLibrary
from timbrix_sandbox.http.local_security import SecurityPolicy
from timbrix_sandbox.http.server import BindError
from timbrix_sandbox.profiles import CONTRACTS, DEFAULT_CONTRACT, contract_path, is_default, short_name
from timbrix_sandbox.profiles.plugins import UnknownPlugin

if t.TYPE_CHECKING:
    from timbrix_sandbox.contract.security import Scheme
    from timbrix_sandbox.engine.policy import Credential
    from timbrix_sandbox.engine.sandbox import Sandbox

DATA_DIR_ENV = "TIMBRIX_SANDBOX_DATA_DIR"
STORE_ENV = "TIMBRIX_SANDBOX_STORE"
CONTROL_TOKEN_ENV = "TIMBRIX_SANDBOX_CONTROL_TOKEN"
DEFAULT_DATA_DIR = ".timbrix-sandbox"


def _store_url(args: argparse.Namespace) -> str | None:
    """The shared store's URL (``--store``, else ``$TIMBRIX_SANDBOX_STORE`` unless a TinyDB
    option was given), or ``None`` for TinyDB."""
    in_memory = getattr(args, "in_memory", False)
    if args.store:
        if args.data_dir or in_memory:
            raise UsageError("--store names the store: it cannot be combined with --data-dir or --in-memory")
        chosen = args.store
    elif args.data_dir or in_memory:
        return None
    else:
        chosen = os.environ.get(STORE_ENV)
        if not chosen:
            return None
    if not is_database_url(chosen):
        raise UsageError(f"--store {chosen!r} is not a postgresql:// URL (a TinyDB directory is --data-dir)")
    return chosen


def _data_dir(args: argparse.Namespace) -> str | None:
    if getattr(args, "in_memory", False):
        if args.data_dir:
            raise UsageError("--in-memory keeps nothing on disk: it cannot be combined with --data-dir")
        return None
    default = DEFAULT_DATA_DIR
    if not is_default(args.contract):
        default += "-" + short_name(args.contract)  # .timbrix-sandbox-beel: one store per contract
    chosen = args.data_dir or os.environ.get(DATA_DIR_ENV) or default
    if os.path.exists(chosen) and not os.path.isdir(chosen):
        raise UsageError(f"--data-dir {chosen!r} is a file, not a directory")
    return chosen


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        metavar="URL",
        help=f"a shared PostgreSQL store, postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (default: ${STORE_ENV}; "
        "without it, the TinyDB store of --data-dir)",
    )
    parser.add_argument(
        "--data-dir",
        help=f"where the TinyDB files live (default: ${DATA_DIR_ENV} or ./{DEFAULT_DATA_DIR}, "
        f"./{DEFAULT_DATA_DIR}-NAME for contracts/NAME.yaml)",
    )
    parser.add_argument(
        "--contract",
        default="timbrix",
        help=f"the OpenAPI 3.1 contract to serve: a file, or a shipped one by name ({', '.join(CONTRACTS)}; "
        "default: timbrix)",
    )
    parser.add_argument(
        "--fixtures",
        help="fixture YAML file (default: the shipped contract's own, NAME.fixtures.yaml beside any other contract; "
        "without one, a default tenant and a development user are generated)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="timbrix-sandbox", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the sandbox")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3001)
    _add_store_options(serve)
    serve.add_argument("--in-memory", action="store_true", help="keep nothing on disk")
    serve.add_argument(
        "--base-path",
        metavar="PATH",
        help="serve the contract's paths under PATH (default: the path of the contract's first server URL, "
        "e.g. /v2 for https://api.example.com/v2; / without servers)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="serve with N processes (needs --store postgresql://...; TinyDB's directory belongs to one process)",
    )
    serve.add_argument("--reset", action="store_true", help="reset every organization to the fixtures on start")
    serve.add_argument(
        "--strict-rfc",
        action="store_true",
        help="also enforce the RFC check digit (rejects the docs' DUM901231AB3)",
    )
    serve.add_argument(
        "--fault", action="append", default=[], metavar="NAME", help="inject a bug (repeatable; see `faults`)"
    )
    serve.add_argument(
        "--journal-size",
        type=int,
        default=1000,
        metavar="N",
        help="requests the journal keeps (GET /__sandbox/requests; default 1000; 0 turns it off)",
    )
    serve.add_argument(
        "--operations",
        action="store_true",
        help=f"list what the sandbox made of every operation (always listed up to {OPERATION_LINES} operations)",
    )
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests whose Host header names NAME (loopback names, IP addresses and --host are "
        "always accepted; '*' accepts any, which re-opens DNS rebinding)",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="also grant CORS to ORIGIN, e.g. https://app.example.test (loopback origins always are; '*' for any)",
    )
    serve.add_argument(
        "--control-token",
        default=os.environ.get(CONTROL_TOKEN_ENV),
        help=f"require this token on the control API (/__sandbox); default ${CONTROL_TOKEN_ENV}; "
        "generated and printed when --host is not loopback",
    )

    reset = commands.add_parser("reset", help="put organizations back to their fixtures")
    _add_store_options(reset)
    reset.add_argument("--organization", help="only this organization id")
    reset.add_argument(
        "--discard-damaged",
        action="store_true",
        help="move damaged data files aside (to DATA_DIR/damaged-<time>/) instead of refusing, then reset",
    )
    reset.add_argument("--url", help="reset a running sandbox through its control API, e.g. http://127.0.0.1:3001")
    reset.add_argument(
        "--control-token",
        default=os.environ.get(CONTROL_TOKEN_ENV),
        help=f"the running sandbox's control token (with --url; default ${CONTROL_TOKEN_ENV})",
    )

    faults = commands.add_parser("faults", help="list the faults `serve --fault` can inject")
    faults.add_argument("--contract", default="timbrix", help="only the faults this contract can take")

    check = commands.add_parser(
        "conformance",
        help="check any implementation of the contract (exit 0 conformant, 1 violations, 2 usage/connection, "
        "3 incomplete, 4 under --min-coverage)",
        description="Fuzz and probe an implementation of the contract: the contract, behaviour and domain layers.",
        epilog=CONFORMANCE_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument(
        "--base-url",
        required=True,
        help="API root, e.g. http://127.0.0.1:3001/api (a sandbox's: its URL + basePath of GET /__sandbox/health)",
    )
    check.add_argument(
        "--token", help="a bearer token that is a member of --organization-id (sent as Authorization: Bearer)"
    )
    check.add_argument(
        "--credential",
        action="append",
        default=[],
        metavar="SCHEME=VALUE",
        help="a credential for the contract's security scheme SCHEME, sent where that scheme says (API key "
        "header/query/cookie; Basic as user:password; other http schemes, oauth2, openIdConnect in "
        "Authorization); repeatable",
    )
    check.add_argument("--organization-id", help="the organization to test in (Timbrix contract: required)")
    check.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="extra header for --token's requests, e.g. 'organization-id: 1' (repeatable)",
    )
    check.add_argument("--outsider-header", action="append", default=[], metavar="'NAME: VALUE'")
    check.add_argument("--outsider-token", help="a valid token that is NOT a member of --organization-id")
    check.add_argument(
        "--outsider-organization-id",
        help="an organization the outsider token belongs to (enables the cross-tenant 404 check)",
    )
    check.add_argument("--seed", type=int, help="reproduce a run (default: random, printed)")
    check.add_argument("--max-examples", type=int, default=20, help="schemathesis examples per operation and phase")
    check.add_argument(
        "--workers",
        type=int,
        default=2,
        help="schemathesis worker threads (default 2); with more than 1 the same seed can give other case "
        "counts, since operations interleave on the target: use --workers 1 to reproduce a run exactly",
    )
    check.add_argument(
        "--min-coverage",
        type=float,
        metavar="PCT",
        help="exit 4 when fewer than PCT%% of the declared (operation, status) responses were answered",
    )
    check.add_argument("--retries", type=int, default=1, help="re-tests of an operation the tooling cut short")
    check.add_argument("--markdown", metavar="FILE", help="Markdown summary (also appended to $GITHUB_STEP_SUMMARY)")
    check.add_argument("--html", metavar="FILE", help="self-contained HTML page with the coverage map")
    check.add_argument("--fail-fast", action="store_true", help="stop at the first violation")
    check.add_argument(
        "--strict-rfc", action="store_true", help="the target enforces the RFC check digit (like serve --strict-rfc)"
    )
    check.add_argument("--junit-xml", metavar="FILE")
    check.add_argument("--json", metavar="FILE")
    check.add_argument(
        "--contract",
        default=None,
        help="OpenAPI file (default: the project's openapi.yaml); any other contract gets the contract "
        "and behaviour layers (the CFDI layer is Timbrix-only)",
    )
    return parser


def security_policy(args: argparse.Namespace) -> SecurityPolicy:
    """The local server's policy from ``serve``'s flags. Bound beyond loopback, the control
    API always needs a token: one is generated (and printed) if none was given."""
    security = SecurityPolicy(
        bound_host=args.host,
        allowed_hosts=frozenset(host.lower() for host in args.allow_host),
        cors_origins=tuple(args.cors_origin),
        control_token=args.control_token,
    )
    if security.exposed and not security.control_token:
        security = dataclasses.replace(security, control_token=secrets.token_urlsafe(24))
    return security


OPERATION_LINES = 40
"""Up to this many operations, ``serve`` lists each; beyond it (Asana has 247), a summary."""


def _print_operations(profile: t.Any, every: bool) -> None:
    from timbrix_sandbox.contract.model import describe_operation, describe_profile

    print(f"  operations   {describe_profile(profile)}")
    if every or len(profile.operations) <= OPERATION_LINES:
        for operation in profile.operations.values():
            print(f"    {describe_operation(operation)}")
    else:
        print("               (serve --operations lists what was made of each)")


def serve(args: argparse.Namespace) -> int:
    from timbrix_sandbox.http.app import create_app
    from timbrix_sandbox.http.server import bind
    from timbrix_sandbox.http.server import run as run_server
    from timbrix_sandbox.profiles.sandboxes import make_sandbox

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    store_url = _store_url(args)
    data_dir = None if store_url else _data_dir(args)
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.workers > 1 and store_url is None:
        raise UsageError(
            f"--workers {args.workers} needs a store that several processes share (--store postgresql://...): "
            "the TinyDB store (--data-dir, --in-memory) belongs to one process"
        )
    security = security_policy(args)
    if args.base_path is not None and ("://" in args.base_path or "?" in args.base_path or "{" in args.base_path):
        raise UsageError(f"--base-path {args.base_path!r}: give a path such as /v2, not a URL or a template")

    def build(**options: t.Any) -> Sandbox:
        return make_sandbox(
            contract=args.contract,
            data_dir=data_dir,
            store=store_url,
            fixtures_path=args.fixtures,
            strict_rfc=args.strict_rfc,
            faults=args.fault,
            **options,
        )

    sandbox = build(reset=args.reset)  # claims and seeds the store once, before any worker starts
    # With workers too: a contract or pin problem is reported once, here.
    journal_size = max(args.journal_size, 0)
    app = create_app(sandbox, security, base_path=args.base_path, journal_size=journal_size)
    sock = bind(args.host, args.port)  # before the banner: a taken port is an error, not a lie
    base = f"http://{args.host}:{args.port}"
    api = base + app.base_path.rstrip("/")
    where = sandbox.store.location or "in memory"
    workers = f", {args.workers} workers" if args.workers > 1 else ""
    print(f"timbrix-sandbox serving {sandbox.profile.title} at {api}/  (data: {where}{workers})")
    print(f"  Swagger UI   {api}/ui/")
    print(f"  contract     {api}/openapi.json")
    print(f"  control      {base}/__sandbox/health, {base}/__sandbox/credentials, POST {base}/__sandbox/reset")
    print(f"  requests     {base}/__sandbox/requests.html, behaviours {base}/__sandbox/behaviours")
    _print_operations(sandbox.profile, args.operations)
    if sandbox.faults:
        print(f"  INJECTED FAULTS: {', '.join(sorted(sandbox.faults))}")
    if security.control_token:
        print(f"  control token {security.control_token}  (send as X-Sandbox-Control-Token)")
    if security.exposed:
        print(
            f"WARNING: bound to {args.host}, beyond loopback: anyone who can reach this port can use the fixture "
            "tokens. The control API needs the control token above.",
            file=sys.stderr,
        )
    _print_credentials(sandbox)
    sys.stdout.flush()
    if args.workers > 1:
        from timbrix_sandbox.http.workers import serve_workers

        sandbox.store.close()  # each worker opens its own connections (no threads across fork)
        return serve_workers(
            lambda serving: create_app(build(), security, serving, base_path=args.base_path, journal_size=journal_size),
            workers=args.workers,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            sock=sock,
        )
    run_server(app, host=args.host, port=args.port, log_level=args.log_level, sock=sock)
    return 0


def _print_credentials(sandbox: Sandbox) -> None:
    """The banner's credentials: every fixture user's, per security scheme of the contract
    (``GET /__sandbox/credentials`` lists the same)."""
    fixtures = sandbox.fixtures
    if fixtures.source is None:
        tenant = fixtures.default_organization
        print(f"  no fixtures file: generated tenant {tenant!r} and user {fixtures.users[0].id!r}")
    credentials = sandbox.policy.credentials()
    if not sandbox.security.schemes:
        print(f"  security     none: the contract is open (requests act in tenant {fixtures.default_organization!r})")
        return
    print("  credentials  per security scheme (also at GET /__sandbox/credentials):")
    for credential in credentials:
        user = next(u for u in fixtures.users if u.id == credential.user)
        orgs = ", ".join(fixtures.organizations[o] for o in sorted(user.organizations)) or "no organization"
        scheme = sandbox.security.schemes[credential.scheme]
        print(f"    {credential.scheme}: {_how_to_send(credential, scheme)}  ({user.name}; {orgs})")


def _how_to_send(credential: Credential, scheme: Scheme) -> str:
    if scheme.auth_scheme is None:  # an API key
        if credential.location == "query":
            return f"?{credential.name}={credential.value}"
        if credential.location == "cookie":
            return f"Cookie: {credential.name}={credential.value}"
        return f"{credential.name}: {credential.value}"
    if scheme.basic:
        return f"Authorization: Basic base64(user:password), curl -u {credential.value}"
    return f"Authorization: {scheme.auth_scheme.capitalize()} {credential.value}"


def reset(args: argparse.Namespace) -> int:
    if args.url:
        path = "/__sandbox/reset" + (f"/{args.organization}" if args.organization else "")
        headers = {"X-Sandbox-Control-Token": args.control_token} if args.control_token else {}
        request = urllib.request.Request(args.url.rstrip("/") + path, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                print(response.read().decode())
            return 0
        except urllib.error.HTTPError as exc:
            print(exc.read().decode(), file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"cannot reach {args.url}: {exc}", file=sys.stderr)
            return 2
    from timbrix_sandbox.profiles.sandboxes import make_sandbox

    store_url = _store_url(args)
    sandbox = make_sandbox(
        contract=args.contract,
        data_dir=None if store_url else _data_dir(args),
        store=store_url,
        fixtures_path=args.fixtures,
        discard_damaged=args.discard_damaged,
    )
    print(json.dumps(sandbox.reset(args.organization)))
    sandbox.store.close()
    return 0


class UsageError(ValueError):
    pass


CONFORMANCE_EXIT_CODES = """exit codes:
  0  CONFORMANT: no violation, everything tested (and coverage >= --min-coverage)
  1  NOT CONFORMANT: at least one violation (takes precedence over 3 and 4)
  2  usage problem: bad options, unreachable server, rejected credentials
  3  INCOMPLETE: no violation, but part of the run could not be tested even after a retry
     (the report names what); never reported as CONFORMANT
  4  UNDER-COVERED: no violation, but fewer declared responses were answered than --min-coverage
"""


def conformance(args: argparse.Namespace) -> int:
    from conformance.credentials import parse_credentials
    from conformance.model import Options, UsageProblem, parse_headers
    from conformance.report import ProgressPrinter, summary, write_reports
    from conformance.runner import run

    try:
        options = Options(
            base_url=args.base_url,
            token=args.token,
            organization_id=args.organization_id or "",
            outsider_token=args.outsider_token,
            outsider_organization_id=args.outsider_organization_id,
            seed=args.seed,
            max_examples=args.max_examples,
            workers=args.workers,
            min_coverage=args.min_coverage,
            retries=args.retries,
            fail_fast=args.fail_fast,
            strict_rfc=args.strict_rfc,
            contract=contract_path(args.contract) if args.contract else DEFAULT_CONTRACT,
            headers=parse_headers(args.header),
            outsider_headers=parse_headers(args.outsider_header),
            credentials=parse_credentials(args.credential),
        )
        where = f" (organization {options.organization_id})" if options.organization_id else ""
        print(f"timbrix-sandbox conformance: {options.api}{where} [{options.contract}]", file=sys.stderr)
        result = run(options, ProgressPrinter())
    except (UsageProblem, OSError) as exc:
        print(f"\ntimbrix-sandbox conformance: {exc}", file=sys.stderr)
        return 2
    print(summary(result))
    write_reports(result, args.junit_xml, args.json, args.markdown, args.html)
    return result.exit_code()


def list_faults(args: argparse.Namespace) -> int:
    from timbrix_sandbox.contract.loading import load_contract
    from timbrix_sandbox.contract.model import load_profile

    faults = available(load_profile(load_contract(contract_path(args.contract))))
    width = max(len(name) for name in faults)
    for fault in faults.values():
        print(f"{fault.name:<{width}}  {fault.category:<17} {fault.description}")
    return 0


def main(argv: t.Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "conformance":
            return conformance(args)
        if args.command == "faults":
            return list_faults(args)
        return reset(args)
    except (
        FixtureError,
        UnknownFault,
        StoreInUse,
        UsageError,
        ContractError,
        WrongContract,
        BindError,
        UnpinnedLibrary,
        UnknownPlugin,
        StoreUnavailable,
    ) as exc:
        print(f"timbrix-sandbox: {exc}", file=sys.stderr)
        return 2
    except DamagedStore as exc:
        contract = getattr(args, "contract", None)
        hint = ""
        if contract and not is_default(contract):
            hint = f" (with --contract {contract})"
        print(f"timbrix-sandbox: {exc}{hint}", file=sys.stderr)
        return 2
