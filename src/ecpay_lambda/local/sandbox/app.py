"""HTTP face of the sandbox: ECPay's endpoints, the payment pages, and the JSON control API.

Owns ``/Cashier/*``, ``/CreditDetail/*``, ``/PaymentMedia/*`` and ``/sandbox/*``, and hands the
e-invoice service's ``/B2CInvoice/*`` (and its ``/sandbox`` pages and API) to ``einvoice_routes``;
returns None for every other path.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from ..http import NO_STORE, Request, Response, html_response, json_response, redirect, text_response
from . import einvoice_routes, pages, statement
from .einvoice_engine import InvoiceSandbox, invoices_for
from .engine import ActionError, Sandbox
from .trades import Trade, TradeStatus
from .validation import CheckoutError

PREFIXES = ("/Cashier/", "/CreditDetail/", "/PaymentMedia/", "/B2CInvoice/", "/sandbox")
_TRADE_API = re.compile(r"^/sandbox/api/trades/([^/]+)$")
_ACTION_API = re.compile(r"^/sandbox/api/trades/([^/]+)/([a-z-]+)$")
_TRADE_PAGE = re.compile(r"^/sandbox/trades/([^/]+)$")
_CHECKOUT_ACTION = re.compile(r"^/sandbox/checkout/([^/]+)$")
CONTROL_ACTIONS = ("pay", "fail", "issue-code", "simulate-paid", "expire", "resend", "close", "charge-period")
_ECPAY_QUERY_TYPE = "text/html; charset=utf-8"  # ECPay labels its k=v answers text/html
_JSON_TYPE = "application/json; charset=utf-8"


def _error(status: int, code: str, message: str) -> Response:
    return json_response(status, {"error": {"code": code, "message": message}})


class SandboxApp:
    """An App exposing a :class:`Sandbox` over HTTP."""

    def __init__(self, sandbox: Sandbox, invoices: InvoiceSandbox | None = None) -> None:
        self.sandbox = sandbox
        # The e-invoice service beside it (one per AIO sandbox: same clock, same data folder).
        self.invoices = invoices if invoices is not None else invoices_for(sandbox)

    def handle(self, request: Request) -> Response | None:
        """Answer sandbox paths; None for the rest."""
        answer = einvoice_routes.handle(self.invoices, request)
        if answer is not None:
            return answer
        path = request.path
        if not path.startswith(PREFIXES) or (path.startswith("/sandbox") and not _is_sandbox_path(path)):
            return None
        if path.startswith("/sandbox/api"):
            return self._control(request, path)
        if path.startswith("/sandbox"):
            return self._pages(request, path)
        return self._ecpay(request, path)

    # --- ECPay endpoints ------------------------------------------------------------------------

    def _ecpay(self, request: Request, path: str) -> Response:
        if request.method != "POST":
            return text_response(405, "Method Not Allowed")
        form = request.form()
        if path == "/Cashier/AioCheckOut/V5":
            result = self.sandbox.checkout(form)
            if isinstance(result, CheckoutError):
                return html_response(200, pages.error_page(result))
            return html_response(200, self._checkout_page(result))
        if path == "/PaymentMedia/TradeNoAio":
            status, body, content_type = statement.trade_no_aio(self.sandbox, form)
            data = body if isinstance(body, bytes) else body.encode("utf-8")
            return Response(status, [("Content-Type", content_type), NO_STORE], data)
        handlers = {
            "/Cashier/QueryTradeInfo/V5": self.sandbox.query_trade_info,
            "/Cashier/QueryPaymentInfo": self.sandbox.query_payment_info,
            "/Cashier/QueryCreditCardPeriodInfo": self.sandbox.query_period_info,
            "/Cashier/CreditCardPeriodAction": self.sandbox.period_action,
            "/CreditDetail/DoAction": self.sandbox.do_action,
            "/CreditDetail/QueryTrade/V2": self.sandbox.query_credit_trade,
        }
        handler = handlers.get(path)
        if handler is None:
            return text_response(404, "Not Found (this endpoint is not simulated by the sandbox)")
        status, body = handler(form)
        # The JSON endpoints answer their errors in the k=v format, as ECPay's do.
        return text_response(status, body, _JSON_TYPE if body.startswith("{") else _ECPAY_QUERY_TYPE)

    def _checkout_page(self, trade: Trade, notice: str = "") -> str:
        with self.sandbox.book.lock:
            return pages.checkout_page(trade, self.sandbox.allowed_methods(trade), notice)

    # --- pages ----------------------------------------------------------------------------------

    def _pages(self, request: Request, path: str) -> Response:
        if path in ("/sandbox", "/sandbox/") and request.method in ("GET", "HEAD"):
            with self.sandbox.book.lock:
                return html_response(
                    200,
                    pages.index_page(
                        self.sandbox.book.all(), self.sandbox.settings.to_json(), self.sandbox.now()
                    ),
                )
        if path == "/sandbox/settings" and request.method == "POST":
            value = request.form().get("drop_callbacks", "false") == "true"
            self.sandbox.settings = self.sandbox.settings.updated({"drop_callbacks": value})
            return redirect("/sandbox/")
        match = _TRADE_PAGE.match(path)
        if match and request.method in ("GET", "HEAD"):
            try:
                trade = self.sandbox.trade(match.group(1))
            except ActionError as exc:
                return html_response(404, pages.error_page(CheckoutError("10200047", exc.message)))
            with self.sandbox.book.lock:
                self.sandbox.card_state(trade)
                return html_response(200, pages.trade_page(trade))
        match = _CHECKOUT_ACTION.match(path)
        if match and request.method == "POST":
            return self._page_action(match.group(1), request.form())
        if match and request.method in ("GET", "HEAD"):
            # The payment page's address, reloaded or bookmarked: show the trade's record instead of a 404.
            return redirect(f"/sandbox/trades/{quote(match.group(1), safe='')}")
        return text_response(404, "Not Found")

    def _page_action(self, mtn: str, form: dict[str, str]) -> Response:
        action = form.get("action", "")
        from_record = form.get("from") == "record"
        sandbox = self.sandbox
        try:
            trade = sandbox.trade(mtn)
            if action == "choose":
                trade = sandbox.choose(mtn, form.get("method", ""))
                return html_response(200, self._checkout_page(trade))
            if action == "client-redirect":
                if trade.status is not TradeStatus.CODE_ISSUED or not trade.params.get("ClientRedirectURL"):
                    raise ActionError(409, "invalid_state", "no code to send back to the shop")
                with sandbox.book.lock:
                    fields = sandbox.client_redirect_fields(trade)
                return html_response(
                    200,
                    pages.autopost_page(
                        "返回商店", trade.params["ClientRedirectURL"], fields, "Back to the shop…"
                    ),
                )
            if action not in CONTROL_ACTIONS:
                raise ActionError(400, "unknown_action", f"unknown action {action!r}")
            options = {"state": form["state"]} if action == "close" and form.get("state") else {}
            trade = self._run(mtn, action, options)
        except ActionError as exc:
            if from_record:
                return redirect(f"/sandbox/trades/{mtn}")
            try:
                current = sandbox.trade(mtn)
            except ActionError:
                return html_response(exc.status, pages.error_page(CheckoutError("10200047", exc.message)))
            return html_response(exc.status, self._checkout_page(current, exc.message))
        if from_record:
            return redirect(f"/sandbox/trades/{mtn}")
        if action in ("issue-code", "simulate-paid", "resend", "expire"):
            notices = {
                "issue-code": "繳費代碼已產生 Payment code issued",
                "simulate-paid": "Simulated payment notice sent (SimulatePaid=1); the order stays unpaid.",
                "resend": "ReturnURL notification sent again.",
                "expire": "The trade expired.",
            }
            return html_response(200, self._checkout_page(trade, notices[action]))
        return html_response(200, self._result_page(trade))

    def _result_page(self, trade: Trade) -> str:
        """After pay/fail: POST the result to OrderResultURL (online methods), else a result page."""
        url = trade.params.get("OrderResultURL", "")
        with self.sandbox.book.lock:
            if url and not trade.code_issued:
                fields = self.sandbox.order_result_fields(trade)
                text = (
                    "付款成功 Payment succeeded"
                    if trade.status is TradeStatus.PAID
                    else "付款失敗 Payment failed"
                )
                return pages.autopost_page(text, url, fields, f"{text} — back to the shop…")
            return pages.result_page(trade)

    # --- control API ----------------------------------------------------------------------------

    def _run(self, mtn: str, action: str, options: dict[str, Any]) -> Trade:
        sandbox = self.sandbox
        method = options.get("method")
        if method is not None and not isinstance(method, str):
            raise ActionError(400, "bad_request", "method must be a string")
        if action == "pay":
            return sandbox.pay(mtn, method)
        if action == "fail":
            code, text = options.get("rtn_code"), options.get("rtn_msg")
            if (code is not None and not isinstance(code, str)) or (
                text is not None and not isinstance(text, str)
            ):
                raise ActionError(400, "bad_request", "rtn_code and rtn_msg must be strings")
            return sandbox.fail(mtn, code, text)
        if action == "issue-code":
            return sandbox.issue_code(mtn, method)
        if action == "simulate-paid":
            return sandbox.simulate_paid(mtn)
        if action == "expire":
            return sandbox.expire(mtn)
        if action == "close":
            state = options.get("state", "closed")
            if not isinstance(state, str):
                raise ActionError(400, "bad_request", "state must be to_be_closed or closed")
            return sandbox.close_trade(mtn, state)
        if action == "charge-period":
            fail = options.get("fail", False)
            if not isinstance(fail, bool):
                raise ActionError(400, "bad_request", "fail must be true or false")
            return sandbox.charge_period(mtn, fail=fail)
        kind = options.get("kind", "return")
        if kind not in ("return", "payment_info", "period_return"):
            raise ActionError(400, "bad_request", "kind must be return, payment_info or period_return")
        return sandbox.resend(mtn, kind)

    def _control(self, request: Request, path: str) -> Response:
        sandbox = self.sandbox
        try:
            if path == "/sandbox/api/trades" and request.method == "GET":
                with sandbox.book.lock:
                    return json_response(200, {"trades": [t.to_json() for t in sandbox.book.all()]})
            if path == "/sandbox/api/settings":
                if request.method == "POST":
                    changes = _json_body(request)
                    try:
                        sandbox.settings = sandbox.settings.updated(changes)
                    except ValueError as exc:
                        raise ActionError(400, "bad_setting", str(exc)) from None
                elif request.method != "GET":
                    raise ActionError(405, "method_not_allowed", "GET or POST")
                return json_response(200, sandbox.settings.to_json())
            if path == "/sandbox/api/reset" and request.method == "POST":
                sandbox.book.clear()
                return json_response(200, {"trades": 0})
            match = _TRADE_API.match(path)
            if match and request.method == "GET":
                return json_response(200, sandbox.snapshot(match.group(1)))
            match = _ACTION_API.match(path)
            if match and request.method == "POST":
                mtn, action = match.groups()
                if action not in CONTROL_ACTIONS:
                    raise ActionError(404, "unknown_action", f"actions: {', '.join(CONTROL_ACTIONS)}")
                self._run(mtn, action, _json_body(request))
                return json_response(200, sandbox.snapshot(mtn))
        except ActionError as exc:
            return _error(exc.status, exc.code, exc.message)
        return _error(404, "not_found", "no such sandbox API route")


def _is_sandbox_path(path: str) -> bool:
    return path == "/sandbox" or path.startswith("/sandbox/")


def _json_body(request: Request) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    try:
        data = json.loads(request.body)
    except ValueError:
        raise ActionError(400, "bad_json", "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ActionError(400, "bad_json", "the body must be a JSON object")
    return data
