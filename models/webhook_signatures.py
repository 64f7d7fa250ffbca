"""Signatures of inbound provider webhooks (api.md §12.1-12.2, providers.md §3.8, §4.6).

Pure functions over the raw body and the header values as received: nothing is parsed
before it is verified, every comparison is constant-time, and a header that is missing,
not ASCII or malformed is a refusal (`SignatureInvalid`), never a crash. The reason a
refusal carries names what was wrong, never a secret or a signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

SVIX_SECRET_PREFIX = "whsec_"
_DIGITS = re.compile(r"[0-9]{1,15}")


class SignatureInvalid(Exception):
    """The webhook is not provably the provider's: answered 400 WEBHOOK_SIGNATURE_INVALID."""


def trustless_work_signature(secret: str, body: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of the raw body, keyed with the secret as UTF-8."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_trustless_work(secret: str, body: bytes, signature: str | None) -> None:
    """`X-TW-Signature` must equal the HMAC of the raw body (no timestamp is signed:
    replays are neutralised by the `event_id` deduplication)."""
    if not signature:
        raise SignatureInvalid("X-TW-Signature header missing")
    if not signature.isascii():
        raise SignatureInvalid("X-TW-Signature header is not ASCII")
    expected = trustless_work_signature(secret, body)
    if not hmac.compare_digest(signature.encode("ascii"), expected.encode("ascii")):
        raise SignatureInvalid("X-TW-Signature does not match the body")


def svix_key(secret: str) -> bytes:
    """The HMAC key of a Svix secret: the base64 after its `whsec_` prefix."""
    try:
        return base64.b64decode(secret.removeprefix(SVIX_SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the Airtm webhook secret is not whsec_<base64>") from exc


def svix_signature(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    """base64(HMAC-SHA256(key, "<svix-id>.<svix-timestamp>." + raw body)), as Svix signs."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")


def verify_svix(
    secret: str,
    body: bytes,
    *,
    message_id: str | None,
    timestamp: str | None,
    signature: str | None,
    now: float,
    tolerance_seconds: int,
) -> None:
    """Airtm's Svix headers: all three present and ASCII, the timestamp within
    ±`tolerance_seconds` of `now`, and one `v1,<base64>` entry of `svix-signature` equal to
    the expected signature (the others, and other versions, are ignored)."""
    if not message_id or not timestamp or not signature:
        raise SignatureInvalid("svix-id, svix-timestamp and svix-signature headers are required")
    if not (message_id.isascii() and timestamp.isascii() and signature.isascii()):
        raise SignatureInvalid("svix headers must be ASCII")
    if not message_id.isprintable():
        raise SignatureInvalid("svix-id is malformed")
    if not _DIGITS.fullmatch(timestamp):
        raise SignatureInvalid("svix-timestamp is not Unix seconds")
    if abs(now - int(timestamp)) > tolerance_seconds:
        raise SignatureInvalid("svix-timestamp is outside the tolerance")
    expected = svix_signature(svix_key(secret), message_id, timestamp, body).encode("ascii")
    matched = False
    for entry in signature.split():
        version, _, value = entry.partition(",")
        # every entry is compared (no early exit), so timing says nothing about which matched
        if version == "v1" and hmac.compare_digest(value.encode("ascii"), expected):
            matched = True
    if not matched:
        raise SignatureInvalid("no svix-signature entry matches the body")
