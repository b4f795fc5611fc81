"""The ``timbrix-sandbox`` command: ``serve`` and ``reset``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import typing as t
import urllib.error
import urllib.request

from .fixtures import DEFAULT_FIXTURES, FixtureError

DATA_DIR_ENV = "TIMBRIX_SANDBOX_DATA_DIR"
DEFAULT_DATA_DIR = ".timbrix-sandbox"


def _data_dir(args: argparse.Namespace) -> str | None:
    if getattr(args, "in_memory", False):
        return None
    return args.data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        help=f"where the TinyDB files live (default: ${DATA_DIR_ENV} or ./{DEFAULT_DATA_DIR})",
    )
    parser.add_argument("--fixtures", default=str(DEFAULT_FIXTURES), help="fixture YAML file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="timbrix-sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the sandbox")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3001)
    _add_store_options(serve)
    serve.add_argument("--in-memory", action="store_true", help="keep nothing on disk")
    serve.add_argument(
        "--reset", action="store_true", help="reset every organization to the fixtures on start"
    )
    serve.add_argument(
        "--strict-rfc",
        action="store_true",
        help="also enforce the RFC check digit (rejects the docs' DUM901231AB3)",
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )

    reset = commands.add_parser("reset", help="put organizations back to their fixtures")
    _add_store_options(reset)
    reset.add_argument("--organization", help="only this organization id")
    reset.add_argument(
        "--url", help="reset a running sandbox through its control API, e.g. http://127.0.0.1:3001"
    )
    return parser


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app, make_sandbox

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    data_dir = _data_dir(args)
    sandbox = make_sandbox(
        data_dir=data_dir, fixtures_path=args.fixtures, reset=args.reset, strict_rfc=args.strict_rfc
    )
    app = create_app(sandbox)
    base = f"http://{args.host}:{args.port}"
    print(f"timbrix-sandbox serving {base}/api  (data: {data_dir or 'in memory'})")
    print(f"  Swagger UI   {base}/api/ui/")
    print(f"  contract     {base}/api/openapi.json")
    print(f"  control      {base}/__sandbox/health, POST {base}/__sandbox/reset")
    print("  tokens:")
    for user in sandbox.fixtures.users:
        orgs = (
            ", ".join(sandbox.fixtures.organizations[o] for o in sorted(user.organizations))
            or "no organization"
        )
        print(f"    {user.token:<20} {user.name} ({orgs})")
    sys.stdout.flush()
    uvicorn.run(
        app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.log_level == "debug"
    )
    return 0


def reset(args: argparse.Namespace) -> int:
    if args.url:
        path = "/__sandbox/reset" + (f"/{args.organization}" if args.organization else "")
        request = urllib.request.Request(args.url.rstrip("/") + path, method="POST")
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
    from .app import make_sandbox

    sandbox = make_sandbox(data_dir=_data_dir(args), fixtures_path=args.fixtures)
    print(json.dumps(sandbox.reset(args.organization)))
    sandbox.store.close()
    return 0


def main(argv: t.Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        return reset(args)
    except FixtureError as exc:
        print(f"timbrix-sandbox: {exc}", file=sys.stderr)
        return 2
