"""Verified API keys, remembered by each API process so a request need not read PostgreSQL to
authenticate (api.md §1.1), with revocation still effective on every replica within a second.

Two maps: the digest of a secret verified once -> its key's ID (a secret never changes its
key), and a key's ID -> the key while ACTIVE (or None), read at most KEY_CACHE_SECONDS ago.
A revocation evicts the key in the revoking process at once and is published on Redis, so
every other process evicts it within milliseconds; the entry's age bounds the rest (Redis
down, a message lost): an entry is used only within KEY_CACHE_SECONDS of the moment its
lookup *started*, so every lookup that can still answer ACTIVE began before the revocation
committed, less than a second earlier.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

log = logging.getLogger("offerhub.auth")

KEY_CACHE_SECONDS = 1.0
REVOKED_CHANNEL = "offerhub:auth:revoked"
MAX_ENTRIES = 10_000  # past this the maps start over (one lookup each, no growth)
RESUBSCRIBE_SECONDS = 1.0


@dataclass(frozen=True)
class ActiveKey:
    id: str
    name: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class Lookup:
    """A key read from PostgreSQL is cached only if nothing was evicted while it was read."""

    started: float
    generation: int


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class KeyCache:
    def __init__(self) -> None:
        self._owners: dict[bytes, str] = {}
        self._keys: dict[str, tuple[float, ActiveKey | None]] = {}
        self._generation = 0  # bumped by every eviction
        self._listener: asyncio.Task[None] | None = None

    def owner(self, secret: str) -> str | None:
        """The key ID of a secret this process verified before, else None."""
        return self._owners.get(digest(secret))

    def remember_owner(self, secret: str, key_id: str) -> None:
        if len(self._owners) >= MAX_ENTRIES:
            self._owners.clear()
        self._owners[digest(secret)] = key_id

    def begin(self) -> Lookup:
        return Lookup(time.monotonic(), self._generation)

    def get(self, key_id: str) -> tuple[ActiveKey | None] | None:
        """`(key or None,)` when known for less than KEY_CACHE_SECONDS, else None (look it up)."""
        entry = self._keys.get(key_id)
        if entry is None or time.monotonic() - entry[0] >= KEY_CACHE_SECONDS:
            return None
        return (entry[1],)

    def put(self, key_id: str, key: ActiveKey | None, lookup: Lookup) -> None:
        if lookup.generation != self._generation:  # an eviction raced the read: it may be stale
            return
        if len(self._keys) >= MAX_ENTRIES:
            self._keys.clear()
        self._keys[key_id] = (lookup.started, key)

    def evict(self, key_id: str) -> None:
        self._generation += 1
        self._keys.pop(key_id, None)

    def clear(self) -> None:
        self._generation += 1
        self._keys.clear()

    # revocations from the other processes ---------------------------------------------------

    def listen(self, redis: aioredis.Redis) -> None:
        """Start following revocations on Redis (once per process; idempotent)."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._follow(redis), name="key-revocations")

    async def _follow(self, redis: aioredis.Redis) -> None:
        while True:
            try:
                async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(REVOKED_CHANNEL)
                    self.clear()  # whatever was published while this process was not listening
                    while True:
                        message = await pubsub.get_message(timeout=RESUBSCRIBE_SECONDS)
                        if message is not None and message["type"] == "message":
                            self.evict(bytes(message["data"]).decode())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: entries still age out within KEY_CACHE_SECONDS
                log.warning("key revocations not followed: %s", type(exc).__name__)
                await asyncio.sleep(RESUBSCRIBE_SECONDS)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
