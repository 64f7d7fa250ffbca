"""Verify an outbound webhook (api.md §11.6): `OfferHub-Signature: t=<unix>,v1=<hex>[,v1=<hex>]`
where `v1 = hex(HMAC-SHA256(secret, "<t>." + raw body))`."""

from __future__ import annotations

import hashlib
import hmac
import time

from pydantic import ValidationError

from offerhub_sdk.errors import SignatureVerificationError
from offerhub_sdk.models import Event

SIGNATURE_HEADER = "OfferHub-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


def compute_signature(secret: str, timestamp: int, payload: bytes | str) -> str:
    body = payload.encode() if isinstance(payload, str) else payload
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def generate_signature_header(payload: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """A header as the server would send it (for a receiver's own tests)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return f"t={stamp},v1={compute_signature(secret, stamp, payload)}"


def verify_signature(
    payload: bytes | str,
    signature_header: str,
    secret: str,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise `SignatureVerificationError` unless one `v1=` matches (constant time) and `t` is recent."""
    pairs = [part.strip().partition("=") for part in (signature_header or "").split(",")]
    stamps = [value for name, _, value in pairs if name == "t"]
    candidates = [value for name, _, value in pairs if name == "v1"]
    if len(stamps) != 1 or not stamps[0].isdigit() or not candidates:
        raise SignatureVerificationError("Malformed OfferHub-Signature header")
    timestamp = int(stamps[0])
    if tolerance_seconds > 0 and abs((time.time() if now is None else now) - timestamp) > tolerance_seconds:
        raise SignatureVerificationError("Timestamp outside the tolerance")
    expected = compute_signature(secret, timestamp, payload)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureVerificationError("No signature matches the payload")


def verify(
    *,
    payload: bytes | str,
    signature_header: str,
    secret: str,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> Event:
    """Check the signature over the raw body, then return the parsed `Event`."""
    verify_signature(payload, signature_header, secret, tolerance_seconds, now)
    try:
        return Event.model_validate_json(payload)
    except ValidationError as exc:
        raise SignatureVerificationError(f"Signed body is not an event: {exc.error_count()} errors") from exc
