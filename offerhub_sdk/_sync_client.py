"""`OfferHub`: the API of api.md as blocking resources. GENERATED from `_async_client.py` by
`python offerhub_sdk/_unasync.py`; do not edit by hand."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Generic
from urllib.parse import quote

import httpx

from offerhub_sdk._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    MILESTONE_SETTLED,
    STREAM_MAX_RECONNECTS,
    STREAM_READ_TIMEOUT,
    TOPUP_TERMINAL,
    WITHDRAWAL_TERMINAL,
    M,
    SSEDecoder,
    clean,
    connection_error,
    default_headers,
    dispute_settled,
    is_retryable,
    make_error,
    new_idempotency_key,
    order_settled,
    parse,
    parse_list,
    query,
    resolve_settings,
    retry_delay,
    stream_error,
    targets,
)
from offerhub_sdk.models import (
    ApiKey,
    AuditEntry,
    Balance,
    Comment,
    Config,
    Delivery,
    DepositInstructions,
    Dispute,
    Event,
    Health,
    MaintenanceStatus,
    Me,
    Milestone,
    Order,
    ReconciliationRun,
    Token,
    TopUp,
    User,
    Wallet,
    WalletTransaction,
    WebhookEndpoint,
    Withdrawal,
)

Time = datetime | str | None


def _p(value: str) -> str:
    """A path parameter, escaped (an ID never needs it; a milestone ref might)."""
    return quote(value, safe="")


class OfferHub:
    """The OFFER-HUB API client. `api_key` (else `OFFERHUB_API_KEY`) is an API key, a token,
    or the master key for `api_keys`, `maintenance` and `reconciliation`."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._settings = resolve_settings(api_key, base_url, timeout, max_retries)
        self.base_url = self._settings.base_url
        self.max_retries = self._settings.max_retries
        self._http = http_client or httpx.Client(timeout=timeout)
        self._headers = default_headers(self._settings)
        self.users = Users(self)
        self.orders = Orders(self)
        self.disputes = Disputes(self)
        self.topups = TopUps(self)
        self.withdrawals = Withdrawals(self)
        self.webhook_endpoints = WebhookEndpoints(self)
        self.events = Events(self)
        self.audit_logs = AuditLogs(self)
        self.tokens = Tokens(self)
        self.api_keys = ApiKeys(self)
        self.maintenance = Maintenance(self)
        self.reconciliation = Reconciliation(self)

    def __enter__(self) -> OfferHub:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # instance (api.md §3) ----------------------------------------------------------------

    def me(self) -> Me:
        return self._get("/me", Me)

    def config(self) -> Config:
        return self._get("/config", Config)

    def health(self) -> Health:
        """`GET /health`; a degraded instance (`503`) is returned with `status: "degraded"`."""
        response = self._request("GET", "/health", ok_statuses=(503,))
        return parse(Health, response)

    # transport ---------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        write: bool = False,
        ok_statuses: Iterable[int] = (),
    ) -> httpx.Response:
        """One call with the client's retries; a write carries one Idempotency-Key across them."""
        headers = dict(self._headers)
        if write:
            headers["Idempotency-Key"] = idempotency_key or new_idempotency_key()
        url = self.base_url + path
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method, url, params=query(params or {}), json=dict(body) if body else None, headers=headers
                )
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise connection_error(exc) from exc
                time.sleep(retry_delay(attempt, None))
                attempt += 1
                continue
            if response.is_success or response.status_code in ok_statuses:
                return response
            if attempt < self.max_retries and is_retryable(response):
                time.sleep(retry_delay(attempt, response))
                attempt += 1
                continue
            raise make_error(response)

    def _get(self, path: str, cast: type[M], params: Mapping[str, Any] | None = None) -> M:
        return parse(cast, self._request("GET", path, params=params))

    def _post(
        self, path: str, cast: type[M], body: Mapping[str, Any] | None = None, idempotency_key: str | None = None
    ) -> M:
        body = clean(body or {})
        return parse(cast, self._request("POST", path, body=body, idempotency_key=idempotency_key, write=True))

    def _delete(self, path: str, cast: type[M], idempotency_key: str | None = None) -> M:
        return parse(cast, self._request("DELETE", path, idempotency_key=idempotency_key, write=True))

    def _list(self, path: str, cast: type[M], params: Mapping[str, Any] | None = None) -> Page[M]:
        envelope = parse_list(self._request("GET", path, params=params))
        items = [cast.model_validate(item) for item in envelope.data]
        return Page(self, path, cast, dict(params or {}), items, envelope.has_more, envelope.next_cursor)

    def _poll(
        self, path: str, cast: type[M], done: Callable[[M], bool], timeout: float, interval: float
    ) -> M:
        deadline = time.monotonic() + timeout
        while True:
            current = self._get(path, cast)
            if done(current):
                return current
            if time.monotonic() >= deadline:
                state = getattr(current, "status", None)
                raise TimeoutError(f"{path} still {state} after {timeout:g} s")
            time.sleep(interval)


class Page(Generic[M]):
    """One page of a list (`.data`, `.has_more`, `.next_cursor`); iterating it yields every item
    of every page, fetching the next ones lazily with `cursor`."""

    def __init__(
        self,
        client: OfferHub,
        path: str,
        cast: type[M],
        params: dict[str, Any],
        data: Sequence[M],
        has_more: bool,
        next_cursor: str | None,
    ) -> None:
        self._client, self._path, self._cast, self._params = client, path, cast, params
        self.data = list(data)
        self.has_more = has_more
        self.next_cursor = next_cursor

    def next_page(self) -> Page[M] | None:
        if not self.has_more or not self.next_cursor:
            return None
        return self._client._list(self._path, self._cast, {**self._params, "cursor": self.next_cursor})

    def __iter__(self) -> Iterator[M]:
        page: Page[M] | None = self
        while page is not None:
            yield from page.data
            page = page.next_page()

    def auto_paging_iter(self) -> Iterator[M]:
        return self.__iter__()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(data=<{len(self.data)} items>, has_more={self.has_more})"


class _Resource:
    def __init__(self, client: OfferHub) -> None:
        self._client = client


class Users(_Resource):
    def create(
        self,
        *,
        external_user_id: str,
        email: str | None = None,
        type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> User:
        body = {"external_user_id": external_user_id, "email": email, "type": type, "metadata": metadata}
        return self._client._post("/users", User, body, idempotency_key)

    def list(
        self,
        *,
        type: str | None = None,
        status: str | None = None,
        external_user_id: str | None = None,
        email: str | None = None,
        created_after: Time = None,
        created_before: Time = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[User]:
        params = {
            "type": type,
            "status": status,
            "external_user_id": external_user_id,
            "email": email,
            "created_after": created_after,
            "created_before": created_before,
            "limit": limit,
            "cursor": cursor,
        }
        return self._client._list("/users", User, clean(params))

    def retrieve(self, user_id: str) -> User:
        return self._client._get(f"/users/{_p(user_id)}", User)

    def balance(self, user_id: str) -> Balance:
        return self._client._get(f"/users/{_p(user_id)}/balance", Balance)

    def verify_balance(self, user_id: str) -> Balance:
        return self._client._get(f"/users/{_p(user_id)}/balance/verify", Balance)

    def sync_balance(self, user_id: str, *, idempotency_key: str | None = None) -> Balance:
        return self._client._post(f"/users/{_p(user_id)}/balance/sync", Balance, None, idempotency_key)

    def wallet(self, user_id: str) -> Wallet:
        return self._client._get(f"/users/{_p(user_id)}/wallet", Wallet)

    def deposit_instructions(self, user_id: str) -> DepositInstructions:
        return self._client._get(f"/users/{_p(user_id)}/wallet/deposit", DepositInstructions)

    def wallet_transactions(
        self, user_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[WalletTransaction]:
        path = f"/users/{_p(user_id)}/wallet/transactions"
        return self._client._list(path, WalletTransaction, clean({"limit": limit, "cursor": cursor}))

    def link_airtm(self, user_id: str, *, email: str, idempotency_key: str | None = None) -> User:
        return self._client._post(f"/users/{_p(user_id)}/airtm/link", User, {"email": email}, idempotency_key)

    def wait_for_wallet(self, user_id: str, *, timeout: float = 60.0, interval: float = 0.5) -> User:
        """Poll until the user's wallet is `READY` (crypto mode; seconds after creation)."""

        def ready(user: User) -> bool:
            return user.wallet is not None and user.wallet.status == "READY"

        return self._client._poll(f"/users/{_p(user_id)}", User, ready, timeout, interval)


class Milestones(_Resource):
    def list(self, order_id: str) -> Page[Milestone]:
        return self._client._list(f"/orders/{_p(order_id)}/milestones", Milestone)

    def retrieve(self, order_id: str, milestone: str) -> Milestone:
        return self._client._get(f"/orders/{_p(order_id)}/milestones/{_p(milestone)}", Milestone)

    def complete(
        self, order_id: str, milestone: str, *, note: str | None = None, idempotency_key: str | None = None
    ) -> Milestone:
        path = f"/orders/{_p(order_id)}/milestones/{_p(milestone)}/complete"
        return self._client._post(path, Milestone, {"note": note}, idempotency_key)

    def approve(self, order_id: str, milestone: str, *, idempotency_key: str | None = None) -> Milestone:
        path = f"/orders/{_p(order_id)}/milestones/{_p(milestone)}/approve"
        return self._client._post(path, Milestone, None, idempotency_key)

    def wait(
        self,
        order_id: str,
        milestone: str,
        status: str | Iterable[str] | None = None,
        *,
        timeout: float = 60.0,
        interval: float = 0.5,
    ) -> Milestone:
        """Poll until the milestone is in `status` (default: out of `APPROVED` while it pays out)."""
        wanted = targets(status) or MILESTONE_SETTLED
        path = f"/orders/{_p(order_id)}/milestones/{_p(milestone)}"
        return self._client._poll(path, Milestone, lambda m: m.status in wanted, timeout, interval)


class Orders(_Resource):
    def __init__(self, client: OfferHub) -> None:
        super().__init__(client)
        self.milestones = Milestones(client)

    def create(
        self,
        *,
        buyer_id: str,
        seller_id: str,
        amount: str,
        title: str,
        currency: str | None = None,
        description: str | None = None,
        client_order_ref: str | None = None,
        milestones: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Order:
        body = {
            "buyer_id": buyer_id,
            "seller_id": seller_id,
            "amount": amount,
            "title": title,
            "currency": currency,
            "description": description,
            "client_order_ref": client_order_ref,
            "milestones": [dict(m) for m in milestones] if milestones is not None else None,
            "metadata": metadata,
        }
        return self._client._post("/orders", Order, body, idempotency_key)

    def list(
        self,
        *,
        status: str | None = None,
        buyer_id: str | None = None,
        seller_id: str | None = None,
        user_id: str | None = None,
        client_order_ref: str | None = None,
        created_after: Time = None,
        created_before: Time = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Order]:
        params = {
            "status": status,
            "buyer_id": buyer_id,
            "seller_id": seller_id,
            "user_id": user_id,
            "client_order_ref": client_order_ref,
            "created_after": created_after,
            "created_before": created_before,
            "limit": limit,
            "cursor": cursor,
        }
        return self._client._list("/orders", Order, clean(params))

    def retrieve(self, order_id: str) -> Order:
        return self._client._get(f"/orders/{_p(order_id)}", Order)

    def reserve(self, order_id: str, *, amount: str | None = None, idempotency_key: str | None = None) -> Order:
        return self._client._post(f"/orders/{_p(order_id)}/reserve", Order, {"amount": amount}, idempotency_key)

    def cancel(self, order_id: str, *, reason: str | None = None, idempotency_key: str | None = None) -> Order:
        return self._client._post(f"/orders/{_p(order_id)}/cancel", Order, {"reason": reason}, idempotency_key)

    def create_escrow(self, order_id: str, *, idempotency_key: str | None = None) -> Order:
        return self._client._post(f"/orders/{_p(order_id)}/escrow", Order, None, idempotency_key)

    def fund_escrow(self, order_id: str, *, idempotency_key: str | None = None) -> Order:
        return self._client._post(f"/orders/{_p(order_id)}/escrow/fund", Order, None, idempotency_key)

    def release(self, order_id: str, *, reason: str | None = None, idempotency_key: str | None = None) -> Order:
        path = f"/orders/{_p(order_id)}/resolution/release"
        return self._client._post(path, Order, {"reason": reason}, idempotency_key)

    def refund(self, order_id: str, *, reason: str, idempotency_key: str | None = None) -> Order:
        path = f"/orders/{_p(order_id)}/resolution/refund"
        return self._client._post(path, Order, {"reason": reason}, idempotency_key)

    def open_dispute(
        self,
        order_id: str,
        *,
        opened_by: str,
        reason: str,
        description: str | None = None,
        evidence: Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> Dispute:
        body = {
            "opened_by": opened_by,
            "reason": reason,
            "description": description,
            "evidence": [*evidence] if evidence is not None else None,
        }
        return self._client._post(f"/orders/{_p(order_id)}/resolution/dispute", Dispute, body, idempotency_key)

    def wait(
        self, order_id: str, status: str | Iterable[str] | None = None, *, timeout: float = 60.0, interval: float = 0.5
    ) -> Order:
        """Poll until the order is in `status` (default: out of its transitional states, the
        escrow's included); `TimeoutError` after `timeout` seconds."""
        wanted = targets(status)

        def done(order: Order) -> bool:
            return order.status in wanted if wanted is not None else order_settled(order)

        return self._client._poll(f"/orders/{_p(order_id)}", Order, done, timeout, interval)


class Disputes(_Resource):
    def list(
        self,
        *,
        order_id: str | None = None,
        status: str | None = None,
        opened_by: str | None = None,
        reason: str | None = None,
        assigned_to: str | None = None,
        created_after: Time = None,
        created_before: Time = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Dispute]:
        params = {
            "order_id": order_id,
            "status": status,
            "opened_by": opened_by,
            "reason": reason,
            "assigned_to": assigned_to,
            "created_after": created_after,
            "created_before": created_before,
            "limit": limit,
            "cursor": cursor,
        }
        return self._client._list("/disputes", Dispute, clean(params))

    def retrieve(self, dispute_id: str) -> Dispute:
        return self._client._get(f"/disputes/{_p(dispute_id)}", Dispute)

    def assign(
        self, dispute_id: str, *, assigned_to: str, note: str | None = None, idempotency_key: str | None = None
    ) -> Dispute:
        body = {"assigned_to": assigned_to, "note": note}
        return self._client._post(f"/disputes/{_p(dispute_id)}/assign", Dispute, body, idempotency_key)

    def resolve(
        self,
        dispute_id: str,
        *,
        decision: str,
        release_amount: str | None = None,
        refund_amount: str | None = None,
        note: str | None = None,
        idempotency_key: str | None = None,
    ) -> Dispute:
        body = {"decision": decision, "release_amount": release_amount, "refund_amount": refund_amount, "note": note}
        return self._client._post(f"/disputes/{_p(dispute_id)}/resolve", Dispute, body, idempotency_key)

    def add_comment(
        self,
        dispute_id: str,
        *,
        author_type: str,
        message: str,
        author_id: str | None = None,
        evidence: Sequence[str] | None = None,
        visibility: str | None = None,
        idempotency_key: str | None = None,
    ) -> Comment:
        body = {
            "author_type": author_type,
            "author_id": author_id,
            "message": message,
            "evidence": [*evidence] if evidence is not None else None,
            "visibility": visibility,
        }
        return self._client._post(f"/disputes/{_p(dispute_id)}/comments", Comment, body, idempotency_key)

    def list_comments(
        self, dispute_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Comment]:
        path = f"/disputes/{_p(dispute_id)}/comments"
        return self._client._list(path, Comment, clean({"limit": limit, "cursor": cursor}))

    def wait(
        self,
        dispute_id: str,
        status: str | Iterable[str] | None = None,
        *,
        timeout: float = 60.0,
        interval: float = 0.5,
    ) -> Dispute:
        """Poll until the dispute is in `status` (default: a decided dispute is `RESOLVED`)."""
        wanted = targets(status)

        def done(dispute: Dispute) -> bool:
            return dispute.status in wanted if wanted is not None else dispute_settled(dispute)

        return self._client._poll(f"/disputes/{_p(dispute_id)}", Dispute, done, timeout, interval)


class TopUps(_Resource):
    def create(
        self,
        *,
        user_id: str,
        amount: str,
        currency: str | None = None,
        return_url: str | None = None,
        cancel_url: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> TopUp:
        body = {
            "user_id": user_id,
            "amount": amount,
            "currency": currency,
            "return_url": return_url,
            "cancel_url": cancel_url,
            "description": description,
            "metadata": metadata,
        }
        return self._client._post("/topups", TopUp, body, idempotency_key)

    def list(
        self,
        *,
        user_id: str | None = None,
        status: str | None = None,
        provider: str | None = None,
        created_after: Time = None,
        created_before: Time = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[TopUp]:
        params = {
            "user_id": user_id,
            "status": status,
            "provider": provider,
            "created_after": created_after,
            "created_before": created_before,
            "limit": limit,
            "cursor": cursor,
        }
        return self._client._list("/topups", TopUp, clean(params))

    def retrieve(self, topup_id: str) -> TopUp:
        return self._client._get(f"/topups/{_p(topup_id)}", TopUp)

    def refresh(self, topup_id: str, *, idempotency_key: str | None = None) -> TopUp:
        return self._client._post(f"/topups/{_p(topup_id)}/refresh", TopUp, None, idempotency_key)

    def cancel(self, topup_id: str, *, reason: str | None = None, idempotency_key: str | None = None) -> TopUp:
        return self._client._post(f"/topups/{_p(topup_id)}/cancel", TopUp, {"reason": reason}, idempotency_key)

    def wait(
        self, topup_id: str, status: str | Iterable[str] | None = None, *, timeout: float = 60.0, interval: float = 0.5
    ) -> TopUp:
        """Poll until the top-up is in `status` (default: a terminal state)."""
        wanted = targets(status) or TOPUP_TERMINAL
        path = f"/topups/{_p(topup_id)}"
        return self._client._poll(path, TopUp, lambda t: t.status in wanted, timeout, interval)


class Withdrawals(_Resource):
    def create(
        self,
        *,
        user_id: str,
        amount: str,
        destination_type: str,
        destination_ref: str,
        currency: str | None = None,
        memo: str | None = None,
        commit: bool | None = None,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Withdrawal:
        body = {
            "user_id": user_id,
            "amount": amount,
            "currency": currency,
            "destination_type": destination_type,
            "destination_ref": destination_ref,
            "memo": memo,
            "commit": commit,
            "description": description,
            "metadata": metadata,
        }
        return self._client._post("/withdrawals", Withdrawal, body, idempotency_key)

    def list(
        self,
        *,
        user_id: str | None = None,
        status: str | None = None,
        destination_type: str | None = None,
        created_after: Time = None,
        created_before: Time = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Withdrawal]:
        params = {
            "user_id": user_id,
            "status": status,
            "destination_type": destination_type,
            "created_after": created_after,
            "created_before": created_before,
            "limit": limit,
            "cursor": cursor,
        }
        return self._client._list("/withdrawals", Withdrawal, clean(params))

    def retrieve(self, withdrawal_id: str) -> Withdrawal:
        return self._client._get(f"/withdrawals/{_p(withdrawal_id)}", Withdrawal)

    def commit(self, withdrawal_id: str, *, idempotency_key: str | None = None) -> Withdrawal:
        return self._client._post(f"/withdrawals/{_p(withdrawal_id)}/commit", Withdrawal, None, idempotency_key)

    def refresh(self, withdrawal_id: str, *, idempotency_key: str | None = None) -> Withdrawal:
        return self._client._post(f"/withdrawals/{_p(withdrawal_id)}/refresh", Withdrawal, None, idempotency_key)

    def cancel(
        self, withdrawal_id: str, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> Withdrawal:
        path = f"/withdrawals/{_p(withdrawal_id)}/cancel"
        return self._client._post(path, Withdrawal, {"reason": reason}, idempotency_key)

    def wait(
        self,
        withdrawal_id: str,
        status: str | Iterable[str] | None = None,
        *,
        timeout: float = 60.0,
        interval: float = 0.5,
    ) -> Withdrawal:
        """Poll until the withdrawal is in `status` (default: a terminal state)."""
        wanted = targets(status) or WITHDRAWAL_TERMINAL
        path = f"/withdrawals/{_p(withdrawal_id)}"
        return self._client._poll(path, Withdrawal, lambda w: w.status in wanted, timeout, interval)


class WebhookEndpoints(_Resource):
    def create(
        self,
        *,
        url: str,
        event_types: Sequence[str],
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> WebhookEndpoint:
        body = {"url": url, "event_types": [*event_types], "description": description}
        return self._client._post("/webhook-endpoints", WebhookEndpoint, body, idempotency_key)

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[WebhookEndpoint]:
        params = clean({"limit": limit, "cursor": cursor})
        return self._client._list("/webhook-endpoints", WebhookEndpoint, params)

    def retrieve(self, endpoint_id: str) -> WebhookEndpoint:
        return self._client._get(f"/webhook-endpoints/{_p(endpoint_id)}", WebhookEndpoint)

    def delete(self, endpoint_id: str, *, idempotency_key: str | None = None) -> WebhookEndpoint:
        return self._client._delete(f"/webhook-endpoints/{_p(endpoint_id)}", WebhookEndpoint, idempotency_key)

    def rotate_secret(self, endpoint_id: str, *, idempotency_key: str | None = None) -> WebhookEndpoint:
        path = f"/webhook-endpoints/{_p(endpoint_id)}/rotate-secret"
        return self._client._post(path, WebhookEndpoint, None, idempotency_key)

    def list_deliveries(
        self,
        endpoint_id: str,
        *,
        status: str | None = None,
        event_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Delivery]:
        params = clean({"status": status, "event_id": event_id, "limit": limit, "cursor": cursor})
        return self._client._list(f"/webhook-endpoints/{_p(endpoint_id)}/deliveries", Delivery, params)


class Events(_Resource):
    def list(
        self,
        *,
        user_id: str | None = None,
        types: str | Sequence[str] | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        cursor: str | None = None,
        since: Time = None,
        order: str | None = None,
        limit: int | None = None,
    ) -> Page[Event]:
        """`GET /events` as JSON: `order="desc"` (default) pages to older events, `"asc"` to newer."""
        params = {
            "user_id": user_id,
            "types": types,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "cursor": cursor,
            "since": since,
            "order": order,
            "limit": limit,
        }
        return self._client._list("/events", Event, clean(params))

    def stream(
        self,
        user_id: str | None = None,
        types: str | Sequence[str] | None = None,
        last_event_id: str | None = None,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
    ) -> EventStream:
        """The live stream (SSE): every matching event after `last_event_id` (else from the moment
        it connects, at the first iteration), in order, once; reconnects by itself with
        `Last-Event-ID`."""
        params = clean({"user_id": user_id, "types": types, "resource_type": resource_type, "resource_id": resource_id})
        return EventStream(self._client, params, last_event_id)


class EventStream:
    """Iterate for `Event`s; `.last_event_id` is where to resume after a restart. Close it (or use
    it as a context manager) to end the connection."""

    def __init__(self, client: OfferHub, params: dict[str, Any], last_event_id: str | None) -> None:
        self._client = client
        self._params = params
        self.last_event_id = last_event_id
        self.reconnects = 0
        self._retry_seconds = 3.0
        self._seen: list[str] = []
        self._events = self._run()

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> Event:
        return self._events.__next__()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._events.close()

    def _run(self) -> Generator[Event, None]:
        client = self._client
        failures = 0
        timeout = httpx.Timeout(client._settings.timeout, read=max(STREAM_READ_TIMEOUT, client._settings.timeout))
        while True:
            headers = {**client._headers, "Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if self.last_event_id:
                headers["Last-Event-ID"] = self.last_event_id
            try:
                with client._http.stream(
                    "GET", client.base_url + "/events", params=query(self._params), headers=headers, timeout=timeout
                ) as response:
                    if response.status_code != 200:
                        response.read()
                        if not is_retryable(response) or failures >= STREAM_MAX_RECONNECTS:
                            raise make_error(response)
                        failures += 1
                        time.sleep(retry_delay(failures, response))
                        continue
                    failures = 0
                    decoder = SSEDecoder()
                    for line in response.iter_lines():
                        sse = decoder.feed(line)
                        if decoder.retry_ms is not None:
                            self._retry_seconds = decoder.retry_ms / 1000
                        if sse is None or sse.event == "ping":
                            continue
                        if sse.event == "error":
                            raise stream_error(sse)
                        event = Event.model_validate_json(sse.data)
                        self.last_event_id = sse.id or event.id
                        if event.id in self._seen:
                            continue
                        self._seen = [*self._seen[-999:], event.id]
                        yield event
            except httpx.TransportError as exc:
                failures += 1
                if failures > STREAM_MAX_RECONNECTS:
                    raise connection_error(exc) from exc
            # the server ended the stream (deploy, a newer stream, 60 minutes) or the connection dropped
            self.reconnects += 1
            time.sleep(self._retry_seconds if failures <= 1 else retry_delay(failures, None))


class AuditLogs(_Resource):
    def list(
        self,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        action: str | None = None,
        user_id: str | None = None,
        actor_type: str | None = None,
        request_id: str | None = None,
        from_: Time = None,
        to: Time = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[AuditEntry]:
        params = {
            "resource_type": resource_type,
            "resource_id": resource_id,
            "action": action,
            "user_id": user_id,
            "actor_type": actor_type,
            "request_id": request_id,
            "from": from_,
            "to": to,
            "limit": limit,
            "cursor": cursor,
        }
        return self._client._list("/audit/logs", AuditEntry, clean(params))


class Tokens(_Resource):
    def create(
        self,
        *,
        api_key_id: str | None = None,
        scopes: Sequence[str] | None = None,
        ttl_seconds: int | None = None,
        user_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Token:
        """A short-lived token for a browser or another less trusted caller. With `user_id` (and
        `scopes=["read"]`) the token is user-bound: it reads only that user, its orders, top-ups,
        withdrawals, disputes and events; every other read answers 403, another user's data 404."""
        body = {
            "api_key_id": api_key_id,
            "scopes": [*scopes] if scopes is not None else None,
            "ttl_seconds": ttl_seconds,
            "user_id": user_id,
        }
        return self._client._post("/auth/token", Token, body, idempotency_key)


class ApiKeys(_Resource):
    """`/auth/api-keys` (master key)."""

    def create(self, *, name: str, scopes: Sequence[str], idempotency_key: str | None = None) -> ApiKey:
        return self._client._post("/auth/api-keys", ApiKey, {"name": name, "scopes": [*scopes]}, idempotency_key)

    def list(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[ApiKey]:
        params = clean({"status": status, "limit": limit, "cursor": cursor})
        return self._client._list("/auth/api-keys", ApiKey, params)

    def revoke(self, key_id: str, *, idempotency_key: str | None = None) -> ApiKey:
        return self._client._delete(f"/auth/api-keys/{_p(key_id)}", ApiKey, idempotency_key)


class Maintenance(_Resource):
    """`/admin/maintenance/*` (master key)."""

    def status(self) -> MaintenanceStatus:
        return self._client._get("/admin/maintenance/status", MaintenanceStatus)

    def enable(
        self,
        *,
        message: str | None = None,
        retry_after_seconds: int | None = None,
        idempotency_key: str | None = None,
    ) -> MaintenanceStatus:
        body = {"message": message, "retry_after_seconds": retry_after_seconds}
        return self._client._post("/admin/maintenance/enable", MaintenanceStatus, body, idempotency_key)

    def disable(self, *, idempotency_key: str | None = None) -> MaintenanceStatus:
        return self._client._post("/admin/maintenance/disable", MaintenanceStatus, None, idempotency_key)


class Reconciliation(_Resource):
    """`/admin/reconciliation/*` (master key)."""

    def run(self, *, idempotency_key: str | None = None) -> ReconciliationRun:
        return self._client._post("/admin/reconciliation/run", ReconciliationRun, None, idempotency_key)

    def list_runs(self, *, limit: int | None = None, cursor: str | None = None) -> Page[ReconciliationRun]:
        params = clean({"limit": limit, "cursor": cursor})
        return self._client._list("/admin/reconciliation/runs", ReconciliationRun, params)

    def retrieve_run(self, run_id: int | str) -> ReconciliationRun:
        return self._client._get(f"/admin/reconciliation/runs/{_p(str(run_id))}", ReconciliationRun)
