"""Fixed-window rate limits in Redis, with the X-RateLimit-* headers of every answer.

A window is one minute; the counter key carries the window number so it expires by
itself. If Redis is unreachable the limit fails open (logged): losing Redis must not
stop payments.

One request is one Redis command (EVALSHA of COUNT: INCR, and EXPIRE when the window's
counter is new), atomic like MULTI/INCR/EXPIRE/EXEC but half the client's work and the
server's replies.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from models.errors import ErrorCode, OfferhubError

log = logging.getLogger("offerhub.ratelimit")
WINDOW_SECONDS = 60
# KEYS[1] the window's counter, ARGV[1] its lifetime; the count, this request included
COUNT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""
MAX_REMEMBERED = 10_000  # counts remembered for `roomy`, this window's only
_seen: dict[str, int] = {}  # counter key -> the count this process last read there
COUNT_SHA = hashlib.sha1(COUNT.encode()).hexdigest()  # Redis caches scripts by SHA1; it names them, no security role


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
    key = _key(scope, identity, window)
    try:
        count = await _count(redis, key)
    except Exception as exc:
        log.warning("rate limit skipped: redis unavailable (%s)", type(exc).__name__)
        return RateLimitStatus(limit, limit, reset_at)
    if len(_seen) >= MAX_REMEMBERED:
        _seen.clear()
    _seen[key] = count
    status = RateLimitStatus(limit, max(0, limit - count), reset_at)
    if count > limit:
        retry_after = max(1, reset_at - int(now))
        raise OfferhubError(
            ErrorCode.RATE_LIMITED,
            f"Rate limit of {limit} requests per minute exceeded ({scope})",
            {"limit": limit, "window_seconds": WINDOW_SECONDS, "retry_after": retry_after, "scope": scope},
            headers={**status.headers(), "Retry-After": str(retry_after)},
        )
    return status


def roomy(scope: str, identity: str, limit: int) -> bool:
    """Whether the count this process last read in the current window left at least half of
    `limit`: the next hit is then very unlikely to be refused (replicas share the budget), so
    a read may run while it is counted. A hint only: `hit` alone decides."""
    window = int(time.time() // WINDOW_SECONDS)
    if _seen and next(iter(_seen)).rsplit(":", 1)[1] != str(window):
        _seen.clear()  # a new window: the counts remembered are of the last one
    count = _seen.get(_key(scope, identity, window))
    return count is not None and count <= limit // 2


def _key(scope: str, identity: str, window: int) -> str:
    return f"offerhub:rl:{scope}:{identity}:{window}"


async def _count(redis: aioredis.Redis, key: str) -> int:
    try:
        return int(await redis.evalsha(COUNT_SHA, 1, key, WINDOW_SECONDS * 2))
    except NoScriptError:  # a Redis that has not seen COUNT yet (or restarted): sent in full once
        return int(await redis.eval(COUNT, 1, key, WINDOW_SECONDS * 2))
