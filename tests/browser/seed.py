"""Data for browser tests, made over HTTP without a browser (much faster than clicking through forms):
users, deposits paid or left awaiting an ATM code through the sandbox, withdrawals.

The ECPay side goes through the sandbox exactly as a browser would (the checkout form the API hands
out is posted to the sandbox's AioCheckOut/V5), then the sandbox's control API plays the shopper.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from ecpay_lambda.local.sandbox.client import SandboxClient

TIMEOUT = 30.0  # seconds per request: a bound, never asserted on


@dataclass
class Seeder:
    """The wallet API of one local stack, plus its sandbox."""

    base_url: str

    @property
    def sandbox(self) -> SandboxClient:
        """The stack's ECPay sandbox."""
        return SandboxClient(self.base_url)

    def call(self, method: str, path: str, payload: Any = None, **headers: str) -> tuple[int, Any]:
        """One JSON request; returns (status, decoded body)."""
        body = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.base_url + path,
            data=body,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json", **headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return int(response.status), json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return int(exc.code), json.loads(exc.read() or b"null")

    def user(self, prefix: str = "seed") -> dict[str, Any]:
        """A new user."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        status, user = self.call("POST", "/users", {"username": name, "email": f"{name}@example.com"})
        assert status == 201, user
        return dict(user)

    def transaction(self, user_id: str, transaction_type: str, amount: int, method: str | None = None) -> str:
        """A new deposit or withdrawal; returns its id."""
        payload: dict[str, Any] = {"transaction_type": transaction_type, "amount": amount}
        if method:
            payload["payment_method"] = method
        status, tx = self.call("POST", f"/users/{user_id}/transactions", payload)
        assert status == 201, tx
        return str(tx["transaction_id"])

    def checkout(self, user_id: str, transaction_id: str, method: str) -> str:
        """Open the sandbox's payment page for a deposit, as the browser does; returns the MerchantTradeNo."""
        status, form = self.call(
            "POST",
            f"/users/{user_id}/transactions/{transaction_id}/requestPayment",
            {"payment_method": method},
        )
        assert status == 200, form
        page_status, page = self.sandbox.checkout(form["fields"])
        assert page_status == 200 and 'data-status="created"' in page, page[:500]
        return str(form["fields"]["MerchantTradeNo"])

    def paid_deposit(self, user_id: str, amount: int, method: str = "Credit") -> str:
        """A deposit paid on the sandbox (its ReturnURL notification delivered); returns its id."""
        transaction_id = self.transaction(user_id, "deposit", amount, method)
        self.sandbox.pay(self.checkout(user_id, transaction_id, method))
        status, tx = self.call("GET", f"/users/{user_id}/transactions/{transaction_id}")
        assert status == 200 and tx["status"] == "paid", tx
        return transaction_id

    def awaiting_code(self, user_id: str, amount: int, method: str = "ATM") -> tuple[str, str]:
        """A deposit whose ATM/CVS code was issued and is not paid yet; returns (id, MerchantTradeNo)."""
        transaction_id = self.transaction(user_id, "deposit", amount, method)
        merchant_trade_no = self.checkout(user_id, transaction_id, method)
        self.sandbox.issue_code(merchant_trade_no)
        status, tx = self.call("GET", f"/users/{user_id}/transactions/{transaction_id}")
        assert status == 200 and tx["status"] == "awaiting_offline_payment", tx
        return transaction_id, merchant_trade_no
