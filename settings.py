"""Every environment variable of domain.md §9 in one typed, self-validating object.

Secrets are `SecretStr` (never printed, never in `/config` or an error body). Money limits
are given as money strings and held as integer cents. The process refuses to start on an
invalid combination, naming the variable.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import Annotated, Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from models.money import AmountFormatError, parse_amount

VERSION = "1.0.0"
TESTNET_USDC_ISSUER = "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5"
NETWORK_PASSPHRASES = {
    "testnet": "Test SDF Network ; September 2015",
    "mainnet": "Public Global Stellar Network ; September 2015",
}
# Values the embedded/sandbox stack publishes (sandbox/core.py DEFAULTS); refused in `live`.
DEVELOPMENT_DEFAULTS = {
    "sandbox.twkey",
    "tw_whsec_sandbox",
    "sandbox-key",
    "sandbox-secret",
    "whsec_b2ZmZXJodWItc2FuZGJveC1haXJ0bS13ZWJob29rLWtleQ==",
}
SANDBOX_NETWORK_PASSPHRASE = "OfferHub Local Sandbox ; 2026"
# the USDC issuer the sandbox derives from its published seed (tests/unit/test_settings.py checks it)
SANDBOX_USDC_ISSUER = "GCODQVECTSW3UD3V4T6MUEJHQP4BPBUH7TDI43SHXK5SKZEEX5XNNVD2"
# live secrets: our own (we choose their length) and the providers' (they do)
OWN_SECRETS = ("offerhub_master_key", "offerhub_token_secret", "temporal_codec_server_token")
PROVIDER_SECRETS = (
    "trustless_work_api_key",
    "trustless_work_webhook_secret",
    "airtm_api_key",
    "airtm_api_secret",
    "airtm_webhook_secret",
    "temporal_api_key",
)
HEX_KEYS = ("wallet_encryption_key", "temporal_payload_encryption_key")


def _money_to_cents(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return parse_amount(value)
    except AmountFormatError as exc:
        raise ValueError(f"money limit {value!r} {exc}") from None


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


MoneyCents = Annotated[int, BeforeValidator(_money_to_cents)]
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_list)]


def weak_secret(value: str, *, min_length: int) -> str | None:
    """Why `value` is too weak to guard money (None when it is not): too short, or too few
    distinct characters (`aaaa…`, `abab…`; a random hex key has about 16 of 64 characters)."""
    if len(value) < min_length:
        return f"shorter than {min_length} characters"
    if len(set(value)) < 8:
        return "fewer than 8 distinct characters"
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # instance and HTTP
    offerhub_environment: Literal["test", "live"] = "test"
    offerhub_master_key: SecretStr
    offerhub_token_secret: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 4000
    public_base_url: str = "http://localhost:4000"
    cors_allowed_origins: CommaList = Field(default_factory=list)
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    metrics_enabled: bool = True
    # where the worker serves the Temporal SDK's Prometheus metrics (unset: not served)
    temporal_metrics_bind_address: str | None = None

    # storage and workflow engine
    database_url: SecretStr = SecretStr("postgresql+asyncpg://postgres@127.0.0.1:5432/offerhub")
    database_pool_size: int = 10
    # an unreachable or hung PostgreSQL answers 503 within seconds instead of holding requests
    database_connect_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    database_statement_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "offerhub"
    temporal_tls: bool = False
    temporal_api_key: SecretStr | None = None
    # AES-256-GCM key (64 hex) of the Temporal payload codec; unset: payloads in clear (required in live)
    temporal_payload_encryption_key: SecretStr | None = None
    # decrypt-only payload keys during rotation (`hex,…`), picked by each payload's key id
    temporal_payload_encryption_previous_keys: SecretStr | None = None
    # bearer token `offerhub codec-server` requires (≥ 32 chars; required when bound off loopback)
    temporal_codec_server_token: SecretStr | None = None
    wallet_encryption_key: SecretStr
    wallet_encryption_previous_keys: SecretStr | None = None

    # payment rails
    payment_provider: Literal["crypto", "airtm"] = "crypto"
    stellar_network: Literal["testnet", "mainnet"] = "testnet"
    stellar_horizon_url: str | None = None
    stellar_network_passphrase: str | None = None
    stellar_usdc_asset_code: str = "USDC"
    stellar_usdc_issuer: str | None = None
    stellar_account_funding: Literal["sponsor", "friendbot"] = "sponsor"
    stellar_wallet_starting_balance: str = "5"
    stellar_wallet_fee_floor: str = "1"
    stellar_wallet_fee_topup: str = "3"
    stellar_friendbot_url: str | None = None
    stellar_tx_timeout_seconds: int = 30
    stellar_base_fee_stroops: int = 100
    stellar_max_fee_stroops: int = 5_000_000
    deposit_poll_interval_seconds: float = 5
    deposit_idle_poll_interval_seconds: float = 60
    trustless_work_base_url: str | None = None
    trustless_work_api_key: SecretStr
    trustless_work_webhook_secret: SecretStr
    trustless_work_timeout_seconds: float = 60
    trustless_work_rate_limit_per_minute: int = 45
    airtm_env: Literal["sandbox", "production"] = "sandbox"
    airtm_base_url: str | None = None
    airtm_checkout_base_url: str | None = None
    airtm_api_key: SecretStr | None = None
    airtm_api_secret: SecretStr | None = None
    airtm_webhook_secret: SecretStr | None = None
    airtm_timeout_seconds: float = 30
    airtm_rate_limit_per_second: int = 8
    airtm_payout_require_id_verified: bool = False
    topup_default_return_url: str = "http://localhost:3000/topups/success"
    topup_default_cancel_url: str = "http://localhost:3000/topups/canceled"

    # limits, rate limits, timers
    topup_min_amount: MoneyCents = 100
    topup_max_amount: MoneyCents = 1_000_000
    withdrawal_min_amount: MoneyCents = 1_000
    withdrawal_max_amount: MoneyCents = 500_000
    order_min_amount: MoneyCents = 100
    order_max_amount: MoneyCents = 5_000_000
    max_milestones_per_order: int = Field(default=50, ge=1, le=50)
    # counted in blocks per process while a window has room to spare, exactly near the limit
    rate_limit_per_key_per_minute: int = Field(default=100, ge=1)
    rate_limit_topups_per_user_per_minute: int = Field(default=10, ge=1)
    rate_limit_withdrawals_per_user_per_minute: int = Field(default=5, ge=1)
    # provider webhooks count here too (a provider posts from few addresses): raise it for peaks
    # past 600 a minute, or part of them is answered 429 and arrives later, on the provider's retry
    rate_limit_unauthenticated_per_ip_per_minute: int = Field(default=600, ge=1)
    sse_max_streams_per_credential: int = 50
    api_update_wait_seconds: float = Field(default=25, gt=0)
    topup_expiry_seconds: int = 3600
    topup_poll_interval_seconds: int = 300
    withdrawal_commit_ttl_seconds: int = 86400
    withdrawal_poll_interval_seconds: int = 300
    idempotency_lock_seconds: int = Field(default=60, ge=1)
    idempotency_short_retention_seconds: int = 86400
    idempotency_long_retention_seconds: int = 604800
    token_default_ttl_seconds: int = 900
    token_max_ttl_seconds: int = 86400
    sse_heartbeat_seconds: int = 15
    sse_max_stream_seconds: int = 3600
    sse_retry_ms: int = 3000
    # seconds between an open event stream's checks of its credential (revoked key, expired token); at most 15
    sse_credential_check_seconds: float = Field(default=15, gt=0, le=15)
    event_retention_days: int = 30
    webhook_max_endpoints: int = 20
    webhook_delivery_timeout_seconds: int = 10
    webhook_delivery_max_age_seconds: int = 259200
    webhook_secret_rotation_overlap_seconds: int = 86400
    # delays between delivery attempts (api.md §11.6: ≈ 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h,
    # then the last one repeated); jitter of up to 10 % is added. Tests shorten it.
    webhook_retry_schedule_seconds: Annotated[list[float], NoDecode, BeforeValidator(_comma_list)] = Field(
        default=[30, 120, 600, 1800, 3600, 7200, 14400, 28800], min_length=1
    )
    provider_webhook_tolerance_seconds: int = 300
    inbound_webhook_retention_days: int = 90
    health_check_timeout_seconds: float = 3
    reconciliation_interval_seconds: int = 300

    @field_validator("offerhub_master_key", "offerhub_token_secret", "temporal_codec_server_token")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @field_validator("wallet_encryption_key", "temporal_payload_encryption_key")
    @classmethod
    def _hex_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", value.get_secret_value()):
            raise ValueError("must be 64 hex characters (32 bytes)")
        return value

    @field_validator("temporal_payload_encryption_previous_keys")
    @classmethod
    def _hex_keys(cls, value: SecretStr | None) -> SecretStr | None:
        keys = [k.strip() for k in value.get_secret_value().split(",")] if value is not None else []
        if not all(re.fullmatch(r"[0-9a-fA-F]{64}", key) for key in keys if key):
            raise ValueError("must be 64 hex characters (32 bytes) each, comma-separated")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        for name in ("topup", "withdrawal", "order"):
            if getattr(self, f"{name}_min_amount") > getattr(self, f"{name}_max_amount"):
                raise ValueError(f"{name.upper()}_MIN_AMOUNT is above {name.upper()}_MAX_AMOUNT")
        if self.payment_provider == "airtm":
            for var in ("airtm_api_key", "airtm_api_secret", "airtm_webhook_secret"):
                if getattr(self, var) is None:
                    raise ValueError(f"{var.upper()} is required when PAYMENT_PROVIDER=airtm")
        if self.stellar_network == "mainnet" and self.stellar_usdc_issuer is None:
            raise ValueError("STELLAR_USDC_ISSUER is required on mainnet")
        if self.offerhub_environment == "live":
            self._check_live()
        return self

    def _check_live(self) -> None:
        if self.stellar_network != "mainnet":
            raise ValueError("STELLAR_NETWORK must be mainnet when OFFERHUB_ENVIRONMENT=live")
        if self.payment_provider == "airtm" and self.airtm_env != "production":
            raise ValueError("AIRTM_ENV must be production when OFFERHUB_ENVIRONMENT=live")
        if self.stellar_account_funding == "friendbot" or self.stellar_friendbot_url:
            raise ValueError("STELLAR_ACCOUNT_FUNDING/STELLAR_FRIENDBOT_URL: no Friendbot in live")
        urls = {
            "PUBLIC_BASE_URL": self.public_base_url,
            "STELLAR_HORIZON_URL": self.horizon_url,
            "TRUSTLESS_WORK_BASE_URL": self.trustless_work_url,
            "AIRTM_BASE_URL": self.airtm_url,
        }
        for var, url in urls.items():
            if not url.startswith("https://"):
                raise ValueError(f"{var} must use https in live")
        if self.payment_provider == "airtm":
            checkout = {
                "AIRTM_CHECKOUT_BASE_URL": self.airtm_checkout_url,
                "TOPUP_DEFAULT_RETURN_URL": self.topup_default_return_url,
                "TOPUP_DEFAULT_CANCEL_URL": self.topup_default_cancel_url,
            }
            for var, url in checkout.items():
                if not url.startswith("https://"):
                    raise ValueError(f"{var} must use https in live")
        if self.network_passphrase != NETWORK_PASSPHRASES["mainnet"]:
            raise ValueError("STELLAR_NETWORK_PASSPHRASE must be the mainnet passphrase in live")
        if self.usdc_issuer in (TESTNET_USDC_ISSUER, SANDBOX_USDC_ISSUER):
            raise ValueError("STELLAR_USDC_ISSUER is a testnet/sandbox issuer, refused in live")
        if self.temporal_payload_encryption_key is None:
            raise ValueError("TEMPORAL_PAYLOAD_ENCRYPTION_KEY is required in live (payloads carry PII)")
        if not self.temporal_tls:
            raise ValueError("TEMPORAL_TLS must be true in live")
        for var in OWN_SECRETS + PROVIDER_SECRETS + HEX_KEYS:
            secret = getattr(self, var)
            if secret is None:
                continue
            value = secret.get_secret_value()
            if value in DEVELOPMENT_DEFAULTS:
                raise ValueError(f"{var.upper()} is a development default")
            problem = weak_secret(value, min_length=16 if var in PROVIDER_SECRETS else 32)
            if problem:
                raise ValueError(f"{var.upper()} is a weak secret in live: {problem}")
        payload_key = self.temporal_payload_encryption_key.get_secret_value().lower()
        if payload_key == self.wallet_encryption_key.get_secret_value().lower():
            raise ValueError("TEMPORAL_PAYLOAD_ENCRYPTION_KEY must differ from WALLET_ENCRYPTION_KEY")

    # derived values -------------------------------------------------------------------

    @property
    def api_key_prefix(self) -> str:
        return "ohk_live_" if self.offerhub_environment == "live" else "ohk_test_"

    @property
    def token_secret(self) -> bytes:
        if self.offerhub_token_secret is not None:
            return self.offerhub_token_secret.get_secret_value().encode()
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"offerhub-token-v1")
        return hkdf.derive(self.offerhub_master_key.get_secret_value().encode())

    @property
    def horizon_url(self) -> str:
        default = (
            "https://horizon-testnet.stellar.org"
            if self.stellar_network == "testnet"
            else "https://horizon.stellar.org"
        )
        return (self.stellar_horizon_url or default).rstrip("/")

    @property
    def network_passphrase(self) -> str:
        return self.stellar_network_passphrase or NETWORK_PASSPHRASES[self.stellar_network]

    @property
    def usdc_issuer(self) -> str:
        return self.stellar_usdc_issuer or TESTNET_USDC_ISSUER

    @property
    def friendbot_url(self) -> str | None:
        if self.stellar_friendbot_url:
            return self.stellar_friendbot_url
        return "https://friendbot.stellar.org" if self.stellar_network == "testnet" else None

    @property
    def database_connect_args(self) -> dict[str, object]:
        """asyncpg options of every engine: connect timeout, and a server-side statement
        timeout so a wedged query cannot hold a pooled connection for ever."""
        statement_ms = int(self.database_statement_timeout_seconds * 1000)
        return {
            "timeout": self.database_connect_timeout_seconds,
            "command_timeout": self.database_statement_timeout_seconds + 5,
            "server_settings": {"statement_timeout": str(statement_ms)},
        }

    @property
    def trustless_work_url(self) -> str:
        default = (
            "https://dev.api.trustlesswork.com"
            if self.stellar_network == "testnet"
            else "https://api.trustlesswork.com"
        )
        return (self.trustless_work_base_url or default).rstrip("/")

    @property
    def airtm_url(self) -> str:
        default = (
            "https://api.stg.enterprise.airtm.com/v2"
            if self.airtm_env == "sandbox"
            else "https://api.enterprise.airtm.com/v2"
        )
        return (self.airtm_base_url or default).rstrip("/")

    @property
    def airtm_checkout_url(self) -> str:
        default = "https://app.stg.airtm.io" if self.airtm_env == "sandbox" else "https://app.airtm.com"
        return (self.airtm_checkout_base_url or default).rstrip("/")

    @property
    def instance_fingerprint(self) -> str:
        """Stable, non-secret tag of this instance's master key (logs, diagnostics)."""
        return hashlib.sha256(self.offerhub_master_key.get_secret_value().encode()).hexdigest()[:8]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
