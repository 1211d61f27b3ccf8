"""Wiring of the e-invoice side (issue 13): the e-invoice client and the invoice job from settings.

Kept out of ``composition`` on purpose: it imports the e-invoice library (and ``cryptography``), which
the ECPay notification function must never load (tests/unit/api/test_lean_imports.py). The
management function, the scheduled function, the local worker and the CLI import it.
"""

from __future__ import annotations

from ..config import Settings, load_settings
from ..ecpay.einvoice import InvoiceClient, InvoiceCredentials
from ..wallet.invoices import InvoiceService
from ..wallet.port import WalletStore
from .composition import get_service, wallet_clock


def invoice_client(settings: Settings) -> InvoiceClient | None:
    """The e-invoice client of ``settings`` (None when invoicing is off).

    Its requests carry the real time (ECPay's 10-minute Timestamp window; the offline sandbox checks it
    against the real clock too), never local mode's movable business clock, which the job uses.
    """
    inv = settings.invoicing
    if inv is None:
        return None
    credentials = InvoiceCredentials(inv.merchant_id, inv.hash_key, inv.hash_iv)
    return InvoiceClient(credentials, base_url=inv.base_url, timeout=settings.ecpay_timeout)


def invoice_service(settings: Settings, store: WalletStore) -> InvoiceService | None:
    """The invoice job over ``store`` (None when invoicing is off)."""
    client = invoice_client(settings)
    if client is None or settings.invoicing is None:
        return None
    return InvoiceService(store, client, clock=wallet_clock, relate_prefix=settings.invoicing.relate_prefix)


_cache: list[tuple[Settings, InvoiceClient | None]] = []


def _cached_client() -> InvoiceClient | None:
    # Keyed by the settings object: composition.reset() (tests, the local server) makes a new one.
    settings = load_settings()
    if not _cache or _cache[0][0] is not settings:
        _cache[:] = [(settings, invoice_client(settings))]
    return _cache[0][1]


def get_invoice_client() -> InvoiceClient | None:
    """The process's e-invoice client (None when invoicing is off), built once."""
    return _cached_client()


def get_invoice_service() -> InvoiceService | None:
    """The invoice job over the process's store (None when invoicing is off)."""
    settings = load_settings()
    client = _cached_client()
    if client is None or settings.invoicing is None:
        return None
    return InvoiceService(
        get_service().store, client, clock=wallet_clock, relate_prefix=settings.invoicing.relate_prefix
    )


def reset() -> None:
    """Forget the cached client (tests; after settings change)."""
    _cache.clear()
