"""``contract/identity.py``: work derived from a schema is done once per schema object, never
handed out for another object that merely looks the same, and the cache stays bounded."""

from __future__ import annotations

import pytest

from timbrix_sandbox.contract.identity import by_identity


def test_a_result_is_worked_out_once_per_object_and_never_for_a_lookalike():
    calls = []

    @by_identity()
    def shape(schema: dict) -> list:
        calls.append(schema)
        return [sorted(schema)]

    schema, lookalike = {"type": "object"}, {"type": "object"}
    assert shape(schema) is shape(schema)
    assert shape(lookalike) is not shape(schema)
    assert calls == [schema, lookalike]


def test_pairs_are_keyed_by_both_objects():
    @by_identity()
    def paths(schema: dict, aliases: dict) -> tuple[int, int]:
        return id(schema), id(aliases)

    schema, one, other = {}, {}, {}
    assert paths(schema, one) == (id(schema), id(one))
    assert paths(schema, other) == (id(schema), id(other))


def test_the_cache_is_emptied_at_its_limit_and_keeps_answering():
    calls = []

    @by_identity(limit=2)
    def size(schema: dict) -> int:
        calls.append(1)
        return len(schema)

    kept = [{"a": i} for i in range(3)]
    assert [size(s) for s in kept] == [1, 1, 1]
    assert size(kept[2]) == 1 and len(calls) == 3  # the newest survives the emptying
    assert size(kept[0]) == 1 and len(calls) == 4  # an emptied one is worked out again


def test_only_functions_of_one_or_two_objects():
    with pytest.raises(TypeError):

        @by_identity()
        def three(a: dict, b: dict, c: dict) -> None: ...
