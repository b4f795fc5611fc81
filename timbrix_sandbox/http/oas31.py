"""OpenAPI 3.1 support for Connexion 3.3.

Connexion 3.3 refuses ``openapi: 3.1.x`` at load time (it ships only the 3.0 meta-schema) and
validates bodies with JSON Schema Draft 4, silently ignoring 3.1 keywords such as ``const``,
``type: [string, "null"]`` or ``$defs``-style constraints. Upstream work is still open
(spec-first/connexion#1396, #1951), so this module bridges the gap:

* parameters, request and response bodies are validated with a compiled Draft 2020-12
  validator (jsonschema-rs), cached per schema (Connexion would otherwise rebuild a Draft 4
  validator on every request), through Connexion's public ``validator_map``;
* a request body that is not valid UTF-8, or hostile JSON, becomes a 400 instead of a 500;
* form and XML bodies are read by their schema (``contract/request_bodies.py``: form arrays,
  XML names and attributes, scalars typed) and validated like JSON; the value the validator
  read is what the handler gets (:data:`DECODED_BODY`), so both see one reading;
* an omitted request body is accepted unless the contract says ``required: true``.

The validators subclass Connexion's and override or read some of their private members; 3.1
documents get past Connexion's 3.0 meta-schema by a patch. Both are listed, fingerprinted and
version-checked in ``compat.py`` (the patch is applied by ``compat.install()``), which is why
connexion is pinned exactly.
"""

from __future__ import annotations

import json
import typing as t
from urllib.parse import parse_qsl

import jsonschema_rs
import orjson
from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem, NonConformingResponseBody, UnsupportedMediaTypeProblem
from connexion.uri_parsing import OpenAPIURIParser
from connexion.validators import (
    AbstractRequestBodyValidator,
    FormDataValidator,
    JSONRequestBodyValidator,
    JSONResponseBodyValidator,
    ParameterValidator,
    TextResponseBodyValidator,
)
from starlette.datastructures import Headers
from starlette.formparsers import MultiPartException, MultiPartParser

from timbrix_sandbox.contract.identity import by_identity
from timbrix_sandbox.contract.records import json_bytes
from timbrix_sandbox.contract.request_bodies import (
    UnreadableBody,
    coerce_parameter,
    decode_form,
    decode_xml,
    is_array,
)


@by_identity()
def compiled_validator(schema: dict) -> jsonschema_rs.Validator:
    """A cached, compiled Draft 2020-12 validator for ``schema`` (jsonschema-rs).

    jsonschema-rs is what schemathesis validates responses with, so the sandbox and its
    conformance suite can never disagree on what is valid (jsonschema's own ``email`` format,
    for one, only looks for an ``@``); it is also two orders of magnitude faster, which
    matters because every response is validated. Connexion hands the same resolved schema
    dict to every request of an operation, so its identity is the cache key
    (``contract/identity.py``).
    """
    # Connexion attaches the spec's ``components`` for $ref lookups; its refs are already
    # inlined, and the attached (self-referencing) object would only slow compilation down.
    own = {key: value for key, value in schema.items() if key != "components"}
    return jsonschema_rs.validator_for(own, validate_formats=True)


def first_error(schema: dict, instance: t.Any) -> str | None:
    """``None`` if valid, else a one-line message naming the field (the fast path, a valid
    instance, computes no error at all)."""
    validator = compiled_validator(schema)
    if validator.is_valid(instance):
        return None
    error = next(iter(validator.iter_errors(instance)))
    return describe(error.message, list(error.instance_path))


def first_error_details(schema: dict, instance: t.Any) -> tuple[str, dict[str, str]] | None:
    """Like :func:`first_error`, plus ``{field: reason}`` for contracts whose error bodies name
    the field (BeeL's ``VALIDATION_ERROR`` details)."""
    validator = compiled_validator(schema)
    if validator.is_valid(instance):
        return None
    error = next(iter(validator.iter_errors(instance)))
    path = list(error.instance_path)
    field = ".".join(str(p) for p in path)
    unexpected = getattr(error.kind, "unexpected", None)
    if getattr(error.kind, "property", None) is not None:
        field = ".".join(filter(None, [field, str(error.kind.property)]))
    elif unexpected:
        field = ".".join(filter(None, [field, str(unexpected[0])]))
    message = describe(error.message, path)
    return message, {field or "body": describe(error.message, [])}


def describe(message: str, path: list) -> str:
    """Bounded, single-line message, e.g. ``"x" is longer than 254 characters - 'legalName'``."""
    if len(message) > 300:
        message = message[:300] + "..."
    where = ".".join(str(p) for p in path)
    return " ".join((f"{message} - '{where}'" if where else message).split())


_INVALID_JSON = {"kind": "invalid_json"}


class BadRequest(BadRequestProblem):
    """A 400 carrying ``ext`` (a kind and field details) for contracts whose error bodies
    distinguish them (BeeL's ``INVALID_JSON_FORMAT`` vs ``VALIDATION_ERROR``)."""

    def __init__(self, detail: str | None = None, ext: dict | None = None) -> None:
        super().__init__(detail=detail)
        self.ext = ext


MAX_JSON_DEPTH = 64
"""Deepest nesting a request body may have. The schema engine (jsonschema-rs) stops at a few
hundred levels with an error of its own, and Python's parser at ~1,000 with RecursionError;
no real API body comes near 64, so deeper ones are a 400 before either is reached."""
MAX_INTEGER_DIGITS = 4300
"""Python refuses to convert longer integer literals (``sys.get_int_max_str_digits``); the
parser raised that as a bare ``ValueError``, which escaped as a 500."""


def _reject_constant(name: str) -> t.NoReturn:
    # Python's parser accepts NaN, Infinity and -Infinity; JSON (RFC 8259) does not, and the
    # stored record could not be written back as JSON.
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise ValueError(f"integer with {len(text)} digits is out of range")
    return int(text)


def _depth_exceeds(value: t.Any, limit: int) -> bool:
    """Whether ``value`` nests deeper than ``limit`` (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if type(item) is dict else item if type(item) is list else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if type(child) in (dict, list))
    return False


_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_finite_float, parse_constant=_reject_constant)
"""Made once: ``json.loads`` with hooks builds a new decoder per call."""
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19
"""A run of digits orjson might read otherwise than Python's parser: an integer beyond 64 bits
becomes a float there (``2**64`` as ``1.8446744073709552e+19``), and a number that long is
exact only in Python's ``int``. Looked for in the body with its digits made zeros (a
translate and a substring search: a tenth of what the regex ``[0-9]{19}`` costs)."""


def _orjson_body(raw: bytes) -> t.Any:
    """``raw`` parsed by orjson when that is sure to read it as :data:`_DECODER` would, else
    ``_NOT_PARSED``.

    Why: every create and update parses its body, and orjson is about 6x faster than the
    stdlib on a customer (0.7 against 4.3 µs with the checks below). orjson refuses all that
    the stdlib path refuses (NaN and Infinity, numbers out of float range, lone surrogate
    escapes, invalid UTF-8, control characters, a BOM), so a refused body goes to the stdlib
    path, which says why in its own words; what orjson accepts it reads the same (floats
    are correctly rounded in both; duplicate keys keep the last value in both), except long
    digit runs (:data:`_LONG_DIGITS`), which go to the stdlib path too. A body with at most
    :data:`MAX_JSON_DEPTH` brackets cannot nest deeper, so only a longer one is walked."""
    if _LONG_DIGITS in raw.translate(_DIGITS_AS_ZERO):
        return _NOT_PARSED
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _NOT_PARSED
    if raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH and _depth_exceeds(body, MAX_JSON_DEPTH):
        return _NOT_PARSED
    return body


_NOT_PARSED = object()
_UTF8 = frozenset({"utf-8", "utf8", "UTF-8", "UTF8"})


def parse_json_body(raw: bytes, encoding: str = "utf-8") -> t.Any:
    """A request body as JSON (``None`` if empty), or a 400 saying what is wrong with it.
    Shared by the Connexion validators and the fast path, so both reject the same bodies.

    Hostile bodies are refused here, before any validator sees them: nesting deeper than
    :data:`MAX_JSON_DEPTH`, integers longer than :data:`MAX_INTEGER_DIGITS`, non-finite
    numbers, and lone UTF-16 surrogates."""
    if encoding in _UTF8:
        body = _orjson_body(raw)
        if body is not _NOT_PARSED:
            return body
    try:
        text = raw.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        raise BadRequest(detail="Request body is not valid UTF-8", ext=_INVALID_JSON) from None
    if not text:
        return None
    try:
        body = _DECODER.decode(text)
        if _depth_exceeds(body, MAX_JSON_DEPTH):
            raise BadRequest(
                detail=f"Request body is nested more than {MAX_JSON_DEPTH} levels deep", ext=_INVALID_JSON
            )
        # JSON may escape a lone UTF-16 surrogate ("\ud800"): valid JSON, but no Unicode text
        # can hold it, so it would fail later when stored or echoed.
        json_bytes(body)
    except json.JSONDecodeError as exc:
        raise BadRequest(detail=f"Request body is not valid JSON: {exc}", ext=_INVALID_JSON) from None
    except RecursionError:
        raise BadRequest(
            detail=f"Request body is nested more than {MAX_JSON_DEPTH} levels deep", ext=_INVALID_JSON
        ) from None
    except UnicodeEncodeError:
        raise BadRequest(
            detail="Request body contains an unpaired UTF-16 surrogate escape", ext=_INVALID_JSON
        ) from None
    except ValueError as exc:  # from the number and constant hooks above
        raise BadRequest(detail=f"Request body is not valid JSON: {exc}", ext=_INVALID_JSON) from None
    return body


DECODED_BODY = "timbrix_sandbox.decoded_body"
"""ASGI scope key under which a form or XML body validator leaves the body it read, for the
handler (``operations.py``) to use instead of Connexion's own, differently typed, reading."""

class _NoBody:
    def __repr__(self) -> str:
        return "NO_BODY"


NO_BODY: t.Any = _NoBody()
"""What a body validator's ``_parse`` gives for a request that sent no body at all (a JSON
``null`` body is ``None``)."""


def check_body(schema: dict, required: bool, body: t.Any) -> None:
    """What every request body validator here checks: an omitted body is refused only when the
    contract's ``requestBody`` is ``required: true`` (Connexion refused it whenever the schema
    was not nullable), and a body is checked with the Draft 2020-12 validators."""
    if body is NO_BODY:
        if required:
            raise BadRequestProblem("Request body must not be empty")
        return
    error = first_error_details(schema, body)
    if error is not None:
        raise BadRequest(detail=error[0], ext={"details": error[1], "kind": "validation"})


async def _raw(stream: t.AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def refuse_untyped(raw: bytes, scope: t.Mapping[str, t.Any]) -> None:
    """A 415 for a body sent without a ``Content-Type`` header.

    Connexion guesses the operation's first media type when the header is missing and validates
    the body as that, but hands the handler no parsed body, so a create was made from the
    contract's examples and an update changed nothing, answered 201 and 200. RFC 9110 lets a
    server take an untyped body as ``application/octet-stream`` (8.3): unsupported here, and the
    answer says what is missing (``requests.post(url, data=json.dumps(...))`` sends no
    Content-Type; a production API that ignores such a body would fail the client later, and
    less clearly). An empty body without the header is no body at all."""
    if raw.strip() and not any(name == b"content-type" for name, _ in scope.get("headers", ())):
        raise UnsupportedMediaTypeProblem(detail="the request has a body but no Content-Type header")


class RequestBodyValidator2020(JSONRequestBodyValidator):
    """JSON request bodies validated with Draft 2020-12; invalid UTF-8 is a 400."""

    async def _parse(self, stream, scope) -> t.Any:
        raw = await _raw(stream)
        refuse_untyped(raw, scope)
        return parse_json_body(raw, self._encoding) if raw.strip() else NO_BODY

    def _validate(self, body: t.Any) -> None:
        check_body(self._schema, self._required, body)


class FormBodyValidator2020(FormDataValidator):
    """``application/x-www-form-urlencoded`` bodies read by their schema (form arrays, typed
    scalars: ``request_bodies.decode_form``) and validated with Draft 2020-12. Fields the schema
    does not name are the schema's to refuse (``additionalProperties``), not refused outright.
    An empty body sent *with* a form Content-Type is a form with no fields (validated: its
    required fields are missing); without one, no body at all (an empty JSON or XML body can
    only be that)."""

    async def _parse(self, stream, scope) -> t.Any:
        raw = await _raw(stream)
        refuse_untyped(raw, scope)
        headers = Headers(scope=scope)
        if not raw.strip() and "content-type" not in headers:
            return NO_BODY  # (with its Content-Type, an empty form is a form with no fields)
        body = decode_form(await self._fields(raw, headers), self._schema)
        scope[DECODED_BODY] = body
        return body

    async def _fields(self, raw: bytes, headers: Headers) -> list[tuple[str, t.Any]]:
        """The form's fields in order. A urlencoded form is UTF-8 (WHATWG URL, application/
        x-www-form-urlencoded): Starlette's parser read its bytes as Latin-1, so ``ü`` sent
        unescaped was stored as ``Ã¼``, and an invalid escape (``%FF``) became U+FFFD where
        the same bytes in a JSON body are a 400."""
        try:
            return parse_qsl(raw.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            raise BadRequest(detail="Request body is not a valid form: it is not UTF-8") from None
        except ValueError as exc:
            raise BadRequest(detail=f"Request body is not a valid form: {exc}") from None

    def _validate(self, body: t.Any) -> None:
        check_body(self._schema, self._required, body)


class MultiPartBodyValidator2020(FormBodyValidator2020):
    """``multipart/form-data`` bodies, read like forms (a file part is its file name)."""

    async def _fields(self, raw: bytes, headers: Headers) -> list[tuple[str, t.Any]]:
        async def replayed() -> t.AsyncIterator[bytes]:
            yield raw

        try:
            form = await MultiPartParser(headers, replayed()).parse()
        except (MultiPartException, KeyError, ValueError) as exc:
            # (Connexion let a multipart body without its boundary escape as a 500)
            raise BadRequest(detail=f"Request body is not a valid form: {exc}") from None
        try:
            return form.multi_items()
        finally:
            await form.close()



class XMLBodyValidator2020(AbstractRequestBodyValidator):
    """XML request bodies read by their schema and its ``xml`` objects
    (``request_bodies.decode_xml``, defusedxml), then validated like JSON; XML that does not
    parse is a 400 (it was passed to the handler unread)."""

    async def _parse(self, stream, scope) -> t.Any:
        raw = await _raw(stream)
        refuse_untyped(raw, scope)
        if not raw.strip():
            return NO_BODY
        try:
            body = decode_xml(raw, self._schema)
        except UnreadableBody as exc:
            raise BadRequest(detail=str(exc)) from None
        scope[DECODED_BODY] = body
        return body

    def _validate(self, body: t.Any) -> None:
        check_body(self._schema, self._required, body)


class RawBodyValidator2020(AbstractRequestBodyValidator):
    """Bodies the sandbox keeps as bytes (``application/octet-stream``, ``text/plain``): only
    what can be judged without reading them, that a ``required: true`` body was sent
    (DigitalOcean's batch file upload accepted an empty one; Connexion has no validator for
    these types and let anything through)."""

    async def _parse(self, stream, scope) -> t.Any:
        raw = await _raw(stream)
        return raw if raw else NO_BODY

    def _validate(self, body: t.Any) -> None:
        if body is NO_BODY and self._required:
            raise BadRequestProblem("Request body must not be empty")


class ResponseBodyValidator2020(JSONResponseBodyValidator):
    """JSON response bodies validated with Draft 2020-12 (the sandbox never emits a body its
    own contract forbids: a violation becomes a 500 in the vendor error format)."""

    def _validate(self, body: t.Any) -> None:
        error = first_error(self._schema, body)
        if error is not None:
            raise NonConformingResponseBody(detail=f"Response body does not conform to specification. {error}")


class ParameterValidator2020(ParameterValidator):
    """Parameters validated with the same cached validators as bodies, errors that name the
    parameter, ``allowEmptyValue`` honoured, and a 400 for a repeated scalar query parameter
    (``?a=1&a=2`` would otherwise be silently resolved to one of the values)."""

    @staticmethod
    def validate_parameter(parameter_type, value, param, param_name=None):
        if value is None:
            if param.get("required"):
                return f"Missing {parameter_type} parameter '{param['name']}'"
            return None
        if value == "" and param.get("allowEmptyValue"):
            return None  # ``?opt_pretty=``: sent, with the empty value the contract allows
        error = first_error(param.get("schema", param), value)
        if error is not None:
            return f"{error} - {parameter_type} parameter '{param['name']}'"
        return None

    def validate_header_parameter(self, param, request):
        return self.validate_parameter("header", _as_typed(request.headers.get(param["name"]), param), param)

    def validate_cookie_parameter(self, param, request):
        return self.validate_parameter("cookie", _as_typed(request.cookies.get(param["name"]), param), param)

    def validate_request(self, request) -> None:
        from urllib.parse import parse_qsl

        raw = request.scope.get("query_string", b"").decode("latin-1")
        names = [name for name, _ in parse_qsl(raw, keep_blank_values=True)]
        for param in self.parameters.get("query", []):
            if param.get("schema", {}).get("type") != "array":
                if names.count(param["name"]) > 1:
                    raise BadRequest(detail=f"Query parameter '{param['name']}' must be given once")
        super().validate_request(request)


def _as_typed(text: str | None, param: dict) -> t.Any:
    """A header or cookie value read by its schema, as query and path values are
    (:class:`SchemaURIParser`): Connexion validates the raw text, so DigitalOcean's
    ``X-Dangerous: true`` was refused as "not of type 'boolean'". An array is the ``simple``
    style, comma-separated."""
    if text is None:
        return None
    schema = param.get("schema", param)
    return coerce_parameter([part.strip() for part in text.split(",")] if is_array(schema) else text, schema)


class SchemaURIParser(OpenAPIURIParser):
    """Connexion's OpenAPI parameter parser (styles, explode, deepObject kept), with values read
    by ``request_bodies.coerce_parameter``: the schema's 3.1 type lists (``[string, "null"]``)
    and compositions (``anyOf``) included, where Connexion's ``coerce_type`` looked up
    ``schema["type"]`` (a ``KeyError`` without one, a ``TypeError`` for a list: 500s). Passed as
    ``add_api(uri_parser_class=...)``; the validator and the handler both read through it."""

    def resolve_params(self, params, _in):
        resolved = {}
        for name, values in params.items():
            definition = self.param_defns.get(name)
            if not definition:
                resolved[name] = values  # undeclared: strict validation refuses it
                continue
            schema = self.param_schemas.get(name) or {}
            if _in == "path":
                values = [values]
            if is_array(schema):
                value = self._split(self._resolve_param_duplicates(values, definition, _in), definition, _in)
                if value == [""]:
                    value = []  # ``?opt_fields=``: the form style's empty array (Asana), not one ""
            else:
                value = values[-1]
            resolved[name] = coerce_parameter(value, schema)
        return resolved

    def resolve_form(self, form_data):
        # (the handler's reading; the validator's, by the same rules, is what the handler uses)
        fields = [(name, value) for name, values in form_data.items() for value in values]
        return decode_form(fields, self._body_schema)


VALIDATOR_MAP = {
    "parameter": ParameterValidator2020,
    "body": MediaTypeDict(
        {
            "*/*json": RequestBodyValidator2020,
            "application/x-www-form-urlencoded": FormBodyValidator2020,
            "multipart/form-data": MultiPartBodyValidator2020,
            "application/xml": XMLBodyValidator2020,
            "text/xml": XMLBodyValidator2020,
            "*/*+xml": XMLBodyValidator2020,
            "application/octet-stream": RawBodyValidator2020,
            "text/plain": RawBodyValidator2020,
        }
    ),
    "response": MediaTypeDict(
        {
            "*/*json": ResponseBodyValidator2020,
            "text/plain": TextResponseBodyValidator,
        }
    ),
}
