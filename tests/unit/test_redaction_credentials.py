from datetime import UTC, datetime, timedelta

from api import credentials
from api.idempotency import canonical_body, fingerprint, is_storable
from models.redaction import REDACTED, redact


def test_secrets_are_redacted_by_key_and_by_shape() -> None:
    key = credentials.generate_api_key("ohk_test_").secret
    payload = {
        "api_key": "anything",
        "nested": [{"password": "p"}],
        "note": f"use {key} please",
        "email": "ana@example.com",
        "bank_account": "ES7620770024003102575766",
        "key_hint": "ohk_test_…abcd",
        "seed_text": "SB3KJ5OZNS5RXW2BQFBRIAVTAS5OWOXYHDT3HEO4DQZAXSYCUZ7HH3UI",
    }
    out = redact(payload)
    assert out["api_key"] == REDACTED and out["nested"][0]["password"] == REDACTED
    assert key not in out["note"] and REDACTED in out["note"]
    assert out["email"] == "a***@example.com"
    assert out["bank_account"] == "****5766"
    assert out["key_hint"] == "ohk_test_…abcd"
    assert out["seed_text"] == REDACTED


def test_api_key_hash_verifies_only_its_secret() -> None:
    new = credentials.generate_api_key("ohk_test_")
    assert len(new.secret) == len("ohk_test_") + 43
    assert credentials.split_api_key(new.secret) == ("ohk_test_", new.lookup_prefix)
    assert credentials.verify_api_key(new.secret, new.salt, new.secret_hash)
    assert not credentials.verify_api_key(new.secret[:-1] + "x", new.salt, new.secret_hash)
    assert new.secret.encode() not in new.secret_hash


def test_tokens_verify_expire_and_resist_tampering() -> None:
    now = datetime.now(UTC)
    claims = credentials.TokenClaims("key_abc", ("read",), now + timedelta(minutes=5))
    token = credentials.sign_token(claims, b"s" * 32)
    assert token.startswith("ohk_tok_")
    assert credentials.read_token(token, b"s" * 32, now) == claims.__class__(
        "key_abc", ("read",), claims.expires_at.replace(microsecond=0)
    )
    assert credentials.read_token(token, b"t" * 32, now) is None
    assert credentials.read_token(token, b"s" * 32, now + timedelta(minutes=6)) is None
    assert credentials.read_token(token[:-2] + "AA", b"s" * 32, now) is None


def test_fingerprint_canonicalizes_bodies() -> None:
    assert canonical_body(b"") == canonical_body(b"{}") == b"{}"
    assert fingerprint("ns", "POST", "/users", b'{"b":1, "a":2}') == fingerprint(
        "ns", "POST", "/users", b'{"a":2,"b":1}'
    )
    assert fingerprint("ns", "POST", "/users", b"{}") != fingerprint("other", "POST", "/users", b"{}")


def test_storable_responses() -> None:
    assert is_storable(201, {}) and is_storable(409, {"error": {"code": "INVALID_STATE"}})
    assert not is_storable(500, {}) and not is_storable(503, {}) and not is_storable(401, {})
    assert not is_storable(409, {"error": {"code": "IDEMPOTENCY_KEY_IN_PROGRESS"}})


def test_header_and_setting_names_of_secrets_are_redacted() -> None:
    from models.redaction import REDACTED, redact

    names = ["x-api-key", "api-key", "master_key", "wallet_encryption_key", "passphrase", "mnemonic", "cookie"]
    assert redact({name: "value" for name in names}) == {name: REDACTED for name in names}
    assert redact({"api_key_id": "key_x", "public_key": "GABC"}) == {"api_key_id": "key_x", "public_key": "GABC"}


def test_sql_parameters_never_reach_logs_or_errors() -> None:
    from api.database import create_engine
    from settings import Settings

    engine = create_engine(
        Settings(
            _env_file=None,
            offerhub_master_key="ohk_master_" + "k" * 40,
            wallet_encryption_key="0" * 64,
            trustless_work_api_key="x",
            trustless_work_webhook_secret="x",
        )
    )
    assert engine.sync_engine.hide_parameters
