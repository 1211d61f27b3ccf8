"""The offline ECPay sandbox: a stand-in for payment-stage.ecpay.com.tw that runs on a laptop.

It may use ``ecpay_lambda.ecpay`` (signing, time formats) and nothing of the wallet or store.
"""

from .app import SandboxApp
from .engine import ActionError, Sandbox, SandboxSettings
from .trades import CallbackAttempt, Trade, TradeBook, TradeStatus
from .transport import SandboxTransport

__all__ = [
    "ActionError",
    "CallbackAttempt",
    "Sandbox",
    "SandboxApp",
    "SandboxSettings",
    "SandboxTransport",
    "Trade",
    "TradeBook",
    "TradeStatus",
]
