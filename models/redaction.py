"""Redaction of audit payloads, webhook summaries and logs (domain.md §6.4).

Secrets by key name or by shape become "[REDACTED]"; e-mails are masked to
`a***@domain`; account references keep their last 4 characters. Pure and recursive.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

REDACTED = "[REDACTED]"
SECRET_KEY_PATTERN = re.compile(
    r"secret|password|token|api[_-]?key|authorization|private|seed|signature|credential|master[_-]?key"
    r"|encryption[_-]?key|passphrase|mnemonic|cookie",
    re.IGNORECASE,
)
ACCOUNT_KEY_PATTERN = re.compile(r"account|iban|bank", re.IGNORECASE)
SECRET_VALUE_PATTERN = re.compile(
    r"ohk_(?:live|test)_[A-Za-z0-9_-]+|ohk_tok_[A-Za-z0-9_.-]+|(?:tw_)?whsec_[A-Za-z0-9+/=_-]+|\bS[A-Z2-7]{55}\b"
)
EMAIL_PATTERN = re.compile(r"\b([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")
# Keys whose values are public by design even though their names look sensitive.
PUBLIC_KEYS = frozenset({"key_hint", "secret_hint", "api_key_id", "token_type", "public_key", "account_id"})


def mask_reference(value: str) -> str:
    return "****" + value[-4:] if len(value) > 4 else "****"


def redact_text(text: str) -> str:
    text = SECRET_VALUE_PATTERN.sub(REDACTED, text)
    return EMAIL_PATTERN.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


@lru_cache(maxsize=4096)  # the same few field names come back on every log line and payload
def _key_kind(key: str) -> str | None:
    """What the key's name says its value is: a secret, an account reference, or neither (None)."""
    if key.lower() in PUBLIC_KEYS:
        return None
    if SECRET_KEY_PATTERN.search(key):
        return "secret"
    return "account" if ACCOUNT_KEY_PATTERN.search(key) else None


def redact(value: Any, key: str | None = None) -> Any:
    kind = None if key is None else _key_kind(key)
    if kind == "secret":
        return None if value is None else REDACTED
    if kind == "account" and isinstance(value, str):
        return mask_reference(value)
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
