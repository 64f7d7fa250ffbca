"""Fixed-window rate limits in Redis, with the X-RateLimit-* headers of every answer.

A window is one minute; the counter key carries the window number so it expires by
itself. If Redis is unreachable the limit fails open (logged): losing Redis must not
stop payments.

Each process claims tokens from the window's counter in blocks while the window has room to
spare and spends them without a round trip; near the limit it claims one per request
(models/rate_allowance.py says why no more than the limit is ever admitted, across replicas).
A claim is one Redis command: EVALSHA of CLAIM (INCRBY, and EXPIRE when the window's counter
is new).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from models.errors import ErrorCode, OfferhubError
from models.rate_allowance import Allowance

log = logging.getLogger("offerhub.ratelimit")
WINDOW_SECONDS = 60
# KEYS[1] the window's counter, ARGV[1] its lifetime, ARGV[2] the tokens claimed; the count after
CLAIM = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""
CLAIM_SHA = hashlib.sha1(CLAIM.encode()).hexdigest()  # Redis caches scripts by SHA1; it names them, no security role
MAX_REMEMBERED = 10_000  # allowances held, of the current window only


@dataclass(frozen=True)
class RateLimitStatus:
    limit: int
    remaining: int
    reset_at: int  # unix seconds

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }


class RateLimits:
    """The limits as one app counts them in its Redis, with the tokens it holds there."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._held: dict[str, Allowance] = {}  # counter key -> this app's tokens in that window

    async def hit(self, *, scope: str, identity: str, limit: int) -> RateLimitStatus:
        """Count one request; raise 429 RATE_LIMITED (with headers) beyond `limit`."""
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        reset_at = (window + 1) * WINDOW_SECONDS
        key = _key(scope, identity, window)
        allowance = self._allowance(key, window, limit)
        remaining = allowance.take()
        if remaining is None:
            block = allowance.next_block()
            try:
                count = await self._claim(key, block)
            except Exception as exc:
                log.warning("rate limit skipped: redis unavailable (%s)", type(exc).__name__)
                return RateLimitStatus(limit, limit, reset_at)
            remaining = allowance.claimed(count, block)
        if remaining is None:
            retry_after = max(1, reset_at - int(now))
            status = RateLimitStatus(limit, 0, reset_at)
            raise OfferhubError(
                ErrorCode.RATE_LIMITED,
                f"Rate limit of {limit} requests per minute exceeded ({scope})",
                {"limit": limit, "window_seconds": WINDOW_SECONDS, "retry_after": retry_after, "scope": scope},
                headers={**status.headers(), "Retry-After": str(retry_after)},
            )
        return RateLimitStatus(limit, remaining, reset_at)

    def _allowance(self, key: str, window: int, limit: int) -> Allowance:
        held = self._held.get(key)
        if held is None or held.limit != limit:
            if len(self._held) >= MAX_REMEMBERED or (self._held and not next(iter(self._held)).endswith(f":{window}")):
                self._held.clear()  # a new window (the tokens held were of the last one), or too many callers
            held = self._held[key] = Allowance(limit)
        return held

    async def _claim(self, key: str, block: int) -> int:
        try:
            return int(await self.redis.evalsha(CLAIM_SHA, 1, key, WINDOW_SECONDS * 2, block))
        except NoScriptError:  # a Redis that has not seen CLAIM yet (or restarted): sent in full once
            return int(await self.redis.eval(CLAIM, 1, key, WINDOW_SECONDS * 2, block))


def _key(scope: str, identity: str, window: int) -> str:
    return f"offerhub:rl:{scope}:{identity}:{window}"
