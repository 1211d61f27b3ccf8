"""The sandbox's core: accept checkouts, move trades through ECPay's states, notify, answer queries.

HTTP-free: the app (``app.py``) turns requests into calls here, so tests drive it directly too.
State changes happen under the trade book's lock; notifications are sent after it is released (the
merchant's handler may call back into the sandbox, e.g. QueryTradeInfo, from another thread).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ...ecpay.checkmac import verify_check_mac_value
from ...ecpay.credentials import MerchantCredentials
from ...ecpay.timezone import TAIPEI
from . import generators as gen
from . import messages as msg
from .callbacks import CallbackDispatcher, Notification, Sender, post_form
from .trades import CallbackAttempt, Trade, TradeBook, TradeStatus
from .validation import DUPLICATE_TRADE_NO, CheckoutError, validate_checkout

log = logging.getLogger(__name__)

TIMESTAMP_WINDOW = timedelta(minutes=3)
MAX_DELIVERIES = 5
DEFAULT_FAIL: dict[str, tuple[str, str]] = {
    "Credit": ("10200058", "Authorization failed (sandbox)"),
    "ATM": ("10100058", "ATM payment failed (sandbox)"),
    "CVS": ("10300006", "CVS payment failed (sandbox)"),
    "BARCODE": ("10300006", "BARCODE payment failed (sandbox)"),
}
CODE_ISSUED: dict[str, tuple[str, str]] = {
    "ATM": ("2", "Get VirtualAccount Succeeded"),
    "CVS": ("10100073", "Get CVS Code Succeeded."),
    "BARCODE": ("10100073", "Get BARCODE Code Succeeded."),
}


@dataclass
class SandboxSettings:
    """Knobs for tests and people: changeable at run time through ``/sandbox/api/settings``."""

    drop_callbacks: bool = False
    retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    max_deliveries: int = MAX_DELIVERIES
    callback_timeout: float = 10.0
    query_status_override: int | None = None  # e.g. 403 to imitate ECPay's query rate limit

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)
        }

    def updated(self, changes: Mapping[str, Any]) -> SandboxSettings:
        """A copy with ``changes`` applied; raises ValueError on an unknown key or a bad value."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        new: dict[str, Any] = {}
        if "drop_callbacks" in changes:
            if not isinstance(changes["drop_callbacks"], bool):
                raise ValueError("drop_callbacks must be true or false")
            new["drop_callbacks"] = changes["drop_callbacks"]
        if "retry_delays" in changes:
            delays = changes["retry_delays"]
            if not isinstance(delays, list | tuple) or not all(
                isinstance(d, int | float) and not isinstance(d, bool) and 0 <= d <= 3600 for d in delays
            ):
                raise ValueError("retry_delays must be a list of seconds (0 to 3600)")
            new["retry_delays"] = tuple(float(d) for d in delays)
        if "max_deliveries" in changes:
            count = changes["max_deliveries"]
            if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_DELIVERIES:
                raise ValueError(f"max_deliveries must be 1 to {MAX_DELIVERIES}")
            new["max_deliveries"] = count
        if "callback_timeout" in changes:
            timeout = changes["callback_timeout"]
            if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 60:
                raise ValueError("callback_timeout must be 0 to 60 seconds")
            new["callback_timeout"] = float(timeout)
        if "query_status_override" in changes:
            status = changes["query_status_override"]
            if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
                raise ValueError("query_status_override must be null or an HTTP error status")
            new["query_status_override"] = status
        return replace(self, **new)


class ActionError(Exception):
    """A control or page action that cannot be done: ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class _Outbox:
    """Notifications decided under the lock, sent after it is released."""

    items: list[Notification] = field(default_factory=list)


class Sandbox:
    """An offline ECPay AIO: checkout, payment simulation, notifications, query and refund APIs."""

    def __init__(
        self,
        merchants: Mapping[str, MerchantCredentials] | MerchantCredentials | None = None,
        *,
        book: TradeBook | None = None,
        settings: SandboxSettings | None = None,
        clock: Callable[[], datetime] | None = None,
        send: Sender = post_form,
    ) -> None:
        if merchants is None:
            merchants = MerchantCredentials.stage_test_merchant()
        if isinstance(merchants, MerchantCredentials):
            merchants = {merchants.merchant_id: merchants}
        self.merchants: dict[str, MerchantCredentials] = dict(merchants)
        self.book = book or TradeBook()
        self.settings = settings or SandboxSettings()
        self._clock = clock or (lambda: datetime.now(UTC))
        self.dispatcher = CallbackDispatcher(sign=self._sign_for_current, record=self._record, send=send)

    # --- plumbing -------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The sandbox clock (aware UTC)."""
        return self._clock()

    def close(self) -> None:
        """Stop the retry worker."""
        self.dispatcher.close()

    def _credentials(self, trade: Trade) -> MerchantCredentials:
        return self.merchants[trade.merchant_id]

    def _sign_for_current(self, fields: dict[str, str]) -> dict[str, str]:
        credentials = self.merchants.get(fields.get("MerchantID", ""))
        if credentials is None:  # trade of a merchant no longer configured: send unsigned
            return dict(fields)
        return msg.sign(fields, credentials)

    def _record(self, notification: Notification, attempt: CallbackAttempt) -> None:
        with self.book.lock:
            trade = self.book.get(*notification.trade_key)
            if trade is not None:
                trade.callbacks.append(attempt)
                self.book.save()

    def _notification(self, trade: Trade, kind: str, url: str, fields: dict[str, str]) -> Notification:
        trade.series_count += 1
        settings = self.settings
        return Notification(
            trade_key=trade.key,
            kind=kind,
            url=url,
            fields=fields,
            series=trade.series_count,
            retry_rtn_msg="paid" if kind == "return" and fields.get("RtnCode") == "1" else None,
            delays=settings.retry_delays,
            max_deliveries=settings.max_deliveries,
            timeout=settings.callback_timeout,
        )

    def _send(self, outbox: _Outbox) -> None:
        drop = self.settings.drop_callbacks
        for notification in outbox.items:
            self.dispatcher.deliver(notification, drop=drop)

    def _event(self, trade: Trade, text: str) -> None:
        trade.events.append({"at": self.now().isoformat(), "event": text})

    # --- checkout -------------------------------------------------------------------------------

    def checkout(self, form: Mapping[str, str]) -> Trade | CheckoutError:
        """Validate an AioCheckOut/V5 form as ECPay does and open the trade."""
        problem = validate_checkout(form, self.merchants)
        if problem is not None:
            return problem
        now = self.now()
        choose = form["ChoosePayment"]
        trade = Trade(
            merchant_id=form["MerchantID"],
            merchant_trade_no=form["MerchantTradeNo"],
            trade_no=gen.new_trade_no(now),
            amount=int(form["TotalAmount"]),
            choose_payment=choose,
            params={k: v for k, v in form.items() if k != "CheckMacValue"},
            trade_date=now,
        )
        if choose != "ALL":
            self._set_method(trade, choose)
        self._event(trade, f"checkout accepted ({choose})")
        if not self.book.add(trade):
            return CheckoutError(DUPLICATE_TRADE_NO, "MerchantTradeNo 重複 (MerchantTradeNo Duplicate)")
        return trade

    def _set_method(self, trade: Trade, method: str) -> None:
        sub = trade.params.get("ChooseSubPayment", "") if trade.choose_payment == method else ""
        trade.method = method
        trade.payment_type = gen.payment_type_for(method, sub)

    def allowed_methods(self, trade: Trade) -> list[str]:
        """The methods the shopper may use for this trade."""
        if trade.choose_payment != "ALL":
            return [trade.choose_payment]
        ignored = set(filter(None, trade.params.get("IgnorePayment", "").split("#")))
        return [
            m for m in gen.PAYABLE_METHODS if m not in ignored and not (m == "BNPL" and trade.amount < 3000)
        ]

    # --- actions --------------------------------------------------------------------------------

    def trade(self, merchant_trade_no: str) -> Trade:
        """A trade by MerchantTradeNo (``ActionError`` 404 if unknown)."""
        trade = self.book.find(merchant_trade_no)
        if trade is None:
            raise ActionError(404, "trade_not_found", f"no trade {merchant_trade_no!r} in the sandbox")
        return trade

    def snapshot(self, merchant_trade_no: str) -> dict[str, Any]:
        """The trade as JSON, read under the lock."""
        with self.book.lock:
            return self.trade(merchant_trade_no).to_json()

    def _resolve_method(self, trade: Trade, method: str | None) -> str:
        if trade.method is not None:
            if method and method != trade.method:
                raise ActionError(409, "method_fixed", f"this trade is paid by {trade.method}, not {method}")
            return trade.method
        allowed = self.allowed_methods(trade)
        chosen = method or ("Credit" if "Credit" in allowed else allowed[0])
        if chosen not in allowed:
            raise ActionError(409, "method_not_allowed", f"{chosen} is not offered for this trade")
        self._set_method(trade, chosen)
        self._event(trade, f"shopper chose {chosen}")
        return chosen

    def _require_open(self, trade: Trade) -> None:
        if trade.status is TradeStatus.CODE_ISSUED and trade.expire_at and trade.expire_at <= self.now():
            trade.status = TradeStatus.EXPIRED
            self._event(trade, "code expired")
            self.book.save()
        if trade.status not in (TradeStatus.CREATED, TradeStatus.CODE_ISSUED):
            raise ActionError(409, "invalid_state", f"trade is {trade.status}")

    def choose(self, merchant_trade_no: str, method: str) -> Trade:
        """The shopper picks a method on an ALL trade's page."""
        with self.book.lock:
            trade = self.trade(merchant_trade_no)
            self._require_open(trade)
            self._resolve_method(trade, method)
            self.book.save()
            return trade

    def pay(self, merchant_trade_no: str, method: str | None = None) -> Trade:
        """The shopper pays (an offline method gets its code first): ReturnURL is called, signed."""
        outbox = _Outbox()
        with self.book.lock:
            trade = self.trade(merchant_trade_no)
            self._require_open(trade)
            chosen = self._resolve_method(trade, method)
            if msg.is_offline(chosen) and not trade.code_issued:
                self._issue_code(trade, outbox)
            now = self.now()
            trade.status = TradeStatus.PAID
            trade.payment_date = now
            trade.rtn_code, trade.rtn_msg = "1", "交易成功"
            if chosen == "Credit":
                trade.payment_info.update(msg.credit_details())
            self._event(trade, "paid")
            fields = msg.payment_result(trade, rtn_code="1", rtn_msg="交易成功")
            outbox.items.append(self._notification(trade, "return", trade.params["ReturnURL"], fields))
            self.book.save()
        self._send(outbox)
        return trade

    def fail(self, merchant_trade_no: str, rtn_code: str | None = None, rtn_msg: str | None = None) -> Trade:
        """The payment fails: ReturnURL is called with a failure RtnCode."""
        outbox = _Outbox()
        with self.book.lock:
            trade = self.trade(merchant_trade_no)
            self._require_open(trade)
            chosen = self._resolve_method(trade, None)
            default_code, default_msg = DEFAULT_FAIL.get(chosen, DEFAULT_FAIL["Credit"])
            code = rtn_code or default_code
            if code == "1" or not code.isdigit():
                raise ActionError(400, "bad_rtn_code", "a failure RtnCode is digits and not 1")
            trade.status = TradeStatus.FAILED
            trade.rtn_code, trade.rtn_msg = code, rtn_msg or default_msg
            self._event(trade, f"failed ({code})")
            fields = msg.payment_result(trade, rtn_code=code, rtn_msg=trade.rtn_msg)
            outbox.items.append(self._notification(trade, "return", trade.params["ReturnURL"], fields))
            self.book.save()
        self._send(outbox)
        return trade

    def issue_code(self, merchant_trade_no: str, method: str | None = None) -> Trade:
        """ATM/CVS/BARCODE: issue the account or code; PaymentInfoURL is called, signed."""
        outbox = _Outbox()
        with self.book.lock:
            trade = self.trade(merchant_trade_no)
            self._require_open(trade)
            if trade.code_issued:
                raise ActionError(409, "code_already_issued", "a code was already issued for this trade")
            chosen = self._resolve_method(trade, method or self._first_offline(trade))
            if not msg.is_offline(chosen):
                raise ActionError(409, "not_offline", f"{chosen} has no payment code")
            self._issue_code(trade, outbox)
            self.book.save()
        self._send(outbox)
        return trade

    def _first_offline(self, trade: Trade) -> str | None:
        if trade.method is not None:
            return None
        return next((m for m in self.allowed_methods(trade) if msg.is_offline(m)), None)

    def _issue_code(self, trade: Trade, outbox: _Outbox) -> None:
        now = self.now()
        method = trade.method or ""
        params = trade.params
        if method == "ATM":
            days = int(params.get("ExpireDate") or 3)
            last_day = (now.astimezone(TAIPEI) + timedelta(days=days)).date()
            # An ATM deadline is a date: the account works until the end of that Taiwan day.
            trade.expire_at = datetime(last_day.year, last_day.month, last_day.day, 23, 59, 59, tzinfo=TAIPEI)
            bank_code, account = gen.atm_account(trade.payment_type)
            trade.payment_info.update({"BankCode": bank_code, "vAccount": account})
        elif method == "CVS":
            minutes = min(int(params.get("StoreExpireDate") or 10080), 86400)
            trade.expire_at = now + timedelta(minutes=minutes)
            trade.payment_info.update(
                {"PaymentNo": gen.cvs_code(), "Barcode1": "", "Barcode2": "", "Barcode3": ""}
            )
        else:
            days = int(params.get("StoreExpireDate") or 7)
            trade.expire_at = now + timedelta(days=days)
            one, two, three = gen.barcodes(trade.expire_at)
            trade.payment_info.update({"PaymentNo": "", "Barcode1": one, "Barcode2": two, "Barcode3": three})
        trade.expire_at = trade.expire_at.astimezone(UTC)
        trade.code_issued = True
        trade.status = TradeStatus.CODE_ISSUED
        trade.rtn_code, trade.rtn_msg = CODE_ISSUED[method]
        self._event(trade, "payment code issued")
        url = params.get("PaymentInfoURL", "")
        if url:
            fields = msg.payment_info(trade, rtn_code=trade.rtn_code, rtn_msg=trade.rtn_msg)
            outbox.items.append(self._notification(trade, "payment_info", url, fields))

    def simulate_paid(self, merchant_trade_no: str) -> Trade:
        """The merchant portal's 模擬付款: ReturnURL with SimulatePaid=1; the trade stays unpaid."""
        outbox = _Outbox()
        with self.book.lock:
            trade = self.trade(merchant_trade_no)
            self._require_open(trade)
            self._resolve_method(trade, None)
            trade.simulated_notices += 1
            self._event(trade, "simulated payment notice (SimulatePaid=1)")
            fields = msg.payment_result(
                trade, rtn_code="1", rtn_msg="交易成功", simulate_paid=True, payment_date=self.now()
            )
            outbox.items.append(self._notification(trade, "return", trade.params["ReturnURL"], fields))
            self.book.save()
        self._send(outbox)
        return trade

    def expire(self, merchant_trade_no: str) -> Trade:
        """The code (or the abandoned page) expires; ECPay sends no notification for this."""
        with self.book.lock:
            trade = self.trade(merchant_trade_no)
            self._require_open(trade)
            trade.status = TradeStatus.EXPIRED
            if trade.code_issued:
                trade.expire_at = self.now() - timedelta(seconds=1)
            self._event(trade, "expired")
            self.book.save()
            return trade

    def resend(self, merchant_trade_no: str, kind: str = "return") -> Trade:
        """Deliver the last notification of ``kind`` once more, as ECPay's re-delivery (RtnMsg=paid)."""
        with self.book.lock:
            trade = self.trade(merchant_trade_no)
            previous = [a for a in trade.callbacks if a.kind == kind]
            if not previous:
                raise ActionError(409, "nothing_to_resend", f"no {kind} notification was sent for this trade")
            last = previous[-1]
            fields = {k: v for k, v in last.fields.items() if k != "CheckMacValue"}
            notification = Notification(
                trade_key=trade.key,
                kind=kind,
                url=last.url,
                fields=fields,
                series=last.series,
                retry_rtn_msg="paid" if kind == "return" and fields.get("RtnCode") == "1" else None,
                timeout=self.settings.callback_timeout,
                attempts=max(a.attempt for a in previous if a.series == last.series),
            )
        self.dispatcher.resend(notification)
        return trade

    # --- browser-side results -------------------------------------------------------------------

    def order_result_fields(self, trade: Trade) -> dict[str, str]:
        """Signed OrderResultURL fields for a finished online payment (RtnMsg Succeeded on success)."""
        paid = trade.status is TradeStatus.PAID
        fields = msg.payment_result(
            trade, rtn_code="1" if paid else trade.rtn_code, rtn_msg="Succeeded" if paid else trade.rtn_msg
        )
        return msg.sign(fields, self._credentials(trade))

    def client_redirect_fields(self, trade: Trade) -> dict[str, str]:
        """Signed ClientRedirectURL fields after a code was issued."""
        code, text = CODE_ISSUED[trade.method or "ATM"]
        return msg.sign(msg.payment_info(trade, rtn_code=code, rtn_msg=text), self._credentials(trade))

    # --- server-to-server APIs ------------------------------------------------------------------

    def _check_request(self, form: Mapping[str, str], required: tuple[str, ...]) -> tuple[str, str] | None:
        """(code, message) of the first problem of a signed server-to-server request, or None."""
        for name in required:
            if not form.get(name, "").strip():
                return ("10100050", f"Parameter Error. {name} is required")
        credentials = self.merchants.get(form["MerchantID"])
        if credentials is None or not verify_check_mac_value(form, credentials.hash_key, credentials.hash_iv):
            return ("10200073", "CheckMacValue verify fail")
        if form.get("PlatformID"):
            return ("10100050", "Parameter Error. PlatformID is not simulated")
        if "TimeStamp" in required:
            stamp = form["TimeStamp"]
            if not stamp.isdigit():
                return ("10100050", "Parameter Error. TimeStamp")
            if abs(self.now() - datetime.fromtimestamp(int(stamp), UTC)) > TIMESTAMP_WINDOW:
                return ("10100050", "TimeStamp Error. it is valid for 3 minutes")
        return None

    def query_trade_info(self, form: Mapping[str, str]) -> tuple[int, str]:
        """QueryTradeInfo/V5: (HTTP status, raw ``k=v&...`` body), signed when the trade is found."""
        if self.settings.query_status_override:
            return self.settings.query_status_override, "Forbidden"
        problem = self._check_request(form, ("MerchantID", "MerchantTradeNo", "TimeStamp", "CheckMacValue"))
        if problem:
            return 200, msg.raw_kv({"TradeStatus": problem[0], "RtnMsg": problem[1]})
        with self.book.lock:
            trade = self.book.get(form["MerchantID"], form["MerchantTradeNo"])
            if trade is None:
                return 200, msg.raw_kv({"TradeStatus": "10200047", "RtnMsg": "Cant not find the trade data."})
            fields = msg.trade_info(trade)
            return 200, msg.raw_kv(msg.sign(fields, self._credentials(trade)))

    def query_payment_info(self, form: Mapping[str, str]) -> tuple[int, str]:
        """QueryPaymentInfo: the ATM/CVS/BARCODE code of an unpaid trade, signed."""
        if self.settings.query_status_override:
            return self.settings.query_status_override, "Forbidden"
        problem = self._check_request(form, ("MerchantID", "MerchantTradeNo", "TimeStamp", "CheckMacValue"))
        if problem:
            return 200, msg.raw_kv({"RtnCode": problem[0], "RtnMsg": problem[1]})
        with self.book.lock:
            trade = self.book.get(form["MerchantID"], form["MerchantTradeNo"])
            if trade is None:
                return 200, msg.raw_kv({"RtnCode": "10200047", "RtnMsg": "Cant not find the trade data."})
            if trade.status is TradeStatus.PAID:
                return 200, msg.raw_kv({"RtnCode": "10100050", "RtnMsg": "Trade is paid. use QueryTradeInfo"})
            if not trade.code_issued:
                return 200, msg.raw_kv({"RtnCode": "10100050", "RtnMsg": "No payment code was issued"})
            return 200, msg.raw_kv(msg.sign(msg.payment_info_query(trade), self._credentials(trade)))

    def do_action(self, form: Mapping[str, str]) -> tuple[int, str]:
        """CreditDetail/DoAction: C capture, R refund (partial allowed), E cancel capture, N abandon."""
        if self.settings.query_status_override:
            return self.settings.query_status_override, "Forbidden"
        head = {
            "MerchantID": form.get("MerchantID", ""),
            "MerchantTradeNo": form.get("MerchantTradeNo", ""),
            "TradeNo": form.get("TradeNo", ""),
        }

        def _answer(code: str, text: str) -> tuple[int, str]:
            # Raw values without & = + %, so a query-string parser and a raw parser read the same.
            return 200, msg.raw_kv({**head, "RtnCode": code, "RtnMsg": text})

        problem = self._check_request(
            form, ("MerchantID", "MerchantTradeNo", "TradeNo", "Action", "TotalAmount", "CheckMacValue")
        )
        if problem:
            return _answer(*problem)
        action = form["Action"]
        amount_text = form["TotalAmount"]
        if action not in ("C", "R", "E", "N"):
            return _answer("10100050", "Parameter Error. Action")
        if not amount_text.isdigit() or int(amount_text) <= 0:
            return _answer("10100050", "Parameter Error. TotalAmount")
        amount = int(amount_text)
        with self.book.lock:
            trade = self.book.get(form["MerchantID"], form["MerchantTradeNo"])
            if trade is None or trade.trade_no != form["TradeNo"]:
                return _answer("10200047", "Cant not find the trade data.")
            if trade.method != "Credit":
                return _answer("10100050", "Only credit card trades can use DoAction")
            if trade.status is not TradeStatus.PAID:
                return _answer("10100050", "Trade is not paid")
            captured = any(a["action"] == "C" for a in trade.actions) and not any(
                a["action"] == "E" for a in trade.actions
            )
            if action == "R":
                if amount > trade.remaining_amount:
                    return _answer("10200050", "Refund amount exceeds the remaining amount")
                trade.refunded_amount += amount
            elif action == "N":
                if trade.refunded_amount or captured:
                    return _answer("10100050", "Abandon is only for an authorised trade not yet captured")
                if amount != trade.amount:
                    return _answer("10200050", "Abandon amount must equal the trade amount")
                trade.refunded_amount = trade.amount
            elif action == "C":
                if captured:
                    return _answer("10100050", "Trade is already captured")
                if amount > trade.remaining_amount:
                    return _answer("10200050", "Capture amount exceeds the authorised amount")
            elif not captured:
                return _answer("10100050", "No capture to cancel")
            trade.actions.append({"action": action, "amount": amount, "at": self.now().isoformat()})
            self._event(trade, f"DoAction {action} {amount}")
            self.book.save()
        return _answer("1", "Success")
