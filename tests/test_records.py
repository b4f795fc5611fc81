"""Fitting the fields a request writes to the record schema (``contract/records.py``'s
``conform``), as every create and update does: what it derives from a schema (its flattened
form, its types) is worked out once per schema object and reused, so it must never answer for
another schema."""

from __future__ import annotations

import json

import pytest

from timbrix_sandbox.contract import identity
from timbrix_sandbox.contract.records import apply_body, complete, conform
from timbrix_sandbox.contract.shapes import valid

NOW = "2026-01-01T00:00:00Z"
SENT = {"string": 7, "integer": "7", "array": "7,8", "composed": "7"}
FITTED = {"string": "7", "integer": 7, "array": ["7", "8"], "composed": 7}


def _schema(kind: str) -> dict:
    field = {
        "string": {"type": "string"},
        "integer": {"type": "integer"},
        "array": {"type": "array", "items": {"type": "string"}},
        "composed": {"allOf": [{"description": "a count"}, {"type": "integer"}]},
    }[kind]
    return {"allOf": [{"type": "object", "properties": {"v": field}}]}


@pytest.mark.parametrize("limit", [identity.DEFAULT_LIMIT, 3])
def test_each_field_is_fitted_to_its_own_schema_however_many_schemas_come_and_go(monkeypatch, limit):
    """Schemas made and dropped one after another, with the caches
    emptied when full (``limit`` 3) or not: each gets its own answer, the first time and later."""
    monkeypatch.setattr(identity, "DEFAULT_LIMIT", limit)
    kinds = list(SENT)
    for n in range(400):
        kind = kinds[n % len(kinds)]
        schema = _schema(kind)
        for _ in range(2):
            assert conform({"v": SENT[kind]}, ["v"], schema, NOW) == {"v": FITTED[kind]}, (n, kind)


def test_a_value_that_cannot_fit_keeps_what_the_record_had():
    schema = _schema("integer")
    assert conform({"v": "seven"}, ["v"], schema, NOW, before={"v": 6}) == {"v": 6}
    assert conform({"v": "seven"}, ["v"], schema, NOW) == {}


def test_a_string_the_response_schema_refuses_is_not_stored_and_the_rest_is():
    """DigitalOcean's reserved IP takes any ``project_id`` string and answers a uuid: storing
    "abc" would make every read of it a 500, so that field is left out (and completed where
    required) while the fields that fit are kept."""
    schema = {
        "type": "object",
        "required": ["project_id"],
        "properties": {
            "project_id": {"type": "string", "format": "uuid"},
            "name": {"type": "string", "pattern": "^[a-z]+$"},
            "note": {"type": "string"},
        },
    }
    now = "2026-12-01T00:00:00Z"
    fields = ("project_id", "name", "note")
    good = {"project_id": "746c6152-2fa2-11ed-92d3-27aaa54e4988", "name": "vpc", "note": "x"}
    assert conform(dict(good), fields, schema, now) == good
    bad = {"project_id": "abc", "name": "Not Lower", "note": "x"}
    fitted = complete(conform(bad, fields, schema, now), schema, now)
    assert fitted["note"] == "x" and "name" not in fitted
    assert valid(schema, fitted) and fitted["project_id"] != "abc"


def test_an_integer_written_as_a_whole_float_is_kept_as_the_integer():
    """JSON Schema's ``integer`` accepts ``-878.0``; the field (Petstore's client-chosen ``id``)
    was dropped as not an integer, and a create whose id it was answered 500."""
    schema = {"type": "object", "properties": {"id": {"type": "integer", "format": "int64"}, "n": {"type": "integer"}}}
    assert conform({"id": -878.0, "n": 2.5}, ("id", "n"), schema, "2026-12-01T00:00:00Z") == {"id": -878}


def test_a_number_the_response_schema_refuses_is_not_stored_in_nested_objects_either():
    """DigitalOcean's agent guardrails take any integer ``priority`` and answer an int32:
    ``[{guardrail_uuid, priority: 9223372036854775806}]`` made every answer a 500. Inside the
    list's objects, the field that does not fit is left out (completed where required); the
    rest of the item, and values that fit, are kept as sent."""
    item = {
        "type": "object",
        "required": ["rank"],
        "properties": {
            "guardrail_uuid": {"type": "string"},
            "priority": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
            "rank": {"type": "number", "minimum": 1},
        },
    }
    schema = {"type": "object", "properties": {"guardrails": {"type": "array", "items": item}}}
    now = "2026-12-01T00:00:00Z"
    good = {"guardrails": [{"guardrail_uuid": "g1", "priority": 5, "rank": 1.5}]}
    assert conform(good, ["guardrails"], schema, now) is good
    bad = {"guardrails": [{"guardrail_uuid": "g1", "priority": 2**63 - 2, "rank": 0}]}
    fitted = conform(bad, ["guardrails"], schema, now)
    assert fitted["guardrails"][0]["guardrail_uuid"] == "g1"
    assert "priority" not in fitted["guardrails"][0]
    assert valid(schema, fitted)


# -- merging a body into a record (``apply_body``) ----------------------------------------------
FLAT = {
    "properties": {
        "address": {"type": "object"},
        "addressZip": {"type": "string", "x-sandbox-stored-as": "address.zip"},
        "addressCity": {"type": "string", "x-sandbox-stored-as": "address.city"},
        "addressGeo": {"type": "object", "x-sandbox-stored-as": "address.geo"},
        "geoLat": {"type": "number", "x-sandbox-stored-as": "address.geo.lat"},
    }
}
STORED = {"id": "1", "address": {"zip": "1", "city": "a", "geo": {"lat": 1, "lon": 2}}}


@pytest.mark.parametrize(
    ("body", "merged"),
    [
        ({"addressZip": "2", "addressCity": "b"}, {"zip": "2", "city": "b", "geo": {"lat": 1, "lon": 2}}),
        ({"geoLat": 5}, {"zip": "1", "city": "a", "geo": {"lat": 5, "lon": 2}}),
        # a whole object replaces what was sent for it before, and later fields go into it
        ({"addressZip": "2", "address": {"street": "s"}, "addressCity": "b"}, {"street": "s", "city": "b"}),
        ({"geoLat": 5, "addressGeo": {"lat": 9}}, {"zip": "1", "city": "a", "geo": {"lat": 9}}),
        ({"addressGeo": {"lat": 9}, "geoLat": 5}, {"zip": "1", "city": "a", "geo": {"lat": 5}}),
    ],
)
def test_flat_fields_land_in_their_nested_objects_in_the_order_sent(body, merged):
    before = json.dumps(STORED, sort_keys=True), json.dumps(body, sort_keys=True)
    assert apply_body(STORED, body, FLAT)["address"] == merged
    # neither the stored record nor the request body is changed
    assert (json.dumps(STORED, sort_keys=True), json.dumps(body, sort_keys=True)) == before
