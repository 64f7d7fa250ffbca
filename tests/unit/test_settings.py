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
