"""Blocks of rate-limit tokens (models/rate_allowance.py): exact near the limit, never more
admitted than the limit however claims interleave."""

from __future__ import annotations

import random

from models.rate_allowance import BLOCK_MAX, EXACT_BELOW, Allowance, block_size


def test_blocks_only_while_the_window_has_room_to_spare() -> None:
    assert block_size(None) == 1  # the first claim of a window learns where the counter stands
    assert block_size(EXACT_BELOW - 1) == 1
    assert block_size(99) == 6
    assert block_size(100_000_000) == BLOCK_MAX


def test_one_process_counts_every_request_exactly() -> None:
    counter, allowance, remaining = 0, Allowance(100), []
    while (left := allowance.take()) is not None or allowance.top < 100:
        if left is None:
            block = allowance.next_block()
            counter += block
            left = allowance.claimed(counter, block)
            assert left is not None
        remaining.append(left)
    assert remaining == list(range(99, -1, -1))
    counter += 1
    assert allowance.take() is None and allowance.claimed(counter, 1) is None


def test_replicas_interleaving_claims_never_admit_more_than_the_limit() -> None:
    rng = random.Random(7)
    for limit in (5, 100, 1000, 10_000):
        counter, admitted = 0, 0
        replicas = [Allowance(limit) for _ in range(4)]
        for _ in range(3 * limit):
            allowance = rng.choice(replicas)
            left = allowance.take()
            if left is None:
                block = allowance.next_block()
                counter += block
                left = allowance.claimed(counter, block)
            admitted += left is not None
        # every token up to the limit was claimed once: admitted, or still held unspent by a replica
        assert counter >= limit and admitted == limit - sum(r.left for r in replicas)
