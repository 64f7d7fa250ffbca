"""What the API refuses as hostile before any handler sees it (api.md §1.2).

Text with NUL or other control characters (tab and newline excepted), JSON nested deeper
than 32 levels, and URLs in schemes a browser could run. PostgreSQL cannot store a NUL in
`text`, and a deep document exhausts the parser's stack: both must be a `400`, never a `5xx`
or a workflow step that retries forever.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

# C0 controls but tab (\x09) and newline (\x0a), and DEL
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# ... and lone surrogates (JSON's "\ud800"), which no UTF-8 column can store
UNSTORABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
MAX_JSON_DEPTH = 32
MAX_URL_LENGTH = 2048
CONTROL_MESSAGE = "must not contain NUL, control characters or unpaired surrogates"


class HostileInput(ValueError):
    """A document refused before any handler reads it; `field` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def has_control(text: str) -> bool:
    return UNSTORABLE.search(text) is not None


def parse_json_document(raw: bytes | str) -> Any:
    """`json.loads`, refusing what is valid JSON but hostile: nesting deeper than 32 levels,
    text with control characters, integers of more than 4300 digits (Python refuses those)."""
    try:
        document = json.loads(raw)
    except RecursionError:
        raise HostileInput("body", f"must not be nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        raise HostileInput("body", "body is not valid JSON") from None
    if nesting_depth(document) > MAX_JSON_DEPTH:
        raise HostileInput("body", f"must not be nested deeper than {MAX_JSON_DEPTH} levels")
    field = control_character_field(document)
    if field is not None:
        raise HostileInput(field, CONTROL_MESSAGE)
    return document


def control_character_field(value: Any, path: str = "") -> str | None:
    """The dotted path (`metadata.note`, `evidence[2]`) of the first key or string holding a
    control character, or None. Iterative, so any depth is safe to walk."""
    pending: list[tuple[str, Any]] = [(path, value)]
    while pending:
        where, item = pending.pop()
        if isinstance(item, str):
            if has_control(item):
                return where or "body"
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and has_control(key):
                    return where or "body"
                pending.append((child_path, child))
        elif isinstance(item, list):
            pending.extend((f"{where}[{index}]", child) for index, child in enumerate(item))
    return None


def nesting_depth(value: Any) -> int:
    """Levels of objects and arrays: `{}` is 1, `{"a": [1]}` is 2, a scalar 0."""
    deepest = 0
    pending: list[tuple[int, Any]] = [(0, value)]
    while pending:
        depth, item = pending.pop()
        if isinstance(item, dict):
            pending.extend((depth + 1, child) for child in item.values())
            deepest = max(deepest, depth + 1)
        elif isinstance(item, list):
            pending.extend((depth + 1, child) for child in item)
            deepest = max(deepest, depth + 1)
    return deepest


def web_url_problem(url: str, environment: str) -> str | None:
    """Why `url` cannot be stored as a link shown to people (evidence, return pages), or None:
    `https` everywhere, `http` outside `live`; absolute, with a host; no spaces or controls.
    `javascript:`, `data:` and the like are refused whatever follows."""
    if len(url) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters"
    if has_control(url) or any(c.isspace() for c in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        return "must be an absolute URL"
    allowed = ("https",) if environment == "live" else ("https", "http")
    if parts.scheme.lower() not in allowed:
        return "must use https" if environment == "live" else "must use https (or http outside live)"
    if not parts.hostname:
        return "must be an absolute URL with a host"
    return None


def printable(payload: Any, *, drop: tuple[str, ...] = (), limit: int = 2000) -> str:
    """A payload someone typed (a refused operator Signal), as JSON text safe to store and show:
    ASCII-escaped (a NUL becomes the six characters `\\u0000`), cut at `limit`."""
    if isinstance(payload, dict):
        payload = {key: value for key, value in payload.items() if key not in drop}
    try:
        text = json.dumps(payload, ensure_ascii=True, sort_keys=True, default=str)
    except (ValueError, RecursionError):
        return "<unprintable payload>"
    return text[:limit]
