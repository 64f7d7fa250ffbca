"""What activities share in one worker process: database, provider clients, key vault,
chain submitter, Temporal client. Built once at worker start; nothing here holds a seed."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from stellar_sdk import Asset
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.chain_store import PostgresChainStore
from providers.errors import ProviderError
from providers.stellar.horizon import HorizonClient
from providers.stellar.keyvault import KeyVault
from providers.stellar.submitter import ChainSubmitter
from providers.stellar.transactions import TxFactory
from providers.trustless_work.client import TrustlessWorkClient
from settings import Settings

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class WorkerContext:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    vault: KeyVault
    horizon: HorizonClient
    trustless: TrustlessWorkClient
    submitter: ChainSubmitter
    factory: TxFactory
    usdc: Asset
    temporal: Client | None = None

    @property
    def usdc_code(self) -> str:
        return self.settings.stellar_usdc_asset_code

    @property
    def usdc_issuer(self) -> str:
        return self.settings.usdc_issuer

    @classmethod
    def build(cls, settings: Settings, temporal: Client | None = None) -> WorkerContext:
        engine = create_async_engine(
            settings.database_url.get_secret_value(),
            hide_parameters=True,  # SQL parameters never reach logs or errors
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_pool_size,
            # no ping per checkout (three round trips): a dead connection fails the activity,
            # the pool drops it and Temporal's retry gets a fresh one
            pool_pre_ping=False,
            connect_args=settings.database_connect_args,
            pool_timeout=settings.database_connect_timeout_seconds + 2,
        )
        vault = KeyVault.from_settings(
            settings.wallet_encryption_key.get_secret_value(),
            settings.wallet_encryption_previous_keys.get_secret_value()
            if settings.wallet_encryption_previous_keys
            else None,
        )
        horizon = HorizonClient(settings.horizon_url, settings.friendbot_url)
        trustless = TrustlessWorkClient(
            settings.trustless_work_url,
            settings.trustless_work_api_key.get_secret_value(),
            submit_timeout=settings.trustless_work_timeout_seconds,
            rate_per_minute=settings.trustless_work_rate_limit_per_minute,
        )
        usdc = Asset(settings.stellar_usdc_asset_code, settings.usdc_issuer)
        submitter = ChainSubmitter(
            horizon=horizon,
            trustless=trustless,
            vault=vault,
            store=PostgresChainStore(engine),
            passphrase=settings.network_passphrase,
            max_fee_stroops=settings.stellar_max_fee_stroops,
        )
        factory = TxFactory(
            horizon,
            passphrase=settings.network_passphrase,
            usdc=usdc,
            base_fee=settings.stellar_base_fee_stroops,
            timeout_seconds=settings.stellar_tx_timeout_seconds,
        )
        built = cls(
            settings,
            engine,
            # no autoflush: events and audit entries go out as one INSERT per table at commit,
            # not one per statement that follows them (steps flush explicitly where they need to)
            async_sessionmaker(engine, expire_on_commit=False, autoflush=False),
            vault,
            horizon,
            trustless,
            submitter,
            factory,
            usdc,
            temporal,
        )
        from activities.wallets import FeeFloat  # wallets builds on this module

        submitter.fee_float = FeeFloat(built)
        return built

    async def close(self) -> None:
        await self.horizon.close()
        await self.trustless.close()
        await self.engine.dispose()


def provider_errors(call: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Provider errors become ApplicationErrors typed by class, retryable as the class says."""

    @functools.wraps(call)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        beating = asyncio.create_task(_heartbeat())  # a dead worker is noticed in seconds, not minutes
        try:
            return await call(*args, **kwargs)
        except ProviderError as exc:
            delay = getattr(exc, "retry_after", None)
            raise ApplicationError(
                str(exc),
                exc.details(),
                type=type(exc).__name__,
                non_retryable=not exc.retryable,
                next_retry_delay=_seconds(delay),
            ) from None
        finally:
            beating.cancel()

    return wrapper


HEARTBEAT_SECONDS = 3.0


async def _heartbeat() -> None:
    # the first beat after HEARTBEAT_SECONDS: the heartbeat timeout counts from the start, and
    # a step that ends sooner (most do) costs the server no heartbeat at all
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        activity.heartbeat()


def _seconds(value: Any) -> Any:
    from datetime import timedelta

    return timedelta(seconds=float(value)) if value else None
