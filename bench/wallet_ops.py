"""The wallet operations the benchmarks time and count, driven in process.

Two ways in: the ``WalletService`` (round trips) and the Lambda handlers themselves, with the API
Gateway v2 events that local mode builds from ``template.yaml`` (latency).
"""

from __future__ import annotations

import base64
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ecpay_lambda.ecpay.checkmac import check_mac_value
from ecpay_lambda.ecpay.credentials import MerchantCredentials

from .common import TEMPLATE

STAGE = MerchantCredentials.stage_test_merchant()
BASE = "http://127.0.0.1:9"  # no request ever goes there: the sandbox is not queried (no cross-check)
_counter = itertools.count()


def settings_env(store_url: str) -> dict[str, str]:
    """The variables the handlers read, for ``store_url`` (sandbox mode, no API token)."""
    return {
        "STORE_URL": store_url,
        "ECPAY_ENV": "sandbox",
        "ECPAY_BASE_URL": BASE,
        "PUBLIC_BASE_URL": BASE,
        "POWERTOOLS_SERVICE_NAME": "ecpay-lambda",
    }


def paid_body(merchant_trade_no: str, amount: int, rtn_msg: str = "交易成功") -> bytes:
    """A signed ReturnURL "paid" body."""
    fields = {
        "CustomField1": "", "CustomField2": "", "CustomField3": "", "CustomField4": "",
        "MerchantID": STAGE.merchant_id, "MerchantTradeNo": merchant_trade_no,
        "PaymentDate": "2026/01/01 12:00:00", "PaymentType": "Credit_CreditCard",
        "PaymentTypeChargeFee": "0", "RtnCode": "1", "RtnMsg": rtn_msg, "SimulatePaid": "0",
        "StoreID": "", "TradeAmt": str(amount), "TradeDate": "2026/01/01 11:59:00",
        "TradeNo": f"2601011200{next(_counter):010d}",
    }  # fmt: skip
    fields["CheckMacValue"] = check_mac_value(fields, STAGE.hash_key, STAGE.hash_iv)
    return urlencode(fields).encode("utf-8")


@dataclass
class Wallet:
    """A WalletService on one store, with shortcuts for the benchmarks."""

    service: Any  # WalletService

    @classmethod
    def open(cls, store_url: str) -> Wallet:
        """Build the service as the composition root does (schema created)."""
        from ecpay_lambda.api.composition import build_service  # noqa: PLC0415
        from ecpay_lambda.config import parse_settings  # noqa: PLC0415

        return cls(build_service(parse_settings(settings_env(store_url))))

    def user(self) -> str:
        """A new user."""
        return str(self.service.create_user(f"b{next(_counter)}x{os.getpid()}", "bench@example.com").user_id)

    def deposit(self, user_id: str, amount: int = 100) -> str:
        """A new pending deposit."""
        from ecpay_lambda.wallet.models import TransactionType  # noqa: PLC0415

        txn, _ = self.service.create_transaction(user_id, TransactionType.DEPOSIT, amount)
        return str(txn.transaction_id)

    def checkout(self, user_id: str, transaction_id: str) -> str:
        """Start checkout; returns the MerchantTradeNo."""
        from ecpay_lambda.wallet.service import CheckoutUrls  # noqa: PLC0415

        base = f"{BASE}/users/{user_id}/transactions/{transaction_id}"
        form = self.service.checkout(
            user_id,
            transaction_id,
            CheckoutUrls(
                f"{base}/return", f"{base}/paymentInfo", f"{base}/clientReturn", f"{base}/clientReturn"
            ),
        )
        return str(form.fields["MerchantTradeNo"])

    def awaiting(self, user_id: str, amount: int = 100) -> tuple[str, str]:
        """A deposit awaiting payment: (transaction id, MerchantTradeNo)."""
        transaction_id = self.deposit(user_id, amount)
        return transaction_id, self.checkout(user_id, transaction_id)

    def notify(self, transaction_id: str, body: bytes, user_id: str | None = None) -> str:
        """Apply a ReturnURL body (posted to the user's ReturnURL when ``user_id``); the reply line."""
        reply = self.service.handle_return(body, route_transaction_id=transaction_id, route_user_id=user_id)
        return str(reply.body)

    def withdraw(self, user_id: str, amount: int) -> str:
        """Create a withdrawal; returns its id."""
        from ecpay_lambda.wallet.models import TransactionType  # noqa: PLC0415

        txn, _ = self.service.create_transaction(user_id, TransactionType.WITHDRAW, amount)
        return str(txn.transaction_id)


# --- Lambda events -------------------------------------------------------------------------------


class Events:
    """API Gateway v2 events for the template's routes, built exactly as local mode builds them."""

    def __init__(self) -> None:
        from ecpay_lambda.local.template_routes import RouteTable  # noqa: PLC0415

        self.routes = RouteTable.from_file(TEMPLATE)

    def event(
        self, method: str, path: str, body: bytes = b"", content_type: str = "application/json"
    ) -> dict[str, Any]:
        """The event for one request."""
        from ecpay_lambda.local.events import build_event  # noqa: PLC0415
        from ecpay_lambda.local.http import Request  # noqa: PLC0415

        match = self.routes.match(method, path)
        if match is None:
            raise ValueError(f"no route for {method} {path}")
        headers = (
            ("Host", "127.0.0.1:9"),
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
        )
        request = Request(
            method=method, raw_path=path, raw_query="", headers=headers, body=body, server_port=9
        )
        return build_event(request, match)

    def handler(self, method: str, path: str) -> Callable[[dict[str, Any], Any], Any]:
        """The handler function the template maps the route to."""
        from ecpay_lambda.local.gateway import import_handler  # noqa: PLC0415

        match = self.routes.match(method, path)
        if match is None:
            raise ValueError(f"no route for {method} {path}")
        return import_handler(match.route)

    @staticmethod
    def decoded(event: dict[str, Any]) -> bytes:
        """The event's body as bytes (for checks)."""
        body = event.get("body") or ""
        return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()


def context() -> Any:
    """A Lambda context object, as local mode gives the handlers (512 MB, the template's size)."""
    from ecpay_lambda.local.events import LambdaContext  # noqa: PLC0415

    return LambdaContext("bench", 512, 900)
