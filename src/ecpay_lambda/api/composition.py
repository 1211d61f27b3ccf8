"""Composition root: settings -> store adapter -> ECPay client -> wallet, once per cold start.

Lean (the cold-start rule, docs/performance.md): the ECPay notification function builds its
:class:`CallbackHandler` here too, so this module does not import ``wallet.service`` (the use cases)
until a WalletService is asked for, and ``open_store`` imports only the adapter the URL names. The
callback handler and the service share one store and one ECPay client.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..config import ConfigError, Settings, load_settings
from ..ecpay.client import EcpayClient
from ..ecpay.credentials import MerchantCredentials
from ..ecpay.environments import Endpoints
from ..ecpay.errors import TransportError
from ..ecpay.transport import HttpResponse, Transport, UrllibTransport
from ..wallet.notifications import CallbackHandler, EcpayConfig
from ..wallet.port import WalletStore

if TYPE_CHECKING:
    from ..wallet.service import WalletService


class EcpayDisabledTransport:
    """The transport of a function configured without ECPay credentials: every call fails loudly."""

    def post_form(self, url: str, fields: Mapping[str, str], *, timeout: float) -> HttpResponse:
        """Refuse: this function has no ECPay access (ECPAY_CREDENTIALS=none)."""
        raise TransportError("ECPay is not configured for this function")


def ecpay_config(settings: Settings, transport: Transport | None = None) -> EcpayConfig:
    """The wallet's ECPay configuration (credentials, client, cross-check) from ``settings``."""
    if settings.credentials is None:
        # Unguessable throwaway keys: even a mis-routed notification can never verify here.
        credentials = MerchantCredentials("disabled", secrets.token_hex(16), secrets.token_hex(16))
        client = EcpayClient(
            credentials, Endpoints("https://ecpay.invalid"), transport=EcpayDisabledTransport()
        )
        return EcpayConfig(credentials=credentials, client=client, cross_check_paid=True)
    endpoints = Endpoints.for_environment(settings.ecpay_env, settings.ecpay_base_url)
    transport = transport or UrllibTransport()
    client = EcpayClient(settings.credentials, endpoints, transport=transport, timeout=settings.ecpay_timeout)
    # The notification must be answered within ECPay's 5 s: its cross-check gets a shorter timeout.
    cross_check_client = EcpayClient(
        settings.credentials,
        endpoints,
        transport=transport,
        timeout=min(settings.cross_check_timeout, settings.ecpay_timeout),
    )
    return EcpayConfig(
        credentials=settings.credentials,
        client=client,
        cross_check_paid=settings.cross_check,
        credit_check_code=settings.credit_check_code,
        cross_check_client=cross_check_client,
    )


def build_store(settings: Settings) -> WalletStore:
    """Open the store ``STORE_URL`` names and make sure its schema exists."""
    # Imported here: the adapter (and its driver) is loaded only by the functions that open a store.
    from ..store import StoreNotReady, open_store  # noqa: PLC0415

    store = open_store(settings.store_url)
    try:
        store.ensure_schema()
    except StoreNotReady as exc:
        # A missing table is a deployment fault: 503 for the API, 0|Unavailable for ECPay, exit 2 for the CLI.
        raise ConfigError(str(exc)) from exc
    if settings.events_outbox:
        # Local mode: the events the Pipe publishes on AWS, from each commit (store/outbox.py).
        from pathlib import Path  # noqa: PLC0415

        from ..store.outbox import OutboxStore  # noqa: PLC0415

        return OutboxStore(store, Path(settings.events_outbox))
    return store


def build_service(
    settings: Settings,
    *,
    transport: Transport | None = None,
    store: WalletStore | None = None,
    clock: Callable[[], datetime] | None = None,
) -> WalletService:
    """Wire a WalletService from ``settings`` (the clock defaults to the process's, see ``set_clock``)."""
    # Deferred: the notification function never needs the use cases.
    from ..wallet.service import WalletService  # noqa: PLC0415

    return WalletService(
        store or build_store(settings),
        ecpay_config(settings, transport),
        clock=clock or wallet_clock,
        amount_limits=settings.amount_limits,
        invoicing=settings.invoicing is not None,
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


_override: WalletService | None = None
# The wallet's clock: aware UTC now, unless the host shares another (local mode: the sandbox's clock,
# so a test or a person moving the sandbox's simulated time moves the wallet's with it).
_clock: Callable[[], datetime] = _utc_now


def wallet_clock() -> datetime:
    """Now, by the clock the wallet uses in this process."""
    return _clock()


def set_clock(clock: Callable[[], datetime] | None) -> None:
    """Make the wallet of this process use ``clock`` (None: the real time). Before the first request."""
    global _clock  # noqa: PLW0603 - the composition root is the one place that holds it
    _clock = clock or _utc_now
    _built_callbacks.cache_clear()
    _built_service.cache_clear()


@functools.cache
def _wiring() -> tuple[WalletStore, EcpayConfig]:
    # One store and one ECPay client per process, whichever of the two entry points asks first.
    settings = load_settings()
    return build_store(settings), ecpay_config(settings)


@functools.cache
def _built_service() -> WalletService:
    from ..wallet.service import WalletService  # noqa: PLC0415 - deferred, see build_service

    settings = load_settings()
    return WalletService(
        *_wiring(),
        clock=_clock,
        amount_limits=settings.amount_limits,
        invoicing=settings.invoicing is not None,
    )


@functools.cache
def _built_callbacks() -> CallbackHandler:
    store, ecpay = _wiring()
    # The same clock as the service's.
    return CallbackHandler.for_config(store, ecpay, _clock)


def get_service() -> WalletService:
    """The process's WalletService, built once per cold start from ``load_settings()``."""
    return _override if _override is not None else _built_service()


def get_callbacks() -> CallbackHandler:
    """The process's ECPay notification handler (the overriding service's, when one is set)."""
    return _override.callbacks() if _override is not None else _built_callbacks()


def set_service(service: WalletService | None) -> None:
    """Serve ``service`` instead of the one built from settings (tests, or a host with its own wiring)."""
    global _override  # noqa: PLW0603 - the composition root is the one place that holds it
    _override = service


def reset() -> None:
    """Forget the cached settings, store and service (tests; the local server after changing variables)."""
    global _override  # noqa: PLW0603
    _override = None
    _built_callbacks.cache_clear()
    _built_service.cache_clear()
    _wiring.cache_clear()
    load_settings.cache_clear()
