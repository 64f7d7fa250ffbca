from decimal import Decimal

import pytest
from pydantic import BaseModel, ValidationError

from models.money import (
    AmountFormatError,
    Money,
    cents_to_json_number,
    cents_to_stellar_amount,
    cents_to_stroops,
    format_cents,
    json_number_to_cents,
    parse_amount,
    stellar_amount_to_stroops,
    stroops_to_cents_floor,
    stroops_to_stellar_amount,
)


@pytest.mark.parametrize(("text", "cents"), [("0.01", 1), ("120.00", 12000), ("120.50", 12050), ("00.10", 10)])
def test_parse_amount_reads_exact_cents(text: str, cents: int) -> None:
    assert parse_amount(text) == cents


@pytest.mark.parametrize(
    "bad",
    [
        *(100, 100.0, "100", "100.0", "100.000", "-1.00", "0.00", "1e3", " 1.00", "1,00", None),
        *("92233720368547758.08", "1234567890123456.00", "9" * 5000 + ".00"),  # > 15 digits before the point
        *("１２.００", "12.0٠", "١٢.00", "12.00\n"),  # digits that are not ASCII 0-9
    ],
)
def test_parse_amount_refuses_everything_else(bad: object) -> None:
    with pytest.raises(AmountFormatError):
        parse_amount(bad)


def test_format_round_trips() -> None:
    for cents in (0, 1, 99, 100, 12050, 99_999_999_999_999_999):
        assert parse_amount(format_cents(cents)) == cents if cents else format_cents(0) == "0.00"


def test_huge_provider_numbers_are_refused_without_building_them() -> None:
    for number in ("1e999999999", "Infinity", "NaN", "1" * 17):
        with pytest.raises(ValueError):
            json_number_to_cents(number, max_decimals=2)


def test_chain_conversions_are_exact() -> None:
    assert cents_to_stroops(12050) == 1_205_000_000
    assert cents_to_stellar_amount(12050) == "120.5000000"
    assert stellar_amount_to_stroops("120.5000000") == 1_205_000_000
    assert stroops_to_stellar_amount(1_205_000_001) == "120.5000001"
    floored = stroops_to_cents_floor(1_205_099_999)
    assert (floored.cents, floored.dust_stroops) == (12050, 99_999)
    with pytest.raises(ValueError):
        stellar_amount_to_stroops("1.00000001")


def test_provider_numbers() -> None:
    assert cents_to_json_number(12050) == 120.5
    assert cents_to_json_number(1) == 0.01
    assert json_number_to_cents(Decimal("120.5"), max_decimals=2) == 12050
    with pytest.raises(ValueError):
        json_number_to_cents(Decimal("1.005"), max_decimals=2)


class _Body(BaseModel):
    amount: Money


def test_money_field_gives_cents_and_a_typed_error() -> None:
    assert _Body.model_validate({"amount": "1.50"}).amount == 150
    with pytest.raises(ValidationError) as caught:
        _Body.model_validate({"amount": 100})
    assert caught.value.errors()[0]["type"] == "invalid_amount_format"
    assert _Body.model_json_schema()["properties"]["amount"]["type"] == "string"
