import pytest
from pydantic import ValidationError

from settings import Settings

BASE = {
    "offerhub_master_key": "m" * 32,
    "wallet_encryption_key": "ab" * 32,
    "trustless_work_api_key": "k",
    "trustless_work_webhook_secret": "s",
}


def make(**overrides: object) -> Settings:
    return Settings(_env_file=None, **{**BASE, **overrides})  # type: ignore[arg-type]


def test_defaults_work_and_money_limits_are_cents() -> None:
    settings = make()
    assert settings.order_min_amount == 100 and settings.order_max_amount == 5_000_000
    assert settings.api_key_prefix == "ohk_test_" and len(settings.token_secret) == 32
    assert make(order_min_amount="2.50").order_min_amount == 250


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"offerhub_master_key": "short"}, "offerhub_master_key"),
        ({"wallet_encryption_key": "zz"}, "wallet_encryption_key"),
        ({"order_min_amount": "10.00", "order_max_amount": "5.00"}, "ORDER_MIN_AMOUNT"),
        ({"order_min_amount": "10"}, "order_min_amount"),
        ({"payment_provider": "airtm"}, "AIRTM_API_KEY"),
        ({"offerhub_environment": "live"}, "STELLAR_NETWORK"),
    ],
)
def test_invalid_configuration_refuses_to_start_naming_the_variable(overrides: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make(**overrides)
    assert needle.lower() in str(caught.value).lower()


def test_secrets_never_print() -> None:
    assert "m" * 32 not in repr(make()) and "m" * 32 not in str(make().model_dump())


# live: the sandbox's published values and weak secrets are refused, naming the variable ----------

LIVE = {
    "offerhub_environment": "live",
    "offerhub_master_key": "Xq7-vLk2_pR9sT4wZa8bN3cD6eF1gH5jKm0",
    "wallet_encryption_key": "3f9a1c7e5b2d8046" * 4,
    "trustless_work_api_key": "tw_live_9Xk2Lm7Qp4Rs8Tv1",
    "trustless_work_webhook_secret": "tw_whsec_Zr4Kq8Wn2Mx6Pv9Ty3",
    "stellar_network": "mainnet",
    "stellar_usdc_issuer": "GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN",
    "public_base_url": "https://payments.example",
    "temporal_payload_encryption_key": "c4e8a2f60b1d3957" * 4,
    "temporal_tls": True,
}
AIRTM_LIVE = {
    **LIVE,
    "payment_provider": "airtm",
    "airtm_env": "production",
    "airtm_api_key": "ak_Zr4Kq8Wn2Mx6Pv9Ty3",
    "airtm_api_secret": "as_Hb5Jc1Nd7Fg3Lp0Qw8",
    "airtm_webhook_secret": "whsec_R2x9Km4Lq7Wp1Zt6Vn3",
    "topup_default_return_url": "https://market.example/topups/success",
    "topup_default_cancel_url": "https://market.example/topups/canceled",
}


def live(**overrides: object) -> Settings:
    return Settings(_env_file=None, **{**LIVE, **overrides})  # type: ignore[arg-type]


def test_a_strong_live_configuration_starts() -> None:
    assert live().api_key_prefix == "ohk_live_"
    assert Settings(_env_file=None, **AIRTM_LIVE).payment_provider == "airtm"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        # the sandbox's published credentials and webhook secrets
        ({"trustless_work_api_key": "sandbox.twkey"}, "TRUSTLESS_WORK_API_KEY is a development default"),
        ({"trustless_work_webhook_secret": "tw_whsec_sandbox"}, "TRUSTLESS_WORK_WEBHOOK_SECRET is a development"),
        (
            {**AIRTM_LIVE, "airtm_webhook_secret": "whsec_b2ZmZXJodWItc2FuZGJveC1haXJ0bS13ZWJob29rLWtleQ=="},
            "AIRTM_WEBHOOK_SECRET is a development default",
        ),
        ({**AIRTM_LIVE, "airtm_api_secret": "sandbox-secret"}, "AIRTM_API_SECRET is a development default"),
        # weak secrets: 1 character, one repeated character, too few distinct ones
        ({"trustless_work_webhook_secret": "s"}, "TRUSTLESS_WORK_WEBHOOK_SECRET is a weak secret"),
        ({"trustless_work_api_key": "k"}, "TRUSTLESS_WORK_API_KEY is a weak secret"),
        ({"offerhub_master_key": "m" * 40}, "OFFERHUB_MASTER_KEY is a weak secret"),
        ({"offerhub_master_key": "ab" * 20}, "OFFERHUB_MASTER_KEY is a weak secret"),
        ({"offerhub_token_secret": "0123456" * 6}, "OFFERHUB_TOKEN_SECRET is a weak secret"),
        ({"wallet_encryption_key": "0" * 64}, "WALLET_ENCRYPTION_KEY is a weak secret"),
        ({"temporal_payload_encryption_key": "ab" * 32}, "TEMPORAL_PAYLOAD_ENCRYPTION_KEY is a weak secret"),
        ({"temporal_codec_server_token": "t" * 32}, "TEMPORAL_CODEC_SERVER_TOKEN is a weak secret"),
        ({**AIRTM_LIVE, "airtm_api_key": "x"}, "AIRTM_API_KEY is a weak secret"),
        # http checkout and return URLs
        ({**AIRTM_LIVE, "topup_default_return_url": "http://market.example/ok"}, "TOPUP_DEFAULT_RETURN_URL"),
        ({**AIRTM_LIVE, "topup_default_cancel_url": "http://market.example/no"}, "TOPUP_DEFAULT_CANCEL_URL"),
        ({**AIRTM_LIVE, "airtm_checkout_base_url": "http://app.airtm.com"}, "AIRTM_CHECKOUT_BASE_URL"),
        # the testnet and sandbox issuers and passphrases
        ({"stellar_usdc_issuer": "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5"}, "STELLAR_USDC_ISSUER"),
        ({"stellar_usdc_issuer": "GCODQVECTSW3UD3V4T6MUEJHQP4BPBUH7TDI43SHXK5SKZEEX5XNNVD2"}, "STELLAR_USDC_ISSUER"),
        ({"stellar_network_passphrase": "Test SDF Network ; September 2015"}, "STELLAR_NETWORK_PASSPHRASE"),
        ({"stellar_network_passphrase": "OfferHub Local Sandbox ; 2026"}, "STELLAR_NETWORK_PASSPHRASE"),
        # the payload codec and TLS to Temporal
        ({"temporal_payload_encryption_key": None}, "TEMPORAL_PAYLOAD_ENCRYPTION_KEY is required in live"),
        ({"temporal_tls": False}, "TEMPORAL_TLS must be true in live"),
        ({"temporal_payload_encryption_key": "3F9A1C7E5B2D8046" * 4}, "must differ from WALLET_ENCRYPTION_KEY"),
    ],
)
def test_live_refuses_sandbox_values_and_weak_secrets_naming_the_variable(
    overrides: dict[str, object], needle: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        live(**overrides)
    assert needle in str(caught.value)


def test_the_refused_values_are_the_ones_the_sandbox_publishes() -> None:
    from sandbox.core import DEFAULTS
    from sandbox.world import derived_keypair
    from settings import DEVELOPMENT_DEFAULTS, SANDBOX_NETWORK_PASSPHRASE, SANDBOX_USDC_ISSUER

    published = {value for name, value in DEFAULTS.items() if "KEY" in name or "SECRET" in name}
    assert published <= DEVELOPMENT_DEFAULTS
    assert DEFAULTS["SANDBOX_NETWORK_PASSPHRASE"] == SANDBOX_NETWORK_PASSPHRASE
    assert derived_keypair(DEFAULTS["SANDBOX_SEED"], "usdc-issuer").public_key == SANDBOX_USDC_ISSUER


def test_test_mode_keeps_accepting_the_sandbox_and_short_provider_secrets() -> None:
    assert make(trustless_work_webhook_secret="tw_whsec_sandbox").offerhub_environment == "test"
    assert make().temporal_payload_encryption_key is None  # `make dev`: the codec is off unless a key is set


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"temporal_payload_encryption_key": "not-hex"}, "temporal_payload_encryption_key"),
        ({"temporal_payload_encryption_previous_keys": "ab" * 32 + ",zz"}, "temporal_payload_encryption_previous_keys"),
        ({"temporal_codec_server_token": "short"}, "temporal_codec_server_token"),
    ],
)
def test_payload_keys_are_64_hex_and_the_codec_token_long(overrides: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make(**overrides)
    assert needle in str(caught.value)
