"""Provider-side money conversions (providers.md §1.9); the exact arithmetic lives in models.money."""

from models.money import (
    cents_to_json_number,
    cents_to_stellar_amount,
    cents_to_stroops,
    json_number_to_cents,
    stellar_amount_to_stroops,
    stroops_to_cents_exact,
    stroops_to_cents_floor,
    stroops_to_stellar_amount,
)

__all__ = [
    "cents_to_json_number",
    "cents_to_stellar_amount",
    "cents_to_stroops",
    "json_number_to_cents",
    "stellar_amount_to_stroops",
    "stroops_to_cents_exact",
    "stroops_to_cents_floor",
    "stroops_to_stellar_amount",
]
