"""Money is an integer number of micro-dollars (1 USD = 1,000,000 micros), never a float."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import NewType

Micros = NewType("Micros", int)

MICROS_PER_USD = 1_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000  # prices are quoted per million tokens


def micros(value: int) -> Micros:
    return Micros(int(value))


def from_usd(amount: str | Decimal | int) -> Micros:
    """Parse a dollar amount ("12.50") exactly; more than six decimals is an error."""
    try:
        dec = Decimal(str(amount))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"not a dollar amount: {amount!r}") from exc
    if not dec.is_finite():
        raise ValueError(f"not a dollar amount: {amount!r}")
    scaled = dec * MICROS_PER_USD
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount!r} has more precision than a micro-dollar")
    return Micros(int(scaled))


def to_usd(value: int) -> Decimal:
    return (Decimal(value) / MICROS_PER_USD).quantize(Decimal("0.000001"))


def format_usd(value: int, places: int = 2) -> str:
    quantum = Decimal(1).scaleb(-places)
    amount = (Decimal(value) / MICROS_PER_USD).quantize(quantum, rounding=ROUND_HALF_UP)
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,}"


def token_cost(tokens: int, price_per_mtok: int) -> Micros:
    """Cost of ``tokens`` at ``price_per_mtok`` micros per million tokens, rounded up.

    Rounding up means a budget is never charged less than the provider will bill.
    """
    if tokens < 0 or price_per_mtok < 0:
        raise ValueError("tokens and prices are never negative")
    return Micros(-(-tokens * price_per_mtok // TOKENS_PER_PRICE_UNIT))
