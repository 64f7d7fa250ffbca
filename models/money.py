"""Money at the edges: 2-decimal API strings, integer cents inside, 7-decimal USDC on chain.

Every conversion is exact (int arithmetic only). The one rounding rule of the system is
the deposit floor: stroops that are not a whole number of cents stay uncredited as dust.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

# ASCII digits only: `\d` would take "１２.００" (api.md §1.2); 15 digits before the point
AMOUNT_PATTERN = re.compile(r"^[0-9]{1,15}\.[0-9]{2}$")
LOOSE_AMOUNT_PATTERN = re.compile(r"^[0-9]+\.[0-9]{2}$")
STELLAR_AMOUNT_PATTERN = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,7})?$")
MAX_CENTS = 9_223_372_036_854_775_807
STROOPS_PER_CENT = 100_000
STROOPS_PER_UNIT = 10_000_000
SUPPORTED_CURRENCIES = ("USD",)


class AmountFormatError(ValueError):
    """A money value that is not a `^[0-9]{1,15}\\.[0-9]{2}$` string strictly above 0.00."""


def parse_amount(value: object) -> int:
    """`"120.50"` -> 12050. Anything but a well-formed positive 2-decimal string fails."""
    if isinstance(value, str) and LOOSE_AMOUNT_PATTERN.fullmatch(value) and not AMOUNT_PATTERN.fullmatch(value):
        raise AmountFormatError("must have at most 15 digits before the decimal point")
    if not isinstance(value, str) or not AMOUNT_PATTERN.fullmatch(value):
        raise AmountFormatError('must be a string of ASCII digits with exactly 2 decimals, e.g. "120.00"')
    whole, fraction = value.split(".")
    cents = int(whole) * 100 + int(fraction)
    if cents <= 0:
        raise AmountFormatError("must be greater than 0.00")
    if cents > MAX_CENTS:
        raise AmountFormatError("is too large")
    return cents


def format_cents(cents: int) -> str:
    """12050 -> `"120.50"`; 0 -> `"0.00"` (running totals may be zero)."""
    if cents < 0:
        raise ValueError("a ledger amount is never negative")
    return f"{cents // 100}.{cents % 100:02d}"


def cents_to_stroops(cents: int) -> int:
    return cents * STROOPS_PER_CENT


def cents_to_stellar_amount(cents: int) -> str:
    """12050 -> `"120.5000000"` (the 7-decimal form Horizon and operations use)."""
    return f"{cents // 100}.{cents % 100:02d}00000"


def stellar_amount_to_stroops(amount: str) -> int:
    if not STELLAR_AMOUNT_PATTERN.fullmatch(amount):
        raise ValueError(f"not a Stellar amount: {amount!r}")
    scaled = Decimal(amount) * STROOPS_PER_UNIT
    if scaled != scaled.to_integral_value():
        raise ValueError(f"not a whole number of stroops: {amount!r}")
    return int(scaled)


def stroops_to_stellar_amount(stroops: int) -> str:
    return f"{stroops // STROOPS_PER_UNIT}.{stroops % STROOPS_PER_UNIT:07d}"


@dataclass(frozen=True)
class FlooredCents:
    """A chain quantity floored to cents, with the sub-cent remainder kept as dust."""

    cents: int
    dust_stroops: int


def stroops_to_cents_floor(stroops: int) -> FlooredCents:
    return FlooredCents(stroops // STROOPS_PER_CENT, stroops % STROOPS_PER_CENT)


def stroops_to_cents_exact(stroops: int) -> int:
    if stroops % STROOPS_PER_CENT:
        raise ValueError(f"{stroops} stroops is not a whole number of cents")
    return stroops // STROOPS_PER_CENT


def cents_to_json_number(cents: int) -> float:
    """Provider bodies (Trustless Work, Airtm) take whole-unit JSON numbers: 12050 -> 120.5.

    float() of a decimal with <= 15 significant digits prints back as that decimal.
    """
    return float(Decimal(cents) / 100)


def json_number_to_cents(value: Decimal | int | str, *, max_decimals: int) -> int:
    """Parse a provider JSON number (read with parse_float=Decimal) into exact cents."""
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc
    exponent = number.as_tuple().exponent
    if not number.is_finite() or number.adjusted() > 15:  # `1e999999999` would build a huge int
        raise ValueError(f"not an amount: {str(value)[:40]!r}")
    if not isinstance(exponent, int) or -exponent > max_decimals:
        raise ValueError(f"too many decimals: {value!r}")
    cents = number * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"not a whole number of cents: {value!r}")
    return int(cents)


class _MoneyField:
    """Pydantic schema of API money: validates the string, yields integer cents.

    Failures raise the `invalid_amount_format` error type, which the API maps to
    `400 INVALID_AMOUNT_FORMAT` (README conventions).
    """

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def validate(value: object) -> int:
            try:
                return parse_amount(value)
            except AmountFormatError as exc:
                raise PydanticCustomError("invalid_amount_format", str(exc)) from None

        return core_schema.no_info_plain_validator_function(
            validate, serialization=core_schema.plain_serializer_function_ser_schema(format_cents)
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "pattern": AMOUNT_PATTERN.pattern, "examples": ["120.00"]}


class _CurrencyField:
    """Pydantic schema of `currency`: only `USD` in v1 (`400 INVALID_CURRENCY`)."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def validate(value: object) -> str:
            if value not in SUPPORTED_CURRENCIES:
                raise PydanticCustomError("invalid_currency", "only USD is supported")
            return str(value)

        return core_schema.no_info_plain_validator_function(validate)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "enum": list(SUPPORTED_CURRENCIES), "default": "USD"}


# Field types for request models: `Money` parses "120.00" into 12000 cents.
Money = Annotated[int, _MoneyField()]
Currency = Annotated[str, _CurrencyField()]
