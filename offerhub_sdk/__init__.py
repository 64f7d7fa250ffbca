"""`offerhub_sdk`: the Python client of the OFFER-HUB Orchestrator API (spec: sdk.md).

    from offerhub_sdk import OfferHub
    with OfferHub(api_key="ohk_test_…") as client:
        order = client.orders.create(buyer_id=..., seller_id=..., amount="120.00", title="Logo")

Depends on httpx and pydantic only; never imports the server's packages."""

from offerhub_sdk import errors, models, webhooks
from offerhub_sdk._async_client import AsyncEventStream, AsyncOfferHub, AsyncPage
from offerhub_sdk._sync_client import EventStream, OfferHub, Page
from offerhub_sdk._version import __version__
from offerhub_sdk.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    OfferHubError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServiceUnavailableError,
    SignatureVerificationError,
    UnprocessableError,
)

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncEventStream",
    "AsyncOfferHub",
    "AsyncPage",
    "AuthenticationError",
    "ConflictError",
    "EventStream",
    "InvalidRequestError",
    "NotFoundError",
    "OfferHub",
    "OfferHubError",
    "Page",
    "PermissionDeniedError",
    "ProviderError",
    "RateLimitError",
    "ServiceUnavailableError",
    "SignatureVerificationError",
    "UnprocessableError",
    "__version__",
    "errors",
    "models",
    "webhooks",
]
