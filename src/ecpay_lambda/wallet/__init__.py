"""The points wallet: its domain rules, use cases and the storage port they need (design §2, §4).

The public surface is importable from here (``from ecpay_lambda.wallet import WalletService``), loaded
on first use (PEP 562): a Lambda importing one module of the package (the notification function
imports ``wallet.notifications`` alone) pays for nothing else. Where each name lives:

- ``service``: ``WalletService`` (every use case, composed), ``CheckoutUrls``, ``TransactionDetail``
- ``decisions``: the pure decisions of user and operator actions (``decide_*``), ``WithdrawAction``
- ``outcomes``: what ECPay says (``EcpayOutcome``, ``OutcomeKind``), its pure ``decide`` and
  ``apply_outcome``
- ``notifications``: ECPay's ReturnURL / PaymentInfoURL into the wallet (``CallbackHandler``)
- ``port``: the storage port (``WalletStore``, ``Reads``, ``Snapshot``, ``Decision``, ``AtomicWrite``
  and its conflicts), ``retry``: ``retry_on_conflict``, ``ledger``: ``ledger_entry``
- ``models`` and ``errors``: the records and the domain errors
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .decisions import WithdrawAction
    from .errors import WalletError
    from .ledger import ledger_entry
    from .models import LedgerEntry, NotificationRecord, Page, Transaction, User
    from .notifications import CallbackHandler, CallbackReply, EcpayConfig
    from .outcomes import EcpayOutcome, OutcomeKind, OutcomeResult, apply_outcome, decide
    from .port import (
        AtomicWrite,
        Decision,
        InvalidCursor,
        Reads,
        Snapshot,
        StoreConflict,
        TransactionPut,
        UserDelta,
        VersionConflict,
        WalletStore,
    )
    from .retry import retry_on_conflict
    from .service import CheckoutUrls, TransactionDetail, WalletService

__all__ = [
    "AtomicWrite",
    "CallbackHandler",
    "CallbackReply",
    "CheckoutUrls",
    "Decision",
    "EcpayConfig",
    "EcpayOutcome",
    "InvalidCursor",
    "LedgerEntry",
    "NotificationRecord",
    "OutcomeKind",
    "OutcomeResult",
    "Page",
    "Reads",
    "Snapshot",
    "StoreConflict",
    "Transaction",
    "TransactionDetail",
    "TransactionPut",
    "User",
    "UserDelta",
    "VersionConflict",
    "WalletError",
    "WalletService",
    "WalletStore",
    "WithdrawAction",
    "apply_outcome",
    "decide",
    "ledger_entry",
    "retry_on_conflict",
]

_HOME = {
    **dict.fromkeys(("CheckoutUrls", "TransactionDetail", "WalletService"), "service"),
    "WithdrawAction": "decisions",
    "WalletError": "errors",
    "ledger_entry": "ledger",
    **dict.fromkeys(("LedgerEntry", "NotificationRecord", "Page", "Transaction", "User"), "models"),
    **dict.fromkeys(("CallbackHandler", "CallbackReply", "EcpayConfig"), "notifications"),
    **dict.fromkeys(("EcpayOutcome", "OutcomeKind", "OutcomeResult", "apply_outcome", "decide"), "outcomes"),
    **dict.fromkeys(
        (
            "AtomicWrite",
            "Decision",
            "InvalidCursor",
            "Reads",
            "Snapshot",
            "StoreConflict",
            "TransactionPut",
            "UserDelta",
            "VersionConflict",
            "WalletStore",
        ),
        "port",
    ),
    "retry_on_conflict": "retry",
}


def __getattr__(name: str) -> object:
    """Load a public name's module (that one only) on first use."""
    # Static imports, one per module: the layer test reads them, and nothing else is loaded.
    # ruff: noqa: PLC0415 - lazy on purpose, see the module docstring
    home = _HOME.get(name)
    module: object
    if home == "service":
        from . import service as module
    elif home == "decisions":
        from . import decisions as module
    elif home == "errors":
        from . import errors as module
    elif home == "ledger":
        from . import ledger as module
    elif home == "models":
        from . import models as module
    elif home == "notifications":
        from . import notifications as module
    elif home == "outcomes":
        from . import outcomes as module
    elif home == "port":
        from . import port as module
    elif home == "retry":
        from . import retry as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)
