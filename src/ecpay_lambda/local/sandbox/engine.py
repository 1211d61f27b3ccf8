"""The sandbox's core: accept checkouts, move trades through ECPay's states, notify, answer queries.

HTTP-free: the app (``app.py``) turns requests into calls here, so tests drive it directly too.
State changes happen under the trade book's lock; notifications are sent after it is released (the
merchant's handler may call back into the sandbox, e.g. QueryTradeInfo, from another thread).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from ...ecpay.checkmac import verify_check_mac_value
from ...ecpay.credentials import MerchantCredentials
from ...ecpay.timezone import TAIPEI, format_ecpay_datetime
from . import capture, periodic
from . import generators as gen
from . import messages as msg
from .capture import FORWARD, CardState
from .delivery import CallbackDispatcher, Notification, Sender, post_form
from .trades import CallbackAttempt, Trade, TradeBook, TradeStatus
from .validation import (
    DUPLICATE_TRADE_NO,
    STORE_EXPIRE_LIMITS,
    CheckoutError,
    amount_fits,
    amount_limit_text,
    offered_methods,
    validate_checkout,
)

log = logging.getLogger(__name__)

TIMESTAMP_WINDOW = timedelta(minutes=3)
# Unix seconds have at most 10 digits until the year 2286: 13 digits are milliseconds.
_UNIX_SECONDS = re.compile(r"[0-9]{1,10}")
_DIGITS = re.compile(r"[0-9]+")
TIMESTAMP_FORMAT_ERROR = ("10100050", "TimeStamp Error. Unix time in seconds")
TIMESTAMP_WINDOW_ERROR = ("10100050", "TimeStamp Error. it is valid for 3 minutes")
MAX_DELIVERIES = 5
MAX_CLOCK_OFFSET = 10 * 365.25 * 86_400  # ten years, in seconds
_CHECK_CODE = re.compile(r"[0-9]{1,10}")
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
    # DoAction faults: "unreachable" answers 503 without acting (the request never arrived);
    # "answer_lost" acts, then answers 503 (the answer never came back). None: normal.
    do_action_fault: str | None = None
    # Moves the sandbox's business time (capture states, daily closes, the dates it reports), not
    # the TimeStamp check: merchants' clocks stay real, so their signed requests keep working.
    clock_offset_seconds: float = 0.0
    credit_check_code: str = "12345678"  # the merchant's CreditCheckCode for QueryTrade/V2

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
        if "do_action_fault" in changes:
            fault = changes["do_action_fault"]
            if fault not in (None, "unreachable", "answer_lost"):
                raise ValueError('do_action_fault must be null, "unreachable" or "answer_lost"')
            new["do_action_fault"] = fault
        if "query_status_override" in changes:
            status = changes["query_status_override"]
            if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
                raise ValueError("query_status_override must be null or an HTTP error status")
            new["query_status_override"] = status
        if "clock_offset_seconds" in changes:
            offset = changes["clock_offset_seconds"]
            if (
                not isinstance(offset, int | float)
                or isinstance(offset, bool)
                or not math.isfinite(offset)
                or abs(offset) > MAX_CLOCK_OFFSET
            ):
                raise ValueError("clock_offset_seconds must be seconds within ten years either way")
            new["clock_offset_seconds"] = float(offset)
        if "credit_check_code" in changes:
            code = changes["credit_check_code"]
            if not isinstance(code, str) or not _CHECK_CODE.fullmatch(code):
                raise ValueError("credit_check_code must be 1 to 10 digits")
            new["credit_check_code"] = code
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
        """The sandbox's business time (aware UTC): its clock moved by ``clock_offset_seconds``."""
        return self._clock() + timedelta(seconds=self.settings.clock_offset_seconds)

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
        """The methods the shopper may use for this trade (those whose amount limits it fits)."""
        return offered_methods(trade.choose_payment, trade.amount, trade.params.get("IgnorePayment", ""))

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
            trade = self.trade(merchant_trade_no)
            self.card_state(trade)
            return trade.to_json()

    def _resolve_method(self, trade: Trade, method: str | None) -> str:
        if trade.method is not None:
            if method and method != trade.method:
                raise ActionError(409, "method_fixed", f"this trade is paid by {trade.method}, not {method}")
            return trade.method
        allowed = self.allowed_methods(trade)
        if not allowed:
            raise ActionError(409, "amount_out_of_range", f"no method accepts NT$ {trade.amount}")
        chosen = method or ("Credit" if "Credit" in allowed else allowed[0])
        if chosen not in allowed:
            if chosen in gen.PAYABLE_METHODS and not amount_fits(chosen, trade.amount):
                raise ActionError(
                    409,
                    "amount_out_of_range",
                    f"NT$ {trade.amount} is out of range: {amount_limit_text(chosen)}",
                )
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
                self._authorise(trade, now)
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
            if code == "1" or not _DIGITS.fullmatch(code) or len(code) > 10:
                raise ActionError(400, "bad_rtn_code", "a failure RtnCode is digits and not 1")
            trade.status = TradeStatus.FAILED
            trade.rtn_code, trade.rtn_msg = code, rtn_msg or default_msg
            if chosen == "Credit" and trade.is_periodic:
                trade.period_executions.append(periodic.execution(trade, rtn_code=code, at=self.now()))
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
            minutes = min(int(params.get("StoreExpireDate") or 10080), STORE_EXPIRE_LIMITS["CVS"][1])
            trade.expire_at = now + timedelta(minutes=minutes)
            trade.payment_info.update(
                {"PaymentNo": gen.cvs_code(), "Barcode1": "", "Barcode2": "", "Barcode3": ""}
            )
        else:
            # An ALL order's StoreExpireDate was checked as CVS minutes: cap it as BARCODE days.
            days = min(int(params.get("StoreExpireDate") or 7), STORE_EXPIRE_LIMITS["BARCODE"][1])
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

    def charge_period(self, merchant_trade_no: str, *, fail: bool = False) -> Trade:
        """Control action: the simulated calendar reaches the next period of a periodic order now.

        The charge (declined when ``fail``) is appended to the ExecLog and reported to PeriodReturnURL,
        signed and retried like ReturnURL. Refused (409) unless the order is running: after Cancel,
        after the last planned charge, or before charge #1 succeeded. Six failed charges cancel the
        order, as ECPay does (§4.5).
        """
        outbox = _Outbox()
        with self.book.lock:
            trade = self.trade(merchant_trade_no)
            if not trade.is_periodic:
                raise ActionError(409, "not_periodic", "only a periodic (定期定額) order has later charges")
            status = periodic.exec_status(trade)
            if status != periodic.EXEC_RUNNING:
                raise ActionError(409, "period_not_running", periodic.CHARGE_REFUSALS[status])
            now = self.now()
            if fail:
                code, text = DEFAULT_FAIL["Credit"]
                entry = periodic.execution(trade, rtn_code=code, at=now)
            else:
                serial = gen.gwsr()
                while self.book.gwsr_in_use(serial):
                    serial = gen.gwsr()
                code, text = "1", "交易成功"
                entry = periodic.execution(
                    trade, rtn_code="1", at=now, gwsr=serial, auth_code=gen.auth_code()
                )
            trade.period_executions.append(entry)
            number = len(trade.period_executions)
            self._event(trade, f"period charge #{number}: {code} {text}")
            failures = sum(1 for e in trade.period_executions[1:] if e["RtnCode"] != 1)
            if failures >= periodic.MAX_FAILED_CHARGES:
                trade.period_cancelled = True
                self._event(trade, f"{failures} failed charges: the schedule is cancelled")
            url = trade.params.get("PeriodReturnURL", "")
            if url:
                fields = periodic.period_result(trade, entry, rtn_msg=text)
                outbox.items.append(self._notification(trade, "period_return", url, fields))
            self.book.save()
        self._send(outbox)
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

    # --- card capture states (see ``capture``) ---------------------------------------------------

    def _authorise(self, trade: Trade, now: datetime) -> None:
        """A card payment succeeded: a fresh gwsr, the trade AUTHORISED, charge #1 of a periodic order."""
        serial = gen.gwsr()
        while self.book.gwsr_in_use(serial):  # QueryTrade/V2 finds a trade by it: keep it unique
            serial = gen.gwsr()
        trade.payment_info.update(msg.credit_details(serial))
        trade.card_state, trade.card_state_since = CardState.AUTHORISED, now
        if trade.is_periodic:
            trade.period_executions.append(
                periodic.execution(
                    trade, rtn_code="1", at=now, gwsr=serial, auth_code=trade.payment_info["auth_code"]
                )
            )

    def card_state(self, trade: Trade) -> CardState | None:
        """A paid card trade's capture state now, after applying the daily closes due (lock held)."""
        if trade.method != "Credit" or trade.status is not TradeStatus.PAID:
            return None
        if trade.card_state is None or trade.card_state_since is None:
            # Paid before the sandbox kept capture states (an older sandbox.json): authorised then.
            trade.card_state = trade.card_state or CardState.AUTHORISED
            trade.card_state_since = trade.payment_date or trade.trade_date
        steps = capture.closes_due(trade.card_state, trade.card_state_since, self.now())
        for state, at in steps:
            self._enter_state(trade, state, at, trade.remaining_amount)
            trade.events.append(
                {"at": at.isoformat(), "event": f"daily close 20:15: {capture.status_text(state)}"}
            )
        if steps:
            self.book.save()
        return trade.card_state

    def _enter_state(
        self, trade: Trade, state: CardState, at: datetime, amount: int, status: str = ""
    ) -> None:
        """Move the card trade to ``state`` at ``at`` and add its close_data entry."""
        trade.card_state, trade.card_state_since = state, at
        if state is CardState.CLOSED:
            trade.captured_amount = amount
        self._close_entry(trade, status or capture.status_text(state), amount, at)

    def _close_entry(self, trade: Trade, status: str, amount: int, at: datetime) -> None:
        trade.close_data.append(
            {
                "status": status,
                "sno": str(len(trade.close_data) + 1),
                "amount": amount,
                "datetime": format_ecpay_datetime(at),
            }
        )

    def close_trade(self, merchant_trade_no: str, target: str = "closed") -> Trade:
        """Control action: move a paid card trade forward to ``to_be_closed`` or ``closed`` now."""
        if target not in (CardState.TO_BE_CLOSED, CardState.CLOSED):
            raise ActionError(400, "bad_request", "state must be to_be_closed or closed")
        wanted = CardState(target)
        with self.book.lock:
            trade = self.trade(merchant_trade_no)
            if trade.method != "Credit":
                raise ActionError(409, "not_card", "only card trades have capture states")
            state = self.card_state(trade)
            if state is None:
                raise ActionError(409, "invalid_state", f"trade is {trade.status}, not paid")
            if state is CardState.CANCELLED or FORWARD.index(wanted) <= FORWARD.index(state):
                raise ActionError(409, "not_forward", f"trade is {state}: {wanted} is not ahead of it")
            now = self.now()
            while state is not wanted:
                state = FORWARD[FORWARD.index(state) + 1]
                self._enter_state(trade, state, now, trade.remaining_amount)
            self._event(trade, f"closed now (control action): {capture.status_text(state)}")
            self.book.save()
            return trade

    @staticmethod
    def _full_refund_only(trade: Trade) -> bool:
        """Installment and bonus-point trades are refunded in full only (§7.5)."""
        return bool(trade.params.get("CreditInstallment")) or trade.params.get("Redeem") == "Y"

    # --- server-to-server APIs ------------------------------------------------------------------

    def _check_request(self, form: Mapping[str, str], required: tuple[str, ...]) -> tuple[str, str] | None:
        """(code, message) of the first problem of a signed server-to-server request, or None.

        A TimeStamp is checked when required, and when sent to an endpoint that does not need one.
        """
        for name in required:
            if not form.get(name, "").strip():
                return ("10100050", f"Parameter Error. {name} is required")
        credentials = self.merchants.get(form["MerchantID"])
        if credentials is None or not verify_check_mac_value(form, credentials.hash_key, credentials.hash_iv):
            return ("10200073", "CheckMacValue verify fail")
        if form.get("PlatformID"):
            return ("10100050", "Parameter Error. PlatformID is not simulated")
        if "TimeStamp" in required or "TimeStamp" in form:
            stamp = form["TimeStamp"]
            # Compared as numbers: a millisecond stamp is years away, which datetime cannot hold.
            if not _UNIX_SECONDS.fullmatch(stamp):
                return TIMESTAMP_FORMAT_ERROR
            # The real clock, not the business one: the merchant's clock is not moved by the offset.
            if abs(self._clock().timestamp() - int(stamp)) > TIMESTAMP_WINDOW.total_seconds():
                return TIMESTAMP_WINDOW_ERROR
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
        """CreditDetail/DoAction by the trade's capture state: C capture, R refund, E cancel, N abandon.

        Every action on a found trade is kept in ``trade.actions``, refused ones too.
        """
        if self.settings.query_status_override:
            return self.settings.query_status_override, "Forbidden"
        fault = self.settings.do_action_fault
        if fault == "unreachable":
            return 503, "Service Unavailable"
        status, body = self._do_action(form)
        if fault == "answer_lost":
            return 503, "Service Unavailable"
        return status, body

    def _do_action(self, form: Mapping[str, str]) -> tuple[int, str]:
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
            return _answer(*capture.error_answer("bad_action"))
        if not _DIGITS.fullmatch(amount_text) or len(amount_text) > 10 or int(amount_text) <= 0:
            return _answer(*capture.error_answer("bad_amount"))
        amount = int(amount_text)
        with self.book.lock:
            trade = self.book.get(form["MerchantID"], form["MerchantTradeNo"])
            if trade is None or trade.trade_no != form["TradeNo"]:
                return _answer(*capture.error_answer("not_found"))
            now = self.now()
            before = self.card_state(trade)
            if trade.method != "Credit":
                ruling = capture.Ruling("not_credit", CardState.AUTHORISED)
            elif before is None:
                ruling = capture.Ruling("not_paid", CardState.AUTHORISED)
            elif capture.in_close_window(now):
                ruling = capture.Ruling("close_window", before)
            else:
                ruling = capture.rule(
                    action, amount, before, trade.remaining_amount, full_only=self._full_refund_only(trade)
                )
            if ruling.error is None and before is not None:
                self._apply_action(trade, action, ruling, before, now)
                code, text = "1", "Success"
            else:
                status = capture.status_text(before) if before else str(trade.status)
                code, text = capture.error_answer(ruling.error or "not_paid", action=action, status=status)
            after = self.card_state(trade)
            trade.actions.append(
                {
                    "action": action,
                    "amount": amount,
                    "at": now.isoformat(),
                    "state_before": str(before) if before else None,
                    "state_after": str(after) if after else None,
                    "ok": code == "1",
                    "rtn_code": code,
                    "rtn_msg": text,
                }
            )
            self._event(trade, f"DoAction {action} {amount}: {code} {text}")
            self.book.save()
        return _answer(code, text)

    def _apply_action(
        self, trade: Trade, action: str, ruling: capture.Ruling, before: CardState, now: datetime
    ) -> None:
        if action == "R":
            trade.refunded_amount += ruling.refund
            self._close_entry(trade, capture.REFUND_TEXT, ruling.refund, now)
        elif action == "N":
            trade.refunded_amount += ruling.refund
            self._enter_state(trade, CardState.CANCELLED, now, ruling.refund)
        elif action == "E":
            # The capture request is withdrawn: its entry reads 已取消, the trade is authorised again.
            self._enter_state(trade, CardState.AUTHORISED, now, trade.remaining_amount, "已取消")
        else:
            self._enter_state(trade, ruling.state, now, trade.remaining_amount)

    def query_credit_trade(self, form: Mapping[str, str]) -> tuple[int, str]:
        """CreditDetail/QueryTrade/V2: one card trade's capture state by gwsr (JSON, not signed)."""
        if self.settings.query_status_override:
            return self.settings.query_status_override, "Forbidden"

        def _answer(rtn_msg: str, value: dict[str, Any] | None = None) -> tuple[int, str]:
            return 200, json.dumps({"RtnMsg": rtn_msg, "RtnValue": value}, ensure_ascii=False)

        problem = self._check_request(
            form, ("MerchantID", "CreditRefundId", "CreditAmount", "CreditCheckCode", "CheckMacValue")
        )
        if problem:
            return _answer(problem[1])
        expected = self.settings.credit_check_code.encode()
        if not hmac.compare_digest(form["CreditCheckCode"].strip().encode(), expected):
            return _answer("CreditCheckCode Error")
        with self.book.lock:
            trade = self.book.find_by_gwsr(form["MerchantID"], form["CreditRefundId"].strip())
            # ECPay finds the authorisation by serial and amount; anything else has no card record.
            if trade is None or str(trade.amount) != form["CreditAmount"].strip():
                return _answer("error_nopay")
            if self.card_state(trade) is None:
                return _answer("error_nopay")
            return _answer("", msg.credit_trade_detail(trade))

    def query_period_info(self, form: Mapping[str, str]) -> tuple[int, str]:
        """QueryCreditCardPeriodInfo: a periodic order's schedule and executions (JSON, not signed)."""
        if self.settings.query_status_override:
            return self.settings.query_status_override, "Forbidden"
        problem = self._check_request(form, ("MerchantID", "MerchantTradeNo", "TimeStamp", "CheckMacValue"))
        if problem:
            return 200, urlencode({"RtnCode": problem[0], "RtnMsg": problem[1]})
        with self.book.lock:
            trade = self.book.get(form["MerchantID"], form["MerchantTradeNo"])
            if trade is None or not trade.is_periodic:
                code, text = periodic.error_answer("no_order")
                return 200, urlencode({"RtnCode": code, "RtnMsg": text})
            return 200, json.dumps(periodic.period_info(trade), ensure_ascii=False)

    def period_action(self, form: Mapping[str, str]) -> tuple[int, str]:
        """CreditCardPeriodAction: Cancel stops a running order; ReAuth is refused (not on stage)."""
        if self.settings.query_status_override:
            return self.settings.query_status_override, "Forbidden"
        head = {"MerchantID": form.get("MerchantID", ""), "MerchantTradeNo": form.get("MerchantTradeNo", "")}

        def _answer(code: str, text: str) -> tuple[int, str]:
            # Form-encoded, as ECPay answers this endpoint (its RtnMsg may be Chinese).
            return 200, urlencode({**head, "RtnCode": code, "RtnMsg": text})

        problem = self._check_request(
            form, ("MerchantID", "MerchantTradeNo", "Action", "TimeStamp", "CheckMacValue")
        )
        if problem:
            return _answer(*problem)
        action = form["Action"]
        if action not in ("Cancel", "ReAuth"):
            return _answer(*periodic.error_answer("bad_action"))
        with self.book.lock:
            trade = self.book.get(form["MerchantID"], form["MerchantTradeNo"])
            if trade is None or not trade.is_periodic:
                return _answer(*periodic.error_answer("no_order"))
            if action == "ReAuth":
                last = trade.period_executions[-1] if trade.period_executions else None
                failed = last is not None and last["RtnCode"] != 1
                self._event(trade, "CreditCardPeriodAction ReAuth refused")
                self.book.save()
                return _answer(*periodic.error_answer("reauth_stage" if failed else "reauth_not_failed"))
            status = periodic.exec_status(trade)
            if status != periodic.EXEC_RUNNING:
                return _answer(*periodic.error_answer("not_running", status=status))
            trade.period_cancelled = True
            self._event(trade, "CreditCardPeriodAction Cancel: no further charges")
            self.book.save()
        return _answer("1", "OK")
