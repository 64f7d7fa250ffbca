"""Fixed-window rate limits in Redis, with the X-RateLimit-* headers of every answer.

A window is one minute; the counter key carries the window number so it expires by
itself. If Redis is unreachable the limit fails open (logged): losing Redis must not
stop payments.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from models.errors import ErrorCode, OfferhubError

log = logging.getLogger("offerhub.ratelimit")
WINDOW_SECONDS = 60


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


async def hit(redis: aioredis.Redis, *, scope: str, identity: str, limit: int) -> RateLimitStatus:
    """Count one request; raise 429 RATE_LIMITED (with headers) beyond `limit`."""
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    reset_at = (window + 1) * WINDOW_SECONDS
    key = f"offerhub:rl:{scope}:{identity}:{window}"
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS * 2)
            count, _ = await pipe.execute()
    except Exception as exc:
        log.warning("rate limit skipped: redis unavailable (%s)", type(exc).__name__)
        return RateLimitStatus(limit, limit, reset_at)
    status = RateLimitStatus(limit, max(0, limit - int(count)), reset_at)
    if int(count) > limit:
        retry_after = max(1, reset_at - int(now))
        raise OfferhubError(
            ErrorCode.RATE_LIMITED,
            f"Rate limit of {limit} requests per minute exceeded ({scope})",
            {"limit": limit, "window_seconds": WINDOW_SECONDS, "retry_after": retry_after, "scope": scope},
            headers={**status.headers(), "Retry-After": str(retry_after)},
        )
    return status
