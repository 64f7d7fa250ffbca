"""Hypothesis strategies for requests to every operation of the OpenAPI document: mostly
well-formed (bodies from the request schemas, IDs of real resources) so handlers run deep,
mixed with the hostile input of api.md §1.2 and plain garbage."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

HOSTILE_TEXT = [
    "",
    "\x00",
    "a\x00b",
    "\x1b[31m",
    "\r\n",
    "\ud800",
    "１２.００",
    "9" * 40,
    "9" * 5000 + ".00",
    "-1.00",
    "0.00",
    "1e999",
    "NaN",
    "javascript:alert(1)",
    "https://",
    "' OR 1=1 --",
    "../../etc/passwd",
    "%00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "ord_" + "A" * 300,
    "usr_\x00",
    "😀" * 50,
    "ʼ" * 10,
]
# a webhook endpoint URL the fuzzer may register: loopback, a port nobody listens on
LOOPBACK_SINK = "http://127.0.0.1:9/fuzz"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # template, e.g. /api/v1/orders/{order_id}
    path_params: tuple[str, ...]
    query_params: tuple[tuple[str, dict[str, Any]], ...]
    body_schema: dict[str, Any] | None
    master: bool  # the credential is the master key (/auth, /admin)
    operation_id: str


@dataclass
class Request:
    method: str
    url: str
    headers: dict[bytes, bytes] = field(default_factory=dict)
    params: list[tuple[str, str | int | float | bool | None]] = field(default_factory=list)
    content: bytes | None = None

    def describe(self) -> str:
        body = (self.content or b"")[:300]
        return f"{self.method} {self.url} params={self.params!r} body={body!r}"


def operations(document: dict[str, Any]) -> list[Operation]:
    found = []
    for path, methods in document["paths"].items():
        for method, spec in methods.items():
            parameters = spec.get("parameters", [])
            body = spec.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    path_params=tuple(p["name"] for p in parameters if p["in"] == "path"),
                    query_params=tuple((p["name"], p.get("schema", {})) for p in parameters if p["in"] == "query"),
                    body_schema=resolved(body, document) if body is not None else None,
                    master="/auth/" in path or "/admin/" in path,
                    operation_id=spec.get("operationId", f"{method} {path}"),
                )
            )
    return found


def resolved(schema: Any, document: dict[str, Any], depth: int = 0) -> Any:
    """The schema with every local `$ref` inlined (hypothesis-jsonschema wants no refs)."""
    if depth > 20:
        return {}
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            return resolved(document["components"]["schemas"][name], document, depth + 1)
        return {key: resolved(value, document, depth + 1) for key, value in schema.items()}
    if isinstance(schema, list):
        return [resolved(item, document, depth + 1) for item in schema]
    return schema


def hostile_text() -> st.SearchStrategy[str]:
    return st.sampled_from(HOSTILE_TEXT) | st.text(max_size=12)


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text()
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=8,
    )


def _schema_values(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values that satisfy `schema` (the subset of JSON Schema our document uses: types,
    enums, anyOf, lengths, bounds, patterns, required and optional properties)."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return st.one_of(*(_schema_values(option) for option in schema[combinator]))
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return _objects(schema)
    if kind == "array":
        items = _schema_values(schema.get("items", {}))
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 4), 4))
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        low, high = schema.get("minLength", 0), min(schema.get("maxLength", 40), 40)
        return st.text(min_size=low, max_size=max(low, high))
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return json_values()


def _objects(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    return st.fixed_dictionaries(
        {name: _schema_values(sub) for name, sub in properties.items() if name in required},
        optional={name: _schema_values(sub) for name, sub in properties.items() if name not in required},
    )


def _with_sink(body: Any) -> Any:
    """Registered webhook endpoints point at loopback: the fuzzer never sends traffic out."""
    if isinstance(body, dict) and isinstance(body.get("url"), str) and body["url"].startswith(("http://", "https://")):
        return {**body, "url": LOOPBACK_SINK}
    return body


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=True).encode()  # a lone surrogate travels as "\\ud800"


def bodies(schema: dict[str, Any] | None) -> st.SearchStrategy[bytes | None]:
    raw = st.sampled_from(
        [b"", b"{", b"[]", b"null", b"\xff\xfe", b"[" * 3000 + b"]" * 3000, b'{"a":' * 40 + b"1" + b"}" * 40]
    )
    documents = json_values().map(lambda value: json.dumps(value).encode())
    if schema is None:
        return st.none() | raw | documents
    valid = _schema_values(schema).map(lambda value: _encode(_with_sink(value)))
    hostile_fields = st.builds(
        lambda value, name, bad: json.dumps(
            {**value, name: bad} if isinstance(value, dict) else value, ensure_ascii=True
        ).encode(),
        _schema_values(schema).map(_with_sink),
        st.sampled_from(sorted(schema.get("properties", {})) or ["x"]),
        hostile_text() | json_values(),
    )
    return st.one_of(valid, valid, hostile_fields, documents, raw, st.none())


def path_values(name: str, known: dict[str, list[str]]) -> st.SearchStrategy[str]:
    real = known.get(name, [])
    choices = [hostile_text(), st.text(min_size=1, max_size=30)]
    if real:
        choices = [st.sampled_from(real), st.sampled_from(real), *choices]
    return st.one_of(*choices).filter(lambda value: value not in ("", ".", ".."))


@st.composite
def requests(draw: st.DrawFn, op: Operation, known: dict[str, list[str]], credentials: dict[str, str]) -> Request:
    url = op.path
    for name in op.path_params:
        segment = draw(path_values(name, known)).encode("utf-8", "surrogatepass")
        url = url.replace("{" + name + "}", quote(segment, safe=""))
    params: list[tuple[str, str | int | float | bool | None]] = []
    for name, schema in op.query_params:
        if draw(st.integers(0, 2)) == 0:
            continue
        value = draw(st.one_of(_schema_values(schema), hostile_text(), st.sampled_from(known.get(name, ["x"]))))
        params.append((name, value if isinstance(value, str) else json.dumps(value)))
    if draw(st.integers(0, 9)) == 0:
        params.append((draw(st.text(min_size=1, max_size=8)), draw(hostile_text())))
    who = draw(st.sampled_from(["master", "token", "garbage", "none", *["key"] * 8]))
    headers: dict[bytes, bytes] = {}
    secret = {"master": credentials["master"], "key": credentials["key"], "token": credentials["token"]}.get(who)
    if op.master and who == "key":
        secret = credentials["master"]
    if who == "garbage":
        secret = draw(hostile_text())
    if secret is not None:
        headers[b"authorization"] = b"Bearer " + secret.encode("utf-8", "surrogatepass")
    content = None
    if op.method in ("POST", "PUT", "PATCH", "DELETE"):
        content = draw(bodies(op.body_schema)) if op.method != "DELETE" else None
        if content is not None:
            headers[b"content-type"] = draw(
                st.sampled_from([b"application/json"] * 6 + [b"text/plain", b"application/json; charset=latin-1"])
            )
        key = draw(st.one_of(st.just(str(uuid.uuid4())), st.none(), hostile_text()))
        if key is not None:
            headers[b"idempotency-key"] = key.encode("utf-8", "surrogatepass")
    return Request(op.method, url, headers, params, content)
