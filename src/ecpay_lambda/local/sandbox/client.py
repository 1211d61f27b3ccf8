"""A small HTTP client for the sandbox: post a checkout like a browser, drive trades, read callbacks.

Used by the ``ecpay_sandbox`` pytest fixture and handy in scripts. Standard library only.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from ...ecpay.checkmac import check_mac_value
from ...ecpay.credentials import MerchantCredentials
from ...ecpay.environments import Endpoints


class SandboxError(RuntimeError):
    """The sandbox refused a control request; ``status`` and ``code`` say why."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class SandboxClient:
    """Talks to a running sandbox (alone or inside the local stack) over HTTP."""

    def __init__(
        self, base_url: str, credentials: MerchantCredentials | None = None, *, timeout: float = 15.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials or MerchantCredentials.stage_test_merchant()
        self.endpoints = Endpoints(self.base_url)
        self.timeout = timeout

    # --- raw HTTP -------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: bytes | None, content_type: str) -> tuple[int, bytes]:
        request = urllib.request.Request(  # noqa: S310 - the caller's sandbox URL
            self.base_url + path, data=body, method=method, headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())

    def _json(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> Any:
        body = json.dumps(payload or {}).encode() if method == "POST" else None
        status, raw = self._request(method, path, body, "application/json")
        data = json.loads(raw) if raw else {}
        if status >= 400:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            raise SandboxError(status, str(error.get("code", "error")), str(error.get("message", raw[:200])))
        return data

    # --- ECPay side -----------------------------------------------------------------------------

    def sign(self, fields: Mapping[str, str]) -> dict[str, str]:
        """``fields`` with a CheckMacValue from this client's merchant credentials."""
        signed = {k: v for k, v in fields.items() if k != "CheckMacValue"}
        signed["CheckMacValue"] = check_mac_value(signed, self.credentials.hash_key, self.credentials.hash_iv)
        return signed

    def post_form(self, url_or_path: str, fields: Mapping[str, str]) -> tuple[int, str]:
        """POST a form as a browser would; returns (status, body text)."""
        path = url_or_path[len(self.base_url) :] if url_or_path.startswith(self.base_url) else url_or_path
        status, raw = self._request(
            "POST", path, urlencode(fields).encode("utf-8"), "application/x-www-form-urlencoded"
        )
        return status, raw.decode("utf-8", errors="replace")

    def checkout(self, fields: Mapping[str, str]) -> tuple[int, str]:
        """Submit an AioCheckOut/V5 form (already signed) as the shopper's browser; returns the page."""
        return self.post_form("/Cashier/AioCheckOut/V5", fields)

    # --- control API ----------------------------------------------------------------------------

    def trade(self, merchant_trade_no: str) -> dict[str, Any]:
        """The trade with every callback attempt."""
        return dict(self._json("GET", f"/sandbox/api/trades/{quote(merchant_trade_no)}"))

    def trades(self) -> list[dict[str, Any]]:
        """Every trade, newest first."""
        return list(self._json("GET", "/sandbox/api/trades")["trades"])

    def _action(self, merchant_trade_no: str, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        options = {k: v for k, v in payload.items() if v is not None}
        return dict(self._json("POST", f"/sandbox/api/trades/{quote(merchant_trade_no)}/{action}", options))

    def pay(self, merchant_trade_no: str, method: str | None = None) -> dict[str, Any]:
        """The shopper pays (ReturnURL's first delivery has happened when this returns)."""
        return self._action(merchant_trade_no, "pay", {"method": method})

    def fail(
        self, merchant_trade_no: str, rtn_code: str | None = None, rtn_msg: str | None = None
    ) -> dict[str, Any]:
        """The payment fails (ReturnURL with a failure RtnCode)."""
        return self._action(merchant_trade_no, "fail", {"rtn_code": rtn_code, "rtn_msg": rtn_msg})

    def charge_period(self, merchant_trade_no: str, *, fail: bool = False) -> dict[str, Any]:
        """A periodic order's next charge now (PeriodReturnURL's first delivery has happened)."""
        return self._action(merchant_trade_no, "charge-period", {"fail": fail})

    def issue_code(self, merchant_trade_no: str, method: str | None = None) -> dict[str, Any]:
        """ATM/CVS/BARCODE code issued (PaymentInfoURL)."""
        return self._action(merchant_trade_no, "issue-code", {"method": method})

    def simulate_paid(self, merchant_trade_no: str) -> dict[str, Any]:
        """ReturnURL with SimulatePaid=1 (the trade stays unpaid)."""
        return self._action(merchant_trade_no, "simulate-paid", {})

    def expire(self, merchant_trade_no: str) -> dict[str, Any]:
        """The code or the page expires (no notification)."""
        return self._action(merchant_trade_no, "expire", {})

    def resend(self, merchant_trade_no: str, kind: str = "return") -> dict[str, Any]:
        """Deliver the last notification again, as a re-delivery."""
        return self._action(merchant_trade_no, "resend", {"kind": kind})

    def close_trade(self, merchant_trade_no: str, state: str | None = None) -> dict[str, Any]:
        """Move a paid card trade forward now: ``to_be_closed`` (要關帳) or ``closed`` (已關帳, default)."""
        return self._action(merchant_trade_no, "close", {"state": state})

    def callbacks(self, merchant_trade_no: str, kind: str | None = None) -> list[dict[str, Any]]:
        """Every callback attempt of a trade (optionally of one kind: return, payment_info)."""
        attempts = self.trade(merchant_trade_no)["callbacks"]
        return [a for a in attempts if kind is None or a["kind"] == kind]

    def wait_for_callbacks(
        self, merchant_trade_no: str, count: int, *, kind: str | None = None, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Poll (bounded by ``timeout``) until at least ``count`` attempts are recorded; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            attempts = self.callbacks(merchant_trade_no, kind)
            if len(attempts) >= count or time.monotonic() >= deadline:
                return attempts
            time.sleep(0.02)

    def settings(self, **changes: Any) -> dict[str, Any]:
        """Read the settings, or change some (drop_callbacks, retry_delays, max_deliveries, ...)."""
        if changes:
            return dict(self._json("POST", "/sandbox/api/settings", changes))
        return dict(self._json("GET", "/sandbox/api/settings"))

    def reset(self) -> None:
        """Forget every trade."""
        self._json("POST", "/sandbox/api/reset")
