"""Token claims: the bound user travels signed; unbound tokens keep their original payload."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

from api import credentials
from api.auth import EVERYONE, Audience, Credential
from models.errors import OfferhubError
from models.timefmt import utcnow

SECRET = b"s" * 32


def payload_of(token: str) -> dict[str, object]:
    part = token.removeprefix(credentials.TOKEN_PREFIX).split(".")[0]
    data: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data


def test_a_bound_token_carries_its_user_and_an_unbound_one_carries_none() -> None:
    expires = (utcnow() + timedelta(minutes=5)).replace(microsecond=0)
    bound = credentials.sign_token(credentials.TokenClaims("key_a", ("read",), expires, "usr_b"), SECRET)
    unbound = credentials.sign_token(credentials.TokenClaims("key_a", ("read",), expires), SECRET)
    assert payload_of(bound)["u"] == "usr_b" and "u" not in payload_of(unbound)
    assert credentials.read_token(bound, SECRET, utcnow()) == credentials.TokenClaims(
        "key_a", ("read",), expires, "usr_b"
    )
    assert credentials.read_token(unbound, SECRET, utcnow()) == credentials.TokenClaims("key_a", ("read",), expires)
    assert credentials.read_token(bound, b"t" * 32, utcnow()) is None
    assert credentials.read_token(bound, SECRET, expires) is None


def test_the_audience_of_a_bound_token_sees_its_user_only() -> None:
    token = Credential("token", "key_a", "backend", ("read",), utcnow(), "usr_b")
    audience = token.audience
    assert audience == Audience("usr_b") and audience.bound
    assert audience.sees("usr_b") and audience.sees("usr_x", "usr_b") and not audience.sees("usr_x", None)
    assert audience.user_filter(None) == audience.user_filter("usr_b") == "usr_b"
    try:
        audience.user_filter("usr_x")
    except OfferhubError as exc:
        assert exc.code == "USER_NOT_FOUND" and exc.details == {"user_id": "usr_x"}
    else:
        raise AssertionError("another user's filter must be refused")
    unbound = Credential("api_key", "key_a", "backend", ("read",)).audience
    assert unbound is EVERYONE and unbound.sees("usr_x") and unbound.user_filter("usr_x") == "usr_x"
