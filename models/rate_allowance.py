"""A process's share of a fixed-window rate limit counted in Redis (api/ratelimit.py).

Replicas share one counter per (scope, identity, window). Counting every request there costs a
round trip each; instead a process claims a *block* of tokens with one INCRBY and spends them
locally. Tokens are numbered by the counter: a claim that brings it to `count` holds the
numbers `count - block + 1 .. count`, and only those up to `limit` are granted. The numbers
of all claims are disjoint, so no more than `limit` requests are ever admitted in a window,
whatever the replicas do. What a block may cost is the other way: tokens a replica claimed
and has not spent yet are refused to the others until the window ends.

That is why blocks are claimed only while the window has room to spare (a sixteenth of what
was left, at most BLOCK_MAX), and one token at a time near the limit and for the small
per-user limits: there every answer is exact, `X-RateLimit-Remaining` included.
"""

from __future__ import annotations

from dataclasses import dataclass

BLOCK_MAX = 64
BLOCK_SHARE = 16  # a block is at most this fraction of the tokens left in the window
EXACT_BELOW = 2 * BLOCK_SHARE  # fewer tokens left than this: one token per request


def block_size(remaining: int | None) -> int:
    """Tokens to claim at once, given what the last claim left in this window (None: unknown)."""
    if remaining is None or remaining < EXACT_BELOW:
        return 1
    return min(BLOCK_MAX, remaining // BLOCK_SHARE)


@dataclass
class Allowance:
    """The tokens this process holds in one window: `left` of them, the highest numbered `top`."""

    limit: int
    top: int = 0
    left: int = 0

    def take(self) -> int | None:
        """Spend a held token; the request's remaining count, or None when none is held."""
        if self.left == 0:
            return None
        self.left -= 1
        return self.limit - (self.top - self.left)

    def claimed(self, count: int, block: int) -> int | None:
        """Record a claim of `block` tokens that brought the counter to `count` and spend the
        first of them; the request's remaining count, or None when none was within the limit."""
        granted = max(0, min(count, self.limit) - (count - block))
        if granted == 0:
            self.top = max(self.top, count)  # the window is spent: later claims would be refused too
            return None
        self.left += granted  # a concurrent claim's tokens are kept, not overwritten
        self.top = max(self.top, min(count, self.limit))
        return self.take()

    def next_block(self) -> int:
        """Tokens to claim next: one for the window's first claim (where the counter stands is
        not known yet), then `block_size` of what the last claim left."""
        return block_size(self.remaining if self.top else None)

    @property
    def remaining(self) -> int:
        """What the window still had for anyone when this process last looked."""
        return max(0, self.limit - self.top)
