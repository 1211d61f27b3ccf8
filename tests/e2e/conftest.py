"""End-to-end helpers: a tiny HTTP client for the local stack and the browser's path through the sandbox."""

from __future__ import annotations

import html
import json
import re
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest

TIMEOUT = 30.0  # seconds per request: a bound, never asserted on


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Reply:
    """One HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


class Http:
    """Requests to the stack, redirects not followed (a browser's 303 is checked, then followed by hand)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._opener = urllib.request.build_opener(_NoRedirect())

    def request(
        self, method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        """Send one request (``url`` absolute or a path)."""
        target = url if url.startswith("http") else self.base_url + url
        request = urllib.request.Request(target, data=body, method=method, headers=headers or {})
        try:
            with self._opener.open(request, timeout=TIMEOUT) as response:
                return Reply(
                    response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
                )
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())

    def json(self, method: str, path: str, payload: Any = None, **headers: str) -> Reply:
        """A JSON request."""
        body = None if payload is None else json.dumps(payload).encode()
        return self.request(method, path, body=body, headers={"Content-Type": "application/json", **headers})

    def form(self, url: str, fields: dict[str, str]) -> Reply:
        """A form POST, as a browser submits one."""
        return self.request(
            "POST",
            url,
            body=urlencode(fields).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )


def autopost_form(page: str) -> tuple[str, dict[str, str]]:
    """The (action, fields) of the sandbox's auto-submitting form (the browser going back to the shop)."""
    match = re.search(r'<form id="autopost" method="post" action="([^"]*)">(.*?)</form>', page, re.S)
    assert match, page[:1000]
    fields = {
        html.unescape(n): html.unescape(v)
        for n, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', match.group(2))
    }
    return html.unescape(match.group(1)), fields


class Wallet:
    """The wallet API plus the shopper's browser, over real HTTP."""

    def __init__(self, http: Http) -> None:
        self.http = http

    def create_user(self) -> str:
        """A new user; returns its id."""
        tag = uuid.uuid4().hex[:10]
        reply = self.http.json("POST", "/users", {"username": f"e2e-{tag}", "email": f"{tag}@example.com"})
        assert reply.status == 201, reply.text
        return str(reply.json()["user_id"])

    def user(self, user_id: str) -> dict[str, Any]:
        """GET one user."""
        reply = self.http.json("GET", f"/users/{user_id}")
        assert reply.status == 200, reply.text
        return dict(reply.json())

    def create(
        self, user_id: str, transaction_type: str, amount: int, method: str | None = None
    ) -> dict[str, Any]:
        """POST a deposit or withdraw."""
        payload: dict[str, Any] = {"transaction_type": transaction_type, "amount": amount}
        if method:
            payload["payment_method"] = method
        reply = self.http.json("POST", f"/users/{user_id}/transactions", payload)
        assert reply.status == 201, reply.text
        return dict(reply.json())

    def transaction(self, user_id: str, transaction_id: str) -> dict[str, Any]:
        """GET one transaction with its ledger and notifications."""
        reply = self.http.json("GET", f"/users/{user_id}/transactions/{transaction_id}")
        assert reply.status == 200, reply.text
        return dict(reply.json())

    def checkout(
        self, user_id: str, transaction_id: str, method: str | None = None
    ) -> tuple[str, dict[str, str]]:
        """requestPayment as JSON: the (action, fields) the browser posts to ECPay."""
        payload = {"payment_method": method} if method else {}
        reply = self.http.json(
            "POST",
            f"/users/{user_id}/transactions/{transaction_id}/requestPayment",
            payload,
            Accept="application/json",
        )
        assert reply.status == 200, reply.text
        data = reply.json()
        return str(data["action"]), dict(data["fields"])

    def open_payment_page(
        self, user_id: str, transaction_id: str, method: str | None = None
    ) -> tuple[str, str]:
        """Check out and submit the form to the sandbox like a browser; returns (MerchantTradeNo, page)."""
        action, fields = self.checkout(user_id, transaction_id, method)
        assert action == f"{self.http.base_url}/Cashier/AioCheckOut/V5"
        page = self.http.form(action, fields)
        assert page.status == 200 and 'data-status="created"' in page.text, page.text[:1500]
        return fields["MerchantTradeNo"], page.text

    def page_action(self, merchant_trade_no: str, action: str, **extra: str) -> Reply:
        """Press a button on the sandbox's payment page."""
        return self.http.form(f"/sandbox/checkout/{merchant_trade_no}", {"action": action, **extra})

    def back_to_shop(self, page: str) -> Reply:
        """Follow the sandbox's auto-post back to the shop (OrderResultURL -> clientReturn)."""
        url, fields = autopost_form(page)
        return self.http.form(url, fields)


@pytest.fixture
def http(local_stack: str) -> Http:
    """HTTP access to the local stack."""
    return Http(local_stack)


@pytest.fixture
def wallet(http: Http) -> Wallet:
    """The wallet API and the shopper's browser."""
    return Wallet(http)
