"""The connections one API process holds: database, Redis, Temporal (connected lazily)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig

from api.database import DriverReads, create_engine
from api.event_feed import EventFeed
from api.key_cache import KeyCache
from api.maintenance import MaintenanceCache
from api.payload_codec import data_converter
from api.ratelimit import RateLimits
from providers.airtm.client import AirtmClient
from providers.stellar.horizon import HorizonClient
from providers.stellar.keyvault import KeyVault
from settings import Settings

log = logging.getLogger("offerhub.api")


# the API retries an unreachable Temporal for at most 3 s, then answers 503 (api/outages.py);
# the SDK's default would hold the request for about 10 s
API_RPC_RETRY = RetryConfig(initial_interval_millis=100, max_interval_millis=1000, max_elapsed_time_millis=3000)


async def connect_temporal(
    settings: Settings, *, runtime: Runtime | None = None, retry_config: RetryConfig | None = None
) -> Client:
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),  # pydantic JSON, sealed when a payload key is set
        tls=settings.temporal_tls,
        api_key=api_key,
        runtime=runtime,
        retry_config=retry_config,
    )


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: aioredis.Redis
    vault: KeyVault
    horizon: HorizonClient
    airtm: AirtmClient | None
    maintenance: MaintenanceCache = field(default_factory=MaintenanceCache)
    keys: KeyCache = field(default_factory=KeyCache)  # verified API keys; follows revocations on Redis
    event_feed: EventFeed = field(default_factory=EventFeed)  # wakes this process's event streams
    rate_limits: RateLimits = field(init=False)  # counted in `redis`, with the tokens this app holds
    reads: DriverReads = field(init=False)  # one-statement reads on the driver (GET /orders/{id})
    _temporal: Client | None = None
    _temporal_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        engine = create_engine(settings)
        airtm = None
        if settings.airtm_api_key is not None and settings.airtm_api_secret is not None:
            airtm = AirtmClient(
                settings.airtm_url,
                settings.airtm_api_key.get_secret_value(),
                settings.airtm_api_secret.get_secret_value(),
                timeout=settings.airtm_timeout_seconds,
                rate_per_second=settings.airtm_rate_limit_per_second,
            )
        previous = settings.wallet_encryption_previous_keys
        return cls(
            settings=settings,
            engine=engine,
            sessions=async_sessionmaker(engine, expire_on_commit=False),
            redis=aioredis.from_url(
                settings.redis_url.get_secret_value(),
                socket_timeout=2,
                socket_connect_timeout=2,
                decode_responses=False,
            ),
            vault=KeyVault.from_settings(
                settings.wallet_encryption_key.get_secret_value(), previous.get_secret_value() if previous else None
            ),
            horizon=HorizonClient(settings.horizon_url, settings.friendbot_url),
            airtm=airtm,
        )

    def __post_init__(self) -> None:
        self.rate_limits = RateLimits(self.redis)
        self.reads = DriverReads(self.engine, self.settings)

    async def temporal(self) -> Client:
        """The Temporal client, connecting on first use (the API starts even if Temporal is down)."""
        if self._temporal is None:
            async with self._temporal_lock:
                if self._temporal is None:
                    self._temporal = await connect_temporal(self.settings, retry_config=API_RPC_RETRY)
        return self._temporal

    async def close(self) -> None:
        await self.keys.close()
        await self.event_feed.close()
        await self.horizon.close()
        if self.airtm is not None:
            await self.airtm.close()
        await self.redis.aclose()
        await self.reads.close()
        await self.engine.dispose()
