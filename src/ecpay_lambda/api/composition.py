"""Composition root: settings -> store adapter -> ECPay client -> WalletService, once per cold start.

Lean on purpose (no pydantic, no Powertools event handler, no SQLAlchemy at import): the ECPay
notification function builds its service here too. ``open_store`` imports the adapter the URL names.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Mapping

from ..config import Settings, load_settings
from ..ecpay.client import EcpayClient
from ..ecpay.credentials import MerchantCredentials
from ..ecpay.environments import Endpoints
from ..ecpay.errors import TransportError
from ..ecpay.transport import HttpResponse, Transport, UrllibTransport
from ..wallet.port import WalletStore
from ..wallet.service import EcpayConfig, WalletService


class EcpayDisabledTransport:
    """The transport of a function configured without ECPay credentials: every call fails loudly."""

    def post_form(self, url: str, fields: Mapping[str, str], *, timeout: float) -> HttpResponse:
        """Refuse: this function has no ECPay access (ECPAY_CREDENTIALS=none)."""
        raise TransportError("ECPay is not configured for this function")


def _ecpay_config(settings: Settings, transport: Transport | None) -> EcpayConfig:
    if settings.credentials is None:
        # Unguessable throwaway keys: even a mis-routed notification can never verify here.
        credentials = MerchantCredentials("disabled", secrets.token_hex(16), secrets.token_hex(16))
        client = EcpayClient(
            credentials, Endpoints("https://ecpay.invalid"), transport=EcpayDisabledTransport()
        )
        return EcpayConfig(credentials=credentials, client=client, cross_check_paid=True)
    endpoints = Endpoints.for_environment(settings.ecpay_env, settings.ecpay_base_url)
    client = EcpayClient(settings.credentials, endpoints, transport=transport or UrllibTransport())
    return EcpayConfig(credentials=settings.credentials, client=client, cross_check_paid=settings.cross_check)


def build_store(settings: Settings) -> WalletStore:
    """Open the store ``STORE_URL`` names and make sure its schema exists."""
    # Imported here: the adapter (and its driver) is loaded only by the functions that open a store.
    from ..store import open_store  # noqa: PLC0415

    store = open_store(settings.store_url)
    store.ensure_schema()
    return store


def build_service(
    settings: Settings, *, transport: Transport | None = None, store: WalletStore | None = None
) -> WalletService:
    """Wire a WalletService from ``settings`` (``transport``/``store`` override for tests and the sandbox)."""
    return WalletService(store or build_store(settings), _ecpay_config(settings, transport))


_override: WalletService | None = None


@functools.cache
def _built_service() -> WalletService:
    return build_service(load_settings())


def get_service() -> WalletService:
    """The process's WalletService, built once per cold start from ``load_settings()``."""
    return _override if _override is not None else _built_service()


def set_service(service: WalletService | None) -> None:
    """Serve ``service`` instead of the one built from settings (tests, or a host with its own wiring)."""
    global _override  # noqa: PLW0603 - the composition root is the one place that holds it
    _override = service


def reset() -> None:
    """Forget the cached settings and service (tests; the local server after changing variables)."""
    global _override  # noqa: PLW0603
    _override = None
    _built_service.cache_clear()
    load_settings.cache_clear()
