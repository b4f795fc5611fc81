"""Every patch the sandbox applies to a third-party library, and every library internal it
relies on, in one place and against exact versions.

**Patches** (changes to a library's own objects) are applied by :func:`install`, explicitly and
once (a second call does nothing). There are two, on Connexion 3.3.0, without a public hook:

* ``OpenAPISpecification._validate_spec``: Connexion checks every document against its bundled
  OpenAPI **3.0** meta-schema, which refuses ``openapi: 3.1.x`` outright (upstream work is open:
  spec-first/connexion#1396, #1951). ``Specification.from_dict`` hard-codes the class and
  ``AsyncApp.add_api`` calls it, so no subclass can be passed in. The patch checks 3.1
  documents against the OpenAPI 3.1 meta-schema (openapi-spec-validator's copy, with
  jsonschema-rs) and hands every other document to the original.
* ``connexion.decorators.parameter._get_val_from_param``: before calling a handler, Connexion
  converts each path and query parameter and form field by ``schema["type"]`` once more, which
  is a ``KeyError`` for an ``anyOf`` schema and a ``TypeError`` for a 3.1 type list
  (``[string, "null"]``, what a 3.0 ``nullable`` becomes): a 500 for a valid request. The
  decorator calls the module's function by name and offers no hook, so the patch replaces it
  with ``request_bodies.coerce_parameter``, the reading the parameter parser
  (``oas31.SchemaURIParser``, Connexion's public ``uri_parser_class``) already gave the value.

Dropped: ``AbstractSecurityHandler._accepts_kwarg`` was memoised (the security layer ran
``inspect.signature`` twice per request); Connexion's security layer is no longer in the stack
(the engine's access policy authenticates, see ``access.py``), so there is nothing to speed up.
``AsyncOperation.fn`` was patched to decorate each handler once instead of per
request. On Connexion 3.3.0 re-decorating costs about 2 us of a 255 us request (measured the
same way), so it is not worth owning a patch of a library property.

**Internals relied on without patching** are subclasses through public extension points that
override or read private members: the Draft 2020-12 validators in ``oas31.py`` (Connexion's
``validator_map``), the hardened protocol in ``server.py`` (uvicorn's ``http=`` class) and the
in-place table in ``engine/store.py`` (TinyDB's ``table_class``; the store keeps its own code,
this table only names it). :data:`INTERNALS` lists each one with the fingerprint (signature and
source hash) of the pinned version; ``tests/test_compat.py`` fails as soon as an installed
library differs, naming what to re-check. ``python -m timbrix_sandbox.http.compat`` prints the
installed fingerprints, for an upgrade.

**Versions.** :data:`PINNED` names the exact versions all of the above were written and checked
against (the same pins as ``pyproject.toml`` and ``constraints.txt``); :data:`INSTALLED` is read
from the installed distributions at import. :func:`install` raises :class:`UnpinnedLibrary` when
they differ: a patch that silently misapplies would make the sandbox accept or answer what its
contract forbids, which is worse than not starting. Installing through pip cannot get there
(the pins are exact requirements); ``--no-deps``, a hand upgrade or a shared environment can.
For upgrade work, ``TIMBRIX_SANDBOX_ALLOW_UNPINNED=1`` turns the error into a warning.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.metadata
import inspect
import os
import textwrap
import typing as t
import warnings

PINNED: dict[str, str] = {"connexion": "3.3.0", "uvicorn": "0.54.0", "tinydb": "4.9.0"}
"""Distribution -> the exact version whose internals this module and :data:`INTERNALS` target."""

ALLOW_UNPINNED_ENV = "TIMBRIX_SANDBOX_ALLOW_UNPINNED"


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


INSTALLED: dict[str, str | None] = {name: _installed_version(name) for name in PINNED}
"""Distribution -> installed version (``None``: not installed), read once at import."""


class UnpinnedLibrary(RuntimeError):
    """A library whose internals are patched or relied on is not at its pinned version."""


@dataclasses.dataclass(frozen=True)
class Internal:
    """One library internal the sandbox patches, overrides or relies on, fingerprinted at the
    pinned version."""

    target: str
    """``module:Qualified.name`` of the library's own function."""
    use: str
    """``patched`` (replaced by :func:`install`), ``overridden`` (a subclass replaces it) or
    ``relied on`` (called, or its attributes read, as is)."""
    by: str
    """Who does it: a key of :data:`USERS`."""
    params: str
    """Its parameter names, as pinned."""
    sha256: str
    """First 16 hex digits of the sha256 of its dedented source, as pinned."""
    note: str = ""

    @property
    def library(self) -> str:
        return self.target.split(".", 1)[0]


USERS = {
    "compat": "timbrix_sandbox.http.compat.install",
    "oas31": "timbrix_sandbox.http.oas31 (validator subclasses, passed as Connexion's validator_map)",
    "server": "timbrix_sandbox.http.server (VendorErrorHttpToolsProtocol, passed as uvicorn's http=; run)",
    "store": "timbrix_sandbox.engine.store.RecordTable (TinyDB's table_class)",
}

_HTTPTOOLS = "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol."

INTERNALS: tuple[Internal, ...] = (
    # connexion 3.3.0
    Internal("connexion.spec:Specification._validate_spec", "patched", "compat", "cls, spec", "023d36a91b881d15"),
    Internal(
        "connexion.decorators.parameter:_get_val_from_param", "patched", "compat", "value, param_definitions",
        "23ae7326c64a85ea", "called by name for path and query parameters and form fields",
    ),
    Internal(
        "connexion.spec:Specification.__init__", "relied on", "compat", "self, raw_spec, base_uri", "e19490c866da0755",
        "calls cls._validate_spec(raw_spec) on every document",
    ),
    Internal(
        "connexion.validators.abstract:AbstractRequestBodyValidator.__init__", "relied on", "oas31",
        "self, schema, required, nullable, encoding, strict_validation, kwargs", "2a0f60f13a90d8b7",
        "sets _schema, _nullable, _encoding",
    ),
    Internal(
        "connexion.validators.abstract:AbstractResponseBodyValidator.__init__", "relied on", "oas31",
        "self, scope, schema, nullable, encoding", "1b53a96b1b27360d", "sets _schema",
    ),
    Internal(
        "connexion.validators.abstract:AbstractRequestBodyValidator.wrap_receive", "relied on", "oas31",
        "self, receive, scope", "0ab7d5d9f4dbf071",
        "hands _parse the scope it passes on (DECODED_BODY reaches the handler); empty body: default or 400",
    ),
    Internal(
        "connexion.validators.abstract:AbstractRequestBodyValidator._parse", "overridden", "oas31",
        "self, stream, scope", "3067504e47d7f946", "XML bodies",
    ),
    Internal(
        "connexion.validators.abstract:AbstractRequestBodyValidator._validate", "overridden", "oas31",
        "self, body", "9e977f5590a359b5", "XML bodies",
    ),
    Internal(
        "connexion.validators.form_data:FormDataValidator._parse", "overridden", "oas31", "self, stream, scope",
        "08680de592ecbe97",
    ),
    Internal(
        "connexion.validators.form_data:FormDataValidator._validate", "overridden", "oas31", "self, body",
        "14d58268f3cca797",
    ),
    Internal(
        "connexion.validators.json:JSONRequestBodyValidator._parse", "overridden", "oas31", "self, stream, scope",
        "85ca34eee06519cf",
    ),
    Internal(
        "connexion.validators.json:JSONRequestBodyValidator._validate", "overridden", "oas31", "self, body",
        "9ccb6403a41ec8d8",
    ),
    Internal(
        "connexion.validators.json:JSONResponseBodyValidator._validate", "overridden", "oas31", "self, body",
        "4dff7c2f0d0ca141",
    ),
    Internal(
        "connexion.uri_parsing:AbstractURIParser.resolve_params", "overridden", "oas31", "self, params, _in",
        "a8ff0bdb2f206f7b", "SchemaURIParser, passed as add_api(uri_parser_class=...)",
    ),
    Internal(
        "connexion.uri_parsing:OpenAPIURIParser.resolve_form", "overridden", "oas31", "self, form_data",
        "75c7ad18a3c31449",
    ),
    Internal(
        "connexion.uri_parsing:OpenAPIURIParser._split", "relied on", "oas31", "value, param_defn, _in",
        "15cc9ce58cf389be", "array styles (form, pipeDelimited...)",
    ),
    Internal(
        "connexion.uri_parsing:OpenAPIURIParser._resolve_param_duplicates", "relied on", "oas31",
        "values, param_defn, _in", "0b9bea34cf42e1d9", "explode",
    ),
    Internal(
        "connexion.validators.parameter:ParameterValidator.__init__", "relied on", "oas31",
        "self, parameters, uri_parser, strict_validation, security_query_params", "ce0ba2a0a6a1330d",
        "sets parameters",
    ),
    Internal(
        "connexion.validators.parameter:ParameterValidator.validate_parameter", "overridden", "oas31",
        "parameter_type, value, param, param_name", "936d387e2cf1aefe",
    ),
    Internal(
        "connexion.validators.parameter:ParameterValidator.validate_request", "overridden", "oas31", "self, request",
        "6e3b0bc3de25c314", "extended, then called",
    ),
    Internal(
        "connexion.validators.parameter:ParameterValidator.validate_header_parameter", "overridden", "oas31",
        "self, param, request", "7799c41f6f4d1539", "the value read by its schema first",
    ),
    Internal(
        "connexion.validators.parameter:ParameterValidator.validate_cookie_parameter", "overridden", "oas31",
        "self, param, request", "ab60cb80603b9bb7", "the value read by its schema first",
    ),
    # uvicorn 0.54.0
    Internal(
        _HTTPTOOLS + "__init__", "relied on", "server", "self, config, server_state, app_state, _loop",
        "264f2f06759670d4", "sets loop, logger, flow, server_state, parser, cycle",
    ),
    Internal(_HTTPTOOLS + "connection_made", "overridden", "server", "self, transport", "ba1915817ccf6c1b"),
    Internal(_HTTPTOOLS + "connection_lost", "overridden", "server", "self, exc", "21bb5222b35990e7"),
    Internal(
        _HTTPTOOLS + "data_received", "overridden", "server", "self, data", "02c2572f1df55907",
        "feeds self.parser, which calls the on_* callbacks",
    ),
    Internal(_HTTPTOOLS + "on_message_begin", "overridden", "server", "self", "0efab6f9456c4987"),
    Internal(_HTTPTOOLS + "on_headers_complete", "overridden", "server", "self", "7e259152e5aade71"),
    Internal(_HTTPTOOLS + "on_message_complete", "overridden", "server", "self", "377f9122ee6f3ab8"),
    Internal(_HTTPTOOLS + "shutdown", "overridden", "server", "self", "4822ef10fa982b12"),
    Internal(_HTTPTOOLS + "send_400_response", "overridden", "server", "self, msg", "0b0d3ace8d263788"),
    Internal(
        "uvicorn.protocols.http.httptools_impl:RequestResponseCycle.send", "relied on", "server",
        "self, message", "cfc84491029529db",
        "writes a response's head, then each body message, through self.transport (_HeadWithBody)",
    ),
    Internal(
        "uvicorn.protocols.http.httptools_impl:RequestResponseCycle.receive", "relied on", "server",
        "self", "817bd782de41bd0a", "writes 100 Continue through self.transport before the response",
    ),
    Internal(
        "uvicorn.server:Server.handle_exit", "relied on", "server", "self, sig, frame", "b31a1f2364655748",
        "installed as the SIGTERM handler",
    ),
    Internal(
        "uvicorn.server:Server.capture_signals", "relied on", "server", "self", "85d29b580603d413",
        "re-raises the captured signal after shutdown",
    ),
    # tinydb 4.9.0
    Internal(
        "tinydb.table:Table._update_table", "overridden", "store", "self, updater", "8379b056239c3f2d",
        "the override runs the updater on the stored dict in place (string ids: nothing to convert)",
    ),
    Internal(
        "tinydb.table:Table.insert", "relied on", "store", "self, document", "d5b551f596e70c13",
        "writes through _update_table",
    ),
    Internal(
        "tinydb.table:Table.remove", "relied on", "store", "self, cond, doc_ids", "d70424be6b544b1d",
        "writes through _update_table",
    ),
)
"""Every library internal the sandbox patches, overrides or relies on, fingerprinted at the
pinned version. A change in any of them means re-reading the code :data:`USERS` names."""

PUBLIC_OVERRIDES = frozenset(
    {
        "tinydb.storages:Storage.read",  # the documented abstract storage interface
        "tinydb.storages:Storage.write",
        "connexion.resolver:Resolver.__init__",  # the documented custom-resolver interface
        "connexion.resolver:Resolver.resolve",
        "connexion.exceptions:ProblemException.__init__",  # exception constructors
        "connexion.exceptions:BadRequestProblem.__init__",
        "connexion.jsonifier:Jsonifier.dumps",  # AsyncApp(jsonifier=...): "custom jsonifier" for responses
    }
)
"""Overrides of public extension points: not fingerprinted (``tests/test_compat.py`` requires
every other override of a pinned library's method to be in :data:`INTERNALS`)."""


# -- resolving and fingerprinting -----------------------------------------------------------------
_originals: dict[str, t.Any] = {}
"""target -> the library's own function, for the targets :func:`install` replaced."""


def original(target: str) -> t.Any:
    """The library's own function for ``target`` (``module:Qualified.name``), even once patched."""
    if target in _originals:
        return _originals[target]
    module_name, _, qualname = target.partition(":")
    owner: t.Any = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    value = inspect.getattr_static(owner, name)
    if isinstance(value, (classmethod, staticmethod)):
        value = value.__func__
    return value


def fingerprint(target: str) -> tuple[str, str, str]:
    """``(qualified name, parameter names, source sha256[:16])`` of the library's own function,
    as :class:`Internal` pins them."""
    func = original(target)
    source = textwrap.dedent(inspect.getsource(func))
    params = ", ".join(inspect.signature(func).parameters)
    return func.__qualname__, params, hashlib.sha256(source.encode()).hexdigest()[:16]


# -- versions ------------------------------------------------------------------------------------
def version_problems() -> list[str]:
    """One line per pinned library whose installed version differs (empty: all as pinned)."""
    problems = []
    for name, pinned in PINNED.items():
        installed = INSTALLED[name]
        if installed != pinned:
            users = sorted({USERS[i.by].split(" ")[0] for i in INTERNALS if i.library == name})
            problems.append(
                f"{name} {installed or '(not installed)'} is installed, but {pinned} is pinned "
                f"({', '.join(users)} patch or rely on its internals)"
            )
    return problems


def check_versions() -> None:
    """Raise :class:`UnpinnedLibrary` unless every pinned library is at its pin (with
    ``$TIMBRIX_SANDBOX_ALLOW_UNPINNED=1``: warn instead)."""
    problems = version_problems()
    if not problems:
        return
    message = (
        "timbrix-sandbox: " + "; ".join(problems) + ". Install with `pip install -c constraints.txt` "
        f"(or set {ALLOW_UNPINNED_ENV}=1 to run anyway while upgrading; tests/test_compat.py names what changed)"
    )
    if os.environ.get(ALLOW_UNPINNED_ENV) == "1":
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        return
    raise UnpinnedLibrary(message)


# -- the patches ---------------------------------------------------------------------------------
def _parameter_value(value: t.Any, param_definitions: dict) -> t.Any:
    """A parameter's (or form field's) value as its schema reads it, whatever the schema's shape."""
    from timbrix_sandbox.contract.request_bodies import coerce_parameter

    return coerce_parameter(value, param_definitions.get("schema", param_definitions))


def _validate_spec(cls, spec: dict) -> None:
    """Check 3.1 documents against the OpenAPI 3.1 meta-schema; leave every other one to Connexion.

    The meta-schema (openapi-spec-validator's bundled copy, compiled once with jsonschema-rs)
    checks the document's structure. openapi-spec-validator's full ``validate`` also checks
    every ``default`` and example against its schema and resolves every reference: 10 s on
    DigitalOcean's contract (36 ms here), and it refuses ``default: null`` on a schema that does
    not allow null, which JSON Schema only says SHOULD be valid and real contracts contain."""
    if str(spec.get("openapi", "")).startswith("3.1"):
        error = next(iter(_openapi_31_validator().iter_errors(spec)), None)
        if error is not None:
            from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

            where = "/".join(str(part) for part in error.instance_path) or "(document)"
            raise OpenAPIValidationError(f"{error.message} at {where}")
        return
    _originals["connexion.spec:Specification._validate_spec"](cls, spec)


@functools.cache
def _openapi_31_validator() -> t.Any:
    import jsonschema_rs
    from openapi_spec_validator.schemas import schema_v31

    return jsonschema_rs.validator_for(dict(schema_v31))


_installed = False


def install() -> None:
    """Check the pinned versions, then apply the patches. Idempotent: later calls do nothing."""
    global _installed
    if _installed:
        return
    check_versions()

    from connexion.decorators import parameter
    from connexion.spec import OpenAPISpecification, Specification

    _originals["connexion.spec:Specification._validate_spec"] = Specification._validate_spec.__func__
    # Set on the OpenAPI 3 subclass only: Swagger 2 documents keep the inherited original.
    OpenAPISpecification._validate_spec = classmethod(_validate_spec)

    _originals["connexion.decorators.parameter:_get_val_from_param"] = parameter._get_val_from_param
    parameter._get_val_from_param = _parameter_value

    _installed = True


def installed() -> bool:
    return _installed


if __name__ == "__main__":  # the installed fingerprints beside the pinned ones (for an upgrade)
    for name, version in INSTALLED.items():
        print(f"{name} {version} (pinned {PINNED[name]})")
    for internal in INTERNALS:
        _qualname, params, sha = fingerprint(internal.target)
        same = params == internal.params and sha == internal.sha256
        print("same   " if same else "CHANGED", internal.target, f"({params})", sha)
