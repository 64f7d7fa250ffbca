"""The pure rules of hostile input (api.md §1.2)."""

from __future__ import annotations

import pytest

from models.hostile_input import (
    MAX_JSON_DEPTH,
    HostileInput,
    control_character_field,
    nesting_depth,
    parse_json_document,
    printable,
    web_url_problem,
)
from models.timefmt import parse_query_time


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"a": "x\\u0000"}', "a"),
        ('{"a": {"b": ["ok", "\\u001b[31m"]}}', "a.b[1]"),
        ('{"a\\u0000": 1}', "body"),
        ('{"a": "\\udc00"}', "a"),
        ("[" * 10_000 + "]" * 10_000, "body"),
        ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), "body"),
        ("1" * 5000, "body"),
        ("{", "body"),
    ],
)
def test_hostile_documents_name_the_field(raw: str, field: str) -> None:
    with pytest.raises(HostileInput) as refused:
        parse_json_document(raw)
    assert refused.value.field == field


def test_tab_newline_and_32_levels_are_fine() -> None:
    deep = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert nesting_depth(parse_json_document(deep)) == MAX_JSON_DEPTH
    assert parse_json_document('{"note": "line\\n\\tindented", "emoji": "\\ud83d\\ude00"}')["emoji"] == "😀"
    assert control_character_field({"a": ["b", {"c": "d"}]}) is None


@pytest.mark.parametrize(
    ("url", "environment", "ok"),
    [
        ("https://files.example/e/1.png", "live", True),
        ("http://files.example/e/1.png", "test", True),
        ("http://files.example/e/1.png", "live", False),
        ("javascript:alert(1)", "test", False),
        ("JAVASCRIPT://files.example/%0aalert(1)", "test", False),
        ("data:text/html;base64,PGI+", "test", False),
        ("https://", "test", False),
        ("https://files.example/a b", "test", False),
        ("https://files.example:99999/", "test", False),
        ("https://files.example/\x00", "test", False),
    ],
)
def test_web_urls(url: str, environment: str, ok: bool) -> None:
    assert (web_url_problem(url, environment) is None) is ok


def test_printable_payload_is_escaped_and_bounded() -> None:
    text = printable({"note": "a\x00b", "actor": "ops", "n": 1}, drop=("actor",))
    assert "\x00" not in text and "\\u0000" in text and "actor" not in text
    assert len(printable({"x": "y" * 5000})) == 2000


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00", "２０２６-01-01"])
def test_query_times_outside_utc_years_are_value_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_query_time(text)
