"""Generate `_sync_client.py` from `_async_client.py` (the way httpcore keeps its two APIs in
step): `python offerhub_sdk/_unasync.py`; `--check` exits 1 when the file is stale."""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "_async_client.py"
TARGET = HERE / "_sync_client.py"

HEADER = '''"""`OfferHub`: the API of api.md as blocking resources. GENERATED from `_async_client.py` by
`python offerhub_sdk/_unasync.py`; do not edit by hand."""
'''

SUBS: list[tuple[str, str]] = [
    (r"^import asyncio\n", ""),
    (r"\basyncio\.sleep\(", "time.sleep("),
    (r"\basync def ", "def "),
    (r"\basync with ", "with "),
    (r"\basync for ", "for "),
    (r"\bawait ", ""),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\b__aiter__\b", "__iter__"),
    (r"\b__anext__\b", "__next__"),
    (r"\baclose\(", "close("),
    (r"\baread\(", "read("),
    (r"\baiter_lines\(", "iter_lines("),
    (r"\bStopAsyncIteration\b", "StopIteration"),
    (r"\bAsync(?=[A-Z])", ""),
    (r"\bawaitable\b", "blocking"),
    (r"for (\w+) in ([\w.]+):\n\s+yield \1\n", r"yield from \2\n"),  # `yield from` has no async form
]


def _sort_names(match: re.Match[str]) -> str:
    """Keep one-line `from x import a, b` sorted after renaming (isort's order: classes by name)."""
    names = sorted((n.strip() for n in match.group(2).split(",")), key=lambda n: (not n.isupper(), n))
    return f"from {match.group(1)} import {', '.join(names)}"


def generate() -> str:
    text = SOURCE.read_text()
    body = text[text.index('"""', 3) + 4 :]  # the module docstring is replaced by HEADER
    for pattern, replacement in SUBS:
        body = re.sub(pattern, replacement, body, flags=re.MULTILINE)
    body = re.sub(r"^from ([\w.]+) import ([\w, ]+)$", _sort_names, body, flags=re.MULTILINE)
    return HEADER + body


def main(argv: list[str]) -> int:
    generated = generate()
    if "--check" in argv:
        stale = not TARGET.exists() or TARGET.read_text() != generated
        if stale:
            print(f"{TARGET.name} is stale: run python offerhub_sdk/_unasync.py", file=sys.stderr)
        return 1 if stale else 0
    TARGET.write_text(generated)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
