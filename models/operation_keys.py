"""Operation keys of signed chain steps (domain.md §2.14, providers.md §1.5): built here only.

`<resource>:<id>:<step>`. A step retried after it failed for good (the documented retry of
funding, a release, a refund or a dispute decision) runs as a new *round* under its own
key, `<resource>:<id>:<step>:r<n>` (a resolution is `…:resolve:<n>` from the first), so
every on-chain attempt stays recorded under the round that built it; the earlier rounds'
keys are looked up first, so a step that already landed is never paid twice.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class StepKey(BaseModel):
    """The key of one round of a chain step and the keys of its earlier rounds."""

    key: str
    earlier: list[str] = Field(default_factory=list)


def _round_key(base: str, round_no: int, numbered: bool) -> str:
    if numbered:  # resolutions carry their number from the first (`…:resolve:<n>`, providers.md §1.5)
        return f"{base}:{round_no}"
    return base if round_no <= 1 else f"{base}:r{round_no}"


def step_key(base: str, round_no: int = 1, *, numbered: bool = False) -> StepKey:
    return StepKey(
        key=_round_key(base, round_no, numbered),
        earlier=[_round_key(base, r, numbered) for r in range(1, round_no)],
    )


def escrow_deploy(escrow_id: str) -> StepKey:
    # a deployment that failed for good discards its escrow: the retry has a new escrow ID
    return step_key(f"escrow:{escrow_id}:deploy")


def escrow_fund(escrow_id: str, round_no: int = 1) -> StepKey:
    return step_key(f"escrow:{escrow_id}:fund", round_no)


def escrow_step(escrow_id: str, milestone_id: str | None, kind: str, round_no: int = 1) -> StepKey:
    """complete / approve / release / dispute / resolve, on the escrow or on one milestone."""
    scope = f"milestone:{milestone_id}" if milestone_id else f"escrow:{escrow_id}"
    return step_key(f"{scope}:{kind}", round_no, numbered=kind == "resolve")


def wallet_activation(wallet_id: str) -> str:
    return f"wallet:{wallet_id}:activate"


def wallet_fee_float(wallet_id: str, number: int) -> str:
    """The n-th XLM top-up of a signing wallet's fee float (providers.md §1.5)."""
    return f"wallet:{wallet_id}:float:{number}"


def wallet_fee_floats(wallet_id: str) -> str:
    """A LIKE pattern matching every fee-float top-up of one wallet."""
    return f"wallet:{wallet_id}:float:%"


def withdrawal_payment(withdrawal_id: str) -> str:
    """The USDC payment of a crypto withdrawal (providers.md §2.5): one key, rebuilt attempts under it."""
    return f"withdrawal:{withdrawal_id}:payment"
