"""Answers checked and serialised once per stored view (``http/rendering.py``): the verdict of
a split check is the whole schema's, for any value; the bytes are what ``response_bytes``
sends; and a stored record that breaks its contract is still refused on every read."""

from __future__ import annotations

import orjson
import pytest
import yaml
from conftest import DUNDER, LOCAL, MICHAEL, customer_url, customers_url
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from timbrix_sandbox.contract.records import json_bytes
from timbrix_sandbox.http.app import _routing_document, create_app
from timbrix_sandbox.http.fastpath import FastPathMiddleware, compile_operations
from timbrix_sandbox.http.oas31 import compiled_validator
from timbrix_sandbox.http.rendering import AnswerCheck
from timbrix_sandbox.profiles import TIMBRIX_FIXTURES
from timbrix_sandbox.profiles.sandboxes import make_sandbox

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _served_checks(contract: str) -> tuple[dict[str, AnswerCheck], list[dict]]:
    """The fast path's success checks of a shipped contract, by operationId, and its stored
    records as reads answer them."""
    sandbox = make_sandbox(contract=contract)
    operations = compile_operations(_routing_document(sandbox.contract), "/api", sandbox.operations, sandbox.security)
    FastPathMiddleware(None, operations, sandbox)
    checks = {
        o.operation_id: c
        for o in operations
        if (c := o.check_for(sandbox.profile.operations[o.operation_id].status)) is not None
    }
    records = [
        sandbox.operations[read].project(doc["data"])  # as a read answers them
        for read, operation in sandbox.profile.operations.items()
        if operation.action == "read"
        for scope in sandbox.store.scopes(operation.resource)
        for doc in sandbox.store.list(operation.resource, scope)
    ]
    assert records
    return checks, records


BEEL_CHECKS, BEEL_RECORDS = _served_checks("beel")
TIMBRIX_CHECKS, TIMBRIX_RECORDS = _served_checks("timbrix")


class Memos:
    """A memo for each value it was told is a view: as ``StoredViews.memo``, by identity."""

    def __init__(self) -> None:
        self.entries: dict[int, tuple[object, dict]] = {}

    def share(self, value: object) -> object:
        self.entries[id(value)] = (value, {})
        return value

    def __call__(self, value: object) -> dict | None:
        entry = self.entries.get(id(value))
        return entry[1] if entry is not None and entry[0] is value else None


def _near(record: dict, draw) -> dict:
    """``record`` with a few fields changed, dropped or added (valid or not)."""
    changed = dict(record)
    for name in draw(st.lists(st.sampled_from(sorted(record)), max_size=2)):
        if draw(st.booleans()):
            changed[name] = draw(JSON)
        else:
            changed.pop(name, None)
    if draw(st.booleans()):
        changed[draw(st.text(max_size=4))] = draw(JSON)
    return changed


@st.composite
def beel_answers(draw) -> tuple[str, object, list[object]]:
    """A body as a BeeL read or list might answer it (the stored records, changed or not, in an
    envelope that may be broken), and which of its records are views."""
    operation = draw(st.sampled_from(["getCustomer", "listCustomers"]))
    records = [draw(st.sampled_from(BEEL_RECORDS)) for _ in range(draw(st.integers(0, 3)))]
    records = [_near(r, draw) if draw(st.booleans()) else dict(r) for r in records] or [draw(JSON)]
    views = [r for r in records if draw(st.booleans())]
    data: object = records if operation == "listCustomers" else records[0]
    body: dict = {"success": draw(st.sampled_from([True, False, "yes"])), "data": data}
    body["meta"] = draw(st.sampled_from([{"timestamp": "2026-12-03T12:00:00.000Z", "request_id": "r"}, {}, 7]))
    if draw(st.booleans()):
        body.pop(draw(st.sampled_from(sorted(body))))
    if draw(st.booleans()):
        body[draw(st.text(max_size=4))] = draw(JSON)
    return operation, draw(st.sampled_from([body, data, draw(JSON)])), views


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(beel_answers())
def test_a_split_check_gives_the_whole_schemas_verdict_and_bytes(answer):
    operation, body, views = answer
    check = BEEL_CHECKS[operation]
    memos = Memos()
    for view in views:
        memos.share(view)
    shared = AnswerCheck(check.schema, check.record_path, memos)
    whole = compiled_validator(check.schema).is_valid(body)
    assert shared.answer(body) == (json_bytes(body) + b"\n", whole)
    assert shared.answer(body) == (json_bytes(body) + b"\n", whole), "a second look (from the memos) says the same"
    assert shared.valid(body) is whole


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(TIMBRIX_RECORDS), max_size=4), st.data())
def test_a_list_of_views_is_checked_item_by_item_as_a_whole(records, data):
    check = TIMBRIX_CHECKS["CustomersController_findAll"]
    assert check.record_path == ("*",)
    memos = Memos()
    items = [memos.share(_near(r, data.draw)) if data.draw(st.booleans()) else dict(r) for r in records]
    shared = AnswerCheck(check.schema, check.record_path, memos)
    assert shared.answer(items) == (json_bytes(items) + b"\n", compiled_validator(check.schema).is_valid(items))


SCHEMAS = {
    "unevaluated": {
        "type": "object",
        "properties": {"data": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}},
        "unevaluatedProperties": False,
        "required": ["data"],
    },
    "pattern": {
        "type": "object",
        "properties": {"data": {"type": "object"}},
        "patternProperties": {"^d": {"required": ["n"]}},
        "additionalProperties": False,
    },
    "composed": {
        "allOf": [{"properties": {"data": {"maxProperties": 1}}}],
        "properties": {"data": {"type": "object", "properties": {"n": {"minimum": 2}}}},
    },
    "items": {
        "type": "array",
        "items": {"type": "object", "required": ["n"]},
        "uniqueItems": True,
        "contains": {"properties": {"n": {"const": 1}}},
        "unevaluatedItems": False,
        "maxItems": 3,
    },
    "prefix": {"type": "array", "prefixItems": [{"type": "integer"}], "items": {"type": "object"}},
    "reference": {
        "$defs": {"n": {"type": "integer"}},
        "type": "object",
        "properties": {"data": {"type": "object", "properties": {"n": {"$ref": "#/$defs/n"}}}},
    },
}
VALUES = st.one_of(
    JSON,
    st.fixed_dictionaries({"data": st.fixed_dictionaries({"n": JSON})}, optional={"d": JSON, "x": JSON}),
    st.lists(st.fixed_dictionaries({}, optional={"n": st.sampled_from([1, 2, "1"])}), max_size=4),
)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=300, deadline=None)
@given(value=VALUES, shared=st.booleans())
@example(value={"data": {"n": 1}}, shared=True)
@example(value={"data": {"n": 3}, "d": 1}, shared=True)
@example(value=[{"n": 1}, {"n": 2}], shared=True)
@example(value=[{"n": 1}, {"n": 1}], shared=True)
@example(value=[1, {"n": 1}], shared=True)
@example(value=[{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}], shared=True)
def test_schemas_that_read_across_the_split_get_the_same_verdict(name, value, shared):
    """``unevaluated*``, ``patternProperties``, ``allOf``, ``contains``, ``uniqueItems`` see the
    records too; ``prefixItems`` and ``$ref`` are not split at all."""
    schema = SCHEMAS[name]
    path = ("*",) if name in ("items", "prefix") else ("data",)
    memos = Memos()
    if shared:
        for part in value if isinstance(value, list) else [value.get("data")] if isinstance(value, dict) else []:
            memos.share(part)
    check = AnswerCheck(schema, path, memos)
    whole = compiled_validator(schema).is_valid(value)
    assert check.valid(value) is whole
    assert check.answer(value) == (json_bytes(value) + b"\n", whole)
    if name in ("prefix", "reference"):
        assert check.root.shell is None, "not split"


def test_bytes_beyond_64_bit_integers_are_the_same_as_without_memos():
    check = BEEL_CHECKS["getCustomer"]
    memos = Memos()
    view = memos.share({**BEEL_RECORDS[0], "general_discount": 2**70})
    for body in ({"success": True, "data": view, "meta": {"big": 2**70}}, {"success": True, "data": view}, view):
        shared = AnswerCheck(check.schema, check.record_path, memos)
        payload, _ = shared.answer(body)
        assert orjson.loads(payload.replace(str(2**70).encode(), b"0")) == orjson.loads(
            json_bytes(body).replace(str(2**70).encode(), b"0")
        )
        assert str(2**70).encode() in payload


def _broken_fixtures(tmp_path):
    data = yaml.safe_load(TIMBRIX_FIXTURES.read_text(encoding="utf-8"))
    data["customers"][DUNDER][0]["email"] = "not-an-email"
    broken = tmp_path / "fixtures.yaml"
    broken.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return broken


def test_a_stored_record_that_breaks_the_contract_is_refused_on_every_read_until_fixed(tmp_path):
    """The verdict a view keeps is its own: read again, the broken record is a 500 again (the
    list too); once a PUT stores a valid version, that version is answered."""
    with create_app(make_sandbox(fixtures_path=_broken_fixtures(tmp_path))).test_client(base_url=LOCAL) as client:
        for _ in range(3):
            response = client.get(customer_url(), headers=MICHAEL)
            assert response.status_code == 500 and "email" in response.json()["message"]
            assert client.get(customers_url(), headers=MICHAEL).status_code == 500
        served = client.get("/__sandbox/health").json()["fastPathServed"]
        assert served >= 6, "the reads took the fast path, where the memos are"
        fixed = client.put(customer_url(), headers=MICHAEL, json={"email": "cfdi@dundermifflin.mx"})
        assert fixed.status_code == 200
        for _ in range(2):
            response = client.get(customer_url(), headers=MICHAEL)
            assert response.status_code == 200 and response.json()["email"] == "cfdi@dundermifflin.mx"
            assert client.get(customers_url(), headers=MICHAEL).status_code == 200


def test_a_read_after_a_write_answers_the_new_record_from_a_warm_cache():
    with create_app(make_sandbox()).test_client(base_url=LOCAL) as client:
        before = [client.get(customer_url(), headers=MICHAEL).json() for _ in range(3)]
        assert before[0] == before[2]
        client.put(customer_url(), headers=MICHAEL, json={"legalName": "Dunder Mifflin Paper"})
        after = client.get(customer_url(), headers=MICHAEL).json()
        assert after["legalName"] == "Dunder Mifflin Paper"
        listed = client.get(customers_url(), headers=MICHAEL).json()
        assert next(c for c in listed if c["id"] == after["id"])["legalName"] == "Dunder Mifflin Paper"
