"""Answers for the operations that are not CRUD: actions (``POST /pet/{petId}/uploadImage``),
form posts, searches, logins, ``GET /``, operations declaring only ``default``.

A mock that refuses to start, or answers 500, because one operation is not a collection of
records is useless for the rest of the contract. These operations are answered from the
contract itself, after request validation (the HTTP layer's job): the success response's own
example when it is valid against its schema, else a deterministic minimal instance of the
schema (``contract/shapes.instance``), else no content. The answer is computed once per
operation, on its first call, and the same on every call.
"""

from __future__ import annotations

import typing as t

from timbrix_sandbox.contract.model import Operation, is_json_media
from timbrix_sandbox.contract.records import copy_json
from timbrix_sandbox.contract.shapes import instance, valid
from timbrix_sandbox.engine.plugins import Reply

_UNSET = object()


def example_answer(operation: Operation) -> tuple[t.Any, str | None]:
    """``(body, media type)`` for an answered operation: JSON (media type ``None``) from its
    valid example or its schema; for an operation whose success is not JSON, the example text
    of its first media type (empty without one)."""
    json_media = [m for m in operation.media_types if is_json_media(m)]
    if json_media or operation.response_schema is not None:
        schema = operation.response_schema
        for media, example in operation.examples:
            if is_json_media(media) and valid(schema, example):
                return example, None
        if schema is None:
            return None, None
        generated = instance(schema)
        return generated, None
    if not operation.media_types:
        return None, None
    media = operation.media_types[0]
    example = next((value for m, value in operation.examples if m == media), "")
    if not isinstance(example, (str, bytes)):
        example = str(example)
    return example, media


def non_json_example(operation: Operation, media: str) -> str | bytes | None:
    """The example an operation declares for a non-JSON media type (Petstore's XML), if any."""
    for declared, value in operation.examples:
        if declared == media and isinstance(value, (str, bytes)):
            return value
    return None


class ContractAnswer:
    """One non-CRUD operation, answered from the contract (see the module docstring)."""

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self._answer: t.Any = _UNSET

    async def __call__(self, tenant: str | None, params: t.Mapping[str, t.Any], body: t.Any) -> Reply:
        return self.reply()

    def reply(self) -> Reply:
        """The operation's answer (the same on every call)."""
        if self._answer is _UNSET:
            self._answer = example_answer(self.operation)
        value, media = self._answer
        status = self.operation.status
        if status == 204 or (value is None and media is None and self.operation.response_schema is None):
            return Reply(status)
        return Reply(status, copy_json(value), media)
