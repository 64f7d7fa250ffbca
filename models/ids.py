"""Resource IDs: `{prefix}_{21 URL-safe random chars}`; the prefix says what it names."""

from __future__ import annotations

import re
import secrets
import string
from enum import StrEnum

ID_ALPHABET = string.ascii_letters + string.digits + "_-"
ID_RANDOM_LENGTH = 21


class IdPrefix(StrEnum):
    USER = "usr"
    ORDER = "ord"
    MILESTONE = "ms"
    TOPUP = "topup"
    ESCROW = "esc"
    DISPUTE = "dsp"
    COMMENT = "cmt"
    WITHDRAWAL = "wd"
    EVENT = "evt"
    AUDIT = "aud"
    API_KEY = "key"
    MARKETPLACE = "mkt"
    WALLET = "wal"
    WEBHOOK_ENDPOINT = "whe"
    WEBHOOK_DELIVERY = "whd"


def new_id(prefix: IdPrefix) -> str:
    # base64url speaks exactly ID_ALPHABET, 6 random bits a character: one urandom read per ID
    return f"{prefix.value}_{secrets.token_urlsafe(16)[:ID_RANDOM_LENGTH]}"


def _pattern(prefix: IdPrefix) -> re.Pattern[str]:
    return re.compile(rf"^{prefix.value}_[A-Za-z0-9_-]{{{ID_RANDOM_LENGTH}}}$")


_PATTERNS = {prefix: _pattern(prefix) for prefix in IdPrefix if prefix is not IdPrefix.WEBHOOK_DELIVERY}
_DELIVERY_PATTERN = re.compile(
    rf"^whd_{_PATTERNS[IdPrefix.EVENT].pattern[1:-1]}_{_PATTERNS[IdPrefix.WEBHOOK_ENDPOINT].pattern[1:-1]}$"
)


def is_id(value: object, prefix: IdPrefix) -> bool:
    """True when `value` is a well-formed ID of that kind (existence is the caller's check)."""
    if not isinstance(value, str):
        return False
    pattern = _DELIVERY_PATTERN if prefix is IdPrefix.WEBHOOK_DELIVERY else _PATTERNS[prefix]
    return pattern.fullmatch(value) is not None


def delivery_id(event_id: str, endpoint_id: str) -> str:
    """Deterministic: one delivery (and one workflow) per (event, endpoint)."""
    return f"whd_{event_id}_{endpoint_id}"


def sql_prefix_check(column: str, prefix: IdPrefix) -> str:
    """The CHECK that guards an ID column's prefix in PostgreSQL."""
    return f"{column} LIKE '{prefix.value}\\_%'"
