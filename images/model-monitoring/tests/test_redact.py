"""JSONPath redaction (jsonpath-ng) as the capture proxy applies it to request and response documents."""

from __future__ import annotations

import copy

import pytest
from model_monitoring.redact import RedactError, Redactor

DOC = {
    "customer": {"ssn": "123", "name": "Ann", "address": {"zip": "1011", "city": "Amsterdam"}},
    "instances": [
        {"card": {"number": "4111", "cvv": "1"}, "amount": 10, "tags": ["a", "b", "c"]},
        {"card": {"number": "5500"}, "amount": 99, "tags": []},
    ],
    "scores": [0.1, 0.2, 0.3, 0.4],
}


def redacted(*expressions: str, doc: object = DOC) -> object:
    return Redactor(expressions).redact(copy.deepcopy(doc))


def test_nested_member():
    out = redacted("$.customer.address.zip")
    assert out["customer"]["address"] == {"city": "Amsterdam"}
    assert out["instances"] == DOC["instances"]


def test_member_of_every_array_element():
    out = redacted("$.instances[*].card.number")
    assert [i["card"] for i in out["instances"]] == [{"cvv": "1"}, {}]


def test_recursive_descent_and_several_expressions():
    out = redacted("$..number", "$..ssn", "$.customer.address")
    assert out["customer"] == {"name": "Ann"}
    assert [i["card"] for i in out["instances"]] == [{"cvv": "1"}, {}]


def test_array_elements_by_index_slice_and_filter():
    assert redacted("$.scores[0,2]")["scores"] == [0.2, 0.4]
    assert redacted("$.scores[1:3]")["scores"] == [0.1, 0.4]
    assert [i["amount"] for i in redacted("$.instances[?(@.amount > 50)]")["instances"]] == [10]
    assert redacted("$.instances[*].tags[*]")["instances"][0]["tags"] == []
    # a filter condition may compute (here a length); only what it selects is removed
    assert [i["amount"] for i in redacted("$.instances[?(@.tags.`len` > 0)]")["instances"]] == [99]


def test_no_match_and_non_object_documents_are_left_alone():
    assert redacted("$.nothing.here") == DOC
    assert redacted("$.a", doc=[1, {"a": 2}]) == [1, {"a": 2}]
    assert redacted("$[*].a", doc=[1, {"a": 2, "b": 3}]) == [1, {"b": 3}]
    assert redacted("$.a", doc="text") == "text"


def test_redacts_in_place_and_returns_the_document():
    doc = copy.deepcopy(DOC)
    assert Redactor(["$.customer"]).redact(doc) is doc
    assert "customer" not in doc


def test_from_json():
    assert Redactor.from_json('["$.a", "$.b[*].c"]').expressions == ["$.a", "$.b[*].c"]
    assert Redactor.from_json("[]").redact({"a": 1}) == {"a": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$.a", "JSON array"),  # not JSON at all
        ('{"a": 1}', "JSON array of JSONPath strings, got dict"),
        ('["$.ok", "$.[["]', "'$.[[' is not a valid JSONPath expression"),
        ('["$.a[?(@.x >"]', "is not a valid JSONPath expression"),
        ('[""]', "non-empty string"),
        ("[3]", "non-empty string"),
        ('["$"]', "selects the whole document"),
        ('["$.a.`len`"]', "uses Len, which computes a value"),
        ('["$.a[?(@.b > 1)].c.`keys`"]', "uses Keys, which computes a value"),
    ],
)
def test_invalid_expressions_are_refused(text, message):
    with pytest.raises(RedactError) as exc:
        Redactor.from_json(text)
    assert message in str(exc.value)
