"""API key secrets and short-lived tokens: generation, salted hashing, signing.

Keys are `ohk_test_`/`ohk_live_` + 43 URL-safe chars (32 random bytes), stored only as
`HMAC-SHA256(salt, secret)`. Tokens are `ohk_tok_<b64(payload)>.<b64(hmac)>`, nothing
stored: the payload holds the parent key, scopes, expiry and, for a user-bound token, the
user. Every comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

KEY_PREFIXES = ("ohk_live_", "ohk_test_")
TOKEN_PREFIX = "ohk_tok_"
LOOKUP_PREFIX_LENGTH = 8


@dataclass(frozen=True)
class NewApiKey:
    secret: str
    key_prefix: str
    lookup_prefix: str
    salt: bytes
    secret_hash: bytes
    key_hint: str


def hash_secret(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode(), hashlib.sha256).digest()


def generate_api_key(key_prefix: str) -> NewApiKey:
    random_part = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    secret = key_prefix + random_part
    salt = secrets.token_bytes(16)
    return NewApiKey(
        secret=secret,
        key_prefix=key_prefix,
        lookup_prefix=random_part[:LOOKUP_PREFIX_LENGTH],
        salt=salt,
        secret_hash=hash_secret(salt, secret),
        key_hint=f"{key_prefix}…{secret[-4:]}",
    )


def split_api_key(secret: str) -> tuple[str, str] | None:
    """(key_prefix, lookup_prefix) of a well-formed key secret, else None."""
    for prefix in KEY_PREFIXES:
        if secret.startswith(prefix):
            random_part = secret[len(prefix) :]
            if len(random_part) == 43 and all(c.isalnum() or c in "-_" for c in random_part):
                return prefix, random_part[:LOOKUP_PREFIX_LENGTH]
    return None


def verify_api_key(secret: str, salt: bytes, secret_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(salt, secret), secret_hash)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class TokenClaims:
    api_key_id: str
    scopes: tuple[str, ...]
    expires_at: datetime
    user_id: str | None = None  # a user-bound token reads only this user (api.md §4)


def sign_token(claims: TokenClaims, secret: bytes) -> str:
    fields: dict[str, object] = {
        "k": claims.api_key_id,
        "s": list(claims.scopes),
        "e": int(claims.expires_at.timestamp()),
    }
    if claims.user_id is not None:
        fields["u"] = claims.user_id
    payload = json.dumps(fields, separators=(",", ":")).encode()
    signature = hmac.new(secret, payload, hashlib.sha256).digest()
    return f"{TOKEN_PREFIX}{_b64(payload)}.{_b64(signature)}"


def read_token(token: str, secret: bytes, now: datetime) -> TokenClaims | None:
    """The claims of a token whose signature verifies and which has not expired."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    try:
        payload_part, signature_part = token[len(TOKEN_PREFIX) :].split(".")
        payload = _unb64(payload_part)
        signature = _unb64(signature_part)
    except ValueError:
        return None
    if not hmac.compare_digest(hmac.new(secret, payload, hashlib.sha256).digest(), signature):
        return None
    try:
        data = json.loads(payload)
        user_id = data.get("u")
        claims = TokenClaims(
            str(data["k"]),
            tuple(str(s) for s in data["s"]),
            datetime.fromtimestamp(int(data["e"]), UTC),
            None if user_id is None else str(user_id),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return claims if claims.expires_at > now else None


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
