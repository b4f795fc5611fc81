"""OpenAPI 3.1 support for Connexion 3.3.

Connexion 3.3 refuses ``openapi: 3.1.x`` at load time (it ships only the 3.0 meta-schema) and
validates bodies with JSON Schema Draft 4, silently ignoring 3.1 keywords such as ``const``,
``type: [string, "null"]`` or ``$defs``-style constraints. Upstream work is still open
(spec-first/connexion#1396, #1951), so this module bridges the gap:

* 3.1 documents are checked with openapi-spec-validator instead of Connexion's 3.0 schema;
* request and response bodies are validated with a Draft 2020-12 validator whose compiled form
  is cached per schema (Connexion would otherwise rebuild a validator on every request);
* a request body that is not valid UTF-8 becomes a 400 instead of escaping as a 500.

This touches Connexion internals (``OpenAPISpecification._validate_spec`` and the validator
classes), which is why connexion is pinned exactly in ``pyproject.toml``.
"""

from __future__ import annotations

import json
import typing as t

from connexion import spec as connexion_spec
from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem, NonConformingResponseBody
from connexion.json_schema import format_error_with_path
from connexion.validators import (
    FormDataValidator,
    JSONRequestBodyValidator,
    JSONResponseBodyValidator,
    MultiPartFormDataValidator,
    ParameterValidator,
    TextResponseBodyValidator,
)
from jsonschema import Draft202012Validator, ValidationError

_original_validate_spec = connexion_spec.OpenAPISpecification._validate_spec.__func__


def _validate_spec(cls, spec: dict) -> None:
    """Validate 3.1 documents with openapi-spec-validator; leave 3.0 to Connexion."""
    if str(spec.get("openapi", "")).startswith("3.1"):
        from openapi_spec_validator import validate

        validate(spec)
        return
    _original_validate_spec(cls, spec)


connexion_spec.OpenAPISpecification._validate_spec = classmethod(_validate_spec)


def _format_checker():
    """Draft 2020-12 formats, with ``email`` checked like schemathesis checks it.

    jsonschema's own ``email`` check only looks for an ``@``, while schemathesis (through
    jsonschema-rs) applies RFC 5321 rules; using the stricter one means the sandbox never
    accepts an address its own conformance suite would call invalid.
    """
    import copy

    import jsonschema_rs

    checker = copy.deepcopy(Draft202012Validator.FORMAT_CHECKER)
    email = jsonschema_rs.validator_for({"format": "email"}, validate_formats=True)

    @checker.checks("email")
    def is_email(instance: object) -> bool:
        return not isinstance(instance, str) or email.is_valid(instance)

    return checker


_FORMAT_CHECKER = _format_checker()
_validators: dict[int, tuple[dict, Draft202012Validator]] = {}


def compiled_validator(schema: dict) -> Draft202012Validator:
    """Return a cached Draft 2020-12 validator for ``schema``.

    Connexion hands the same (resolved) schema dict to every request of an operation, so the
    object identity is a safe cache key; the dict itself is kept alive in the cache entry so an
    id can never be reused by a different schema.
    """
    entry = _validators.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = (schema, Draft202012Validator(schema, format_checker=_FORMAT_CHECKER))
        _validators[id(schema)] = entry
    return entry[1]


def _first_error(validator: Draft202012Validator, instance: t.Any) -> ValidationError | None:
    """The most relevant error, so messages are stable and name the offending field."""
    from jsonschema.exceptions import best_match

    return best_match(validator.iter_errors(instance))


class RequestBodyValidator2020(JSONRequestBodyValidator):
    """JSON request bodies validated with Draft 2020-12; invalid UTF-8 is a 400."""

    @property
    def _validator(self) -> Draft202012Validator:
        return compiled_validator(self._schema)

    async def _parse(self, stream, scope) -> t.Any:
        raw = b"".join([message async for message in stream])
        try:
            text = raw.decode(self._encoding)
        except (UnicodeDecodeError, LookupError):
            raise BadRequestProblem(detail="Request body is not valid UTF-8") from None
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadRequestProblem(detail=f"Request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise BadRequestProblem(detail="Request body is nested too deeply") from None

    def _validate(self, body: t.Any) -> None:
        if not self._nullable and body is None:
            raise BadRequestProblem("Request body must not be empty")
        error = _first_error(self._validator, body)
        if error is not None:
            raise BadRequestProblem(detail=describe(error))


class ResponseBodyValidator2020(JSONResponseBodyValidator):
    """JSON response bodies validated with Draft 2020-12 (the sandbox never emits a body its
    own contract forbids: a violation becomes a 500 in the vendor error format)."""

    @property
    def validator(self) -> Draft202012Validator:
        return compiled_validator(self._schema)

    def _validate(self, body: t.Any) -> None:
        error = _first_error(self.validator, body)
        if error is not None:
            raise NonConformingResponseBody(
                detail=f"Response body does not conform to specification. {describe(error)}"
            )


class ParameterValidator2020(ParameterValidator):
    """Parameters validated with the same (cached) 2020-12 validators as bodies, errors that
    name the parameter, and a 400 for a repeated scalar query parameter (``?a=1&a=2`` would
    otherwise be silently resolved to one of the values)."""

    @staticmethod
    def validate_parameter(parameter_type, value, param, param_name=None):
        if value is None:
            if param.get("required"):
                return f"Missing {parameter_type} parameter '{param['name']}'"
            return None
        schema = param.get("schema", param)
        error = _first_error(compiled_validator(schema), value)
        if error is not None:
            return f"{describe(error)} - {parameter_type} parameter '{param['name']}'"
        return None

    def validate_request(self, request) -> None:
        from urllib.parse import parse_qsl

        raw = request.scope.get("query_string", b"").decode("latin-1")
        names = [name for name, _ in parse_qsl(raw, keep_blank_values=True)]
        for param in self.parameters.get("query", []):
            if param.get("schema", {}).get("type") != "array":
                if names.count(param["name"]) > 1:
                    raise BadRequestProblem(detail=f"Query parameter '{param['name']}' must be given once")
        super().validate_request(request)


def describe(error: ValidationError) -> str:
    """One-line, bounded message naming the field, e.g. ``'x' is too long - 'legalName'``."""
    message = error.message
    if len(message) > 300:
        message = message[:300] + "..."
    return " ".join(f"{message}{format_error_with_path(exception=error)}".split())


VALIDATOR_MAP = {
    "parameter": ParameterValidator2020,
    "body": MediaTypeDict(
        {
            "*/*json": RequestBodyValidator2020,
            "application/x-www-form-urlencoded": FormDataValidator,
            "multipart/form-data": MultiPartFormDataValidator,
        }
    ),
    "response": MediaTypeDict(
        {
            "*/*json": ResponseBodyValidator2020,
            "text/plain": TextResponseBodyValidator,
        }
    ),
}
