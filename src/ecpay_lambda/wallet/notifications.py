"""ECPay's notifications reaching the wallet (ReturnURL, PaymentInfoURL): record every body, verify it
with :mod:`ecpay.notifications` (the protocol), apply it once through :func:`.outcomes.apply_outcome`.

Kept apart from ``service`` so the notification Lambda's path is small and obvious: that function
builds a :class:`CallbackHandler` (``api.composition.get_callbacks``) and never imports ``service``
(nor its checkout, reconciliation, audit and idempotency code). The types here are a NamedTuple and
plain classes rather than dataclasses for the same cold start (see ``ecpay.records``).
"""

# Annotations are evaluated, not postponed (no ``from __future__ import annotations``): typing.NamedTuple
# would otherwise compile each field's string annotation at import (cold start, see ``ecpay.records``).

import base64
import binascii
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Final, NamedTuple, Protocol, TypeVar

from ..ecpay.client import EcpayClient
from ..ecpay.credentials import MerchantCredentials
from ..ecpay.errors import EcpayError, EcpayValidationError, NotificationError
from ..ecpay.merchant_trade_no import reference_of
from ..ecpay.notifications import (
    parse_form_body,
    parse_payment_info,
    parse_payment_result,
    parse_period_result,
)
from .ids import is_transaction_id, new_notification_id
from .models import Transaction
from .outcomes import (
    Confirm,
    Delivery,
    EcpayOutcome,
    OutcomeKind,
    OutcomeResult,
    apply_outcome,
    card_payment_info,
)
from .periodic import PeriodCharge, apply_period_charge
from .port import WalletStore


class _Traded(Protocol):
    @property
    def merchant_trade_no(self) -> str: ...


_Notice = TypeVar("_Notice", bound=_Traded)

OK = "1|OK"
REDELIVERY_RTN_MSG = "paid"  # ReturnURL's RtnMsg on ECPay's retries (ecpay-protocol.md §7)
# The store keeps at most this much of a body: ECPay's are about 1 KB, and an abusive one must not
# exceed a DynamoDB item (400 KB). Bodies this large are refused by the parser anyway.
MAX_RECORDED_CHARS = 64 * 1024


class CallbackReply(NamedTuple):
    """What an ECPay callback route answers: exactly ``1|OK`` when accepted (also for duplicates)."""

    accepted: bool
    body: str  # "1|OK" or "0|<short reason>" (never secrets); ECPay retries on anything but 1|OK
    outcome: str  # as recorded in the NotificationRecord
    transaction_id: str | None = None


class EcpayConfig(NamedTuple):
    """What the wallet needs to know about ECPay (built once by the composition root)."""

    credentials: MerchantCredentials
    client: EcpayClient  # query / refund; its transport is injected by the composition root
    cross_check_paid: bool  # confirm paid notifications with QueryTradeInfo before crediting
    item_name: str = "Wallet points"
    trade_desc: str = "Wallet deposit"
    credit_check_code: int | None = None  # CreditDetail/QueryTrade/V2's check code: refunds need it
    # The client of the notification path's cross-check, with a timeout inside ECPay's 5 s (else ``client``).
    cross_check_client: EcpayClient | None = None


def body_text(body: bytes | str, *, is_base64: bool) -> str:
    """The body as text for the record: base64 undone when it decodes, invalid UTF-8 replaced."""
    raw = body.encode("utf-8", errors="replace") if isinstance(body, str) else body
    if is_base64:
        # Undecodable base64 is kept as it arrived: it is evidence either way.
        with contextlib.suppress(binascii.Error, ValueError):
            raw = base64.b64decode(raw, validate=True)
    # NUL is replaced like invalid UTF-8: PostgreSQL text cannot hold it, and no ECPay body has one.
    text = raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    if len(text) > MAX_RECORDED_CHARS:
        text = text[:MAX_RECORDED_CHARS] + f"...[truncated {len(text) - MAX_RECORDED_CHARS} chars]"
    return text


def _route_id(route_id: str | None) -> str | None:
    """The route's transaction id when it has the shape of one (it comes from the URL, untrusted)."""
    return route_id if route_id is not None and is_transaction_id(route_id) else None


def _reply(result: OutcomeResult, transaction_id: str | None) -> CallbackReply:
    if result.accepted:
        return CallbackReply(True, OK, result.outcome, transaction_id)
    reason = result.outcome.split(":", 1)[-1]
    return CallbackReply(False, f"0|{reason}", result.outcome, transaction_id)


class CallbackHandler:
    """Handles ECPay's server-to-server notifications for the wallet.

    ``clock`` must return aware UTC datetimes (``WalletService.now`` or ``datetime.now(UTC)``).
    """

    __slots__ = ("client", "clock", "credentials", "cross_check_paid", "store")

    def __init__(
        self,
        store: WalletStore,
        credentials: MerchantCredentials,
        client: EcpayClient,
        cross_check_paid: bool,
        clock: Callable[[], datetime],
    ) -> None:
        self.store: Final = store
        self.credentials: Final = credentials
        self.client: Final = client
        self.cross_check_paid: Final = cross_check_paid
        self.clock: Final = clock

    @classmethod
    def for_config(
        cls, store: WalletStore, ecpay: EcpayConfig, clock: Callable[[], datetime]
    ) -> "CallbackHandler":
        """The handler of a wallet on ``store`` configured with ``ecpay``."""
        return cls(
            store=store,
            credentials=ecpay.credentials,
            client=ecpay.cross_check_client or ecpay.client,
            cross_check_paid=ecpay.cross_check_paid,
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"CallbackHandler(store={self.store!r}, credentials={self.credentials!r})"

    def _delivery(self, route: str, body: bytes | str, is_base64: bool) -> Delivery:
        return Delivery(new_notification_id(), route, body_text(body, is_base64=is_base64), self.clock())

    def _reject(
        self,
        delivery: Delivery,
        check: str,
        *,
        transaction_id: str | None,
        merchant_trade_no: str | None,
    ) -> CallbackReply:
        label = f"rejected:{check}"
        self.store.record_notification(
            delivery.record(label, transaction_id=transaction_id, merchant_trade_no=merchant_trade_no)
        )
        return CallbackReply(False, f"0|{check}", label, transaction_id)

    def _reject_unverified(
        self,
        delivery: Delivery,
        exc: NotificationError,
        body: bytes | str,
        is_base64: bool,
        route_id: str | None,
    ) -> CallbackReply:
        # Best effort to file the record under its transaction; nothing in it is trusted, and
        # nothing longer than a MerchantTradeNo column is kept as an index value.
        mtn: str | None = None
        with contextlib.suppress(NotificationError):
            mtn = (parse_form_body(body, is_base64=is_base64).get("MerchantTradeNo") or "")[:64] or None
        tid = _route_id(route_id)
        if tid is None and mtn is not None:
            try:
                tid = reference_of(mtn)
            except EcpayValidationError:
                tid = None
        return self._reject(delivery, exc.check, transaction_id=tid, merchant_trade_no=mtn)

    def _route_check(self, delivery: Delivery, mtn: str, route_id: str | None) -> str | CallbackReply:
        try:
            reference = reference_of(mtn)
        except EcpayValidationError:
            return self._reject(
                delivery, "merchant_trade_no", transaction_id=_route_id(route_id), merchant_trade_no=mtn[:64]
            )
        if route_id is not None and route_id != reference:
            return self._reject(delivery, "route", transaction_id=_route_id(route_id), merchant_trade_no=mtn)
        return reference

    def _cross_check(self, txn: Transaction, oc: EcpayOutcome) -> str | None:
        try:
            info = self.client.query_trade_info(oc.merchant_trade_no)
        except EcpayError:
            # Not confirmed: do not credit; the error reply makes ECPay deliver again later.
            return "rejected:cross_check_unavailable"
        if (
            info.merchant_trade_no != oc.merchant_trade_no
            or not info.is_paid
            or info.trade_amt != txn.amount
            or info.simulate_paid
        ):
            return "rejected:cross_check"
        return None

    def _apply(
        self, oc: EcpayOutcome, delivery: Delivery, confirm: Confirm | None, user_id: str | None = None
    ) -> CallbackReply:
        result = apply_outcome(
            self.store,
            oc,
            delivery,
            merchant_id=self.credentials.merchant_id,
            confirm=confirm,
            clock=self.clock,
            user_id=user_id,
        )
        return _reply(result, oc.transaction_id)

    def _verified(
        self,
        route: str,
        body: bytes | str,
        is_base64: bool,
        route_transaction_id: str | None,
        parse: Callable[..., _Notice],
    ) -> tuple[Delivery, _Notice, str] | CallbackReply:
        """Record the delivery, verify it with ``parse`` and check its route: (delivery, notice,
        transaction id), or the reply of a rejected one (recorded)."""
        delivery = self._delivery(route, body, is_base64)
        try:
            notice = parse(body, self.credentials, is_base64=is_base64)
        except NotificationError as exc:
            return self._reject_unverified(delivery, exc, body, is_base64, route_transaction_id)
        tid = self._route_check(delivery, notice.merchant_trade_no, route_transaction_id)
        if isinstance(tid, CallbackReply):
            return tid
        return delivery, notice, tid

    def handle_return(
        self,
        body: bytes | str,
        *,
        is_base64: bool = False,
        route_transaction_id: str | None = None,
        route_user_id: str | None = None,
    ) -> CallbackReply:
        """ReturnURL: record, verify, apply the payment result once.

        ``route_user_id`` (the ReturnURL's ``/users/{userId}/...``) lets a store credit a first delivery
        in one write, unread (``outcomes.credit_guess``); untrusted, it is checked by that write.
        """
        verified = self._verified("return", body, is_base64, route_transaction_id, parse_payment_result)
        if isinstance(verified, CallbackReply):
            return verified
        delivery, result, tid = verified
        oc = EcpayOutcome(
            kind=OutcomeKind.PAID if result.is_paid else OutcomeKind.FAILED,
            transaction_id=tid,
            merchant_trade_no=result.merchant_trade_no,
            merchant_id=result.merchant_id,
            amount=result.trade_amt,
            trade_no=result.trade_no,
            simulate_paid=result.simulate_paid,
            payment_type=result.payment_type,
            payment_info=card_payment_info(result.extra) if result.is_paid else {},
            paid_at=result.payment_date,
        )
        confirm = self._cross_check if self.cross_check_paid and result.is_paid else None
        # ECPay marks its re-deliveries RtnMsg=paid (sent only when it did not get our 1|OK): most find
        # the payment applied, which a cancelled guess would pay a whole transaction's write units to
        # learn, so they read first. First deliveries (交易成功) are guessed.
        guess_user = None if result.rtn_msg.strip().lower() == REDELIVERY_RTN_MSG else route_user_id
        return self._apply(oc, delivery, confirm, guess_user)

    def handle_payment_info(
        self, body: bytes | str, *, is_base64: bool = False, route_transaction_id: str | None = None
    ) -> CallbackReply:
        """PaymentInfoURL: record, verify, store the ATM/CVS/BARCODE code."""
        verified = self._verified("paymentInfo", body, is_base64, route_transaction_id, parse_payment_info)
        if isinstance(verified, CallbackReply):
            return verified
        delivery, notice, tid = verified
        info = {
            "bank_code": notice.bank_code,
            "v_account": notice.v_account,
            "payment_no": notice.payment_no,
            "barcode1": notice.barcode1,
            "barcode2": notice.barcode2,
            "barcode3": notice.barcode3,
        }
        oc = EcpayOutcome(
            kind=OutcomeKind.CODE_ISSUED if notice.is_code_issued else OutcomeKind.FAILED,
            transaction_id=tid,
            merchant_trade_no=notice.merchant_trade_no,
            merchant_id=notice.merchant_id,
            amount=notice.trade_amt,
            trade_no=notice.trade_no,
            payment_type=notice.payment_type,
            payment_info={k: v for k, v in info.items() if v},
            expires_at=notice.expire_at,
        )
        return self._apply(oc, delivery, None)

    # -- PeriodReturnURL (recurring top-ups, issue 14) ---------------------------------------------

    def _period_cross_check(self, charge: PeriodCharge) -> str | None:
        """ECPay's own record must show this many successful charges of this amount (§7.3)."""
        try:
            info = self.client.query_credit_card_period_info(charge.merchant_trade_no)
        except EcpayError:
            return "rejected:cross_check_unavailable"
        successes = [e for e in info.executions if e.ok]
        if (
            info.merchant_trade_no != charge.merchant_trade_no
            or len(successes) < charge.period
            or successes[charge.period - 1].amount != charge.amount
        ):
            return "rejected:cross_check"
        return None

    def handle_period_return(
        self, body: bytes | str, *, is_base64: bool = False, route_transaction_id: str | None = None
    ) -> CallbackReply:
        """PeriodReturnURL: record, verify, credit charge #2..n of a recurring deposit once (or record
        a declined charge on its plan)."""
        verified = self._verified("periodReturn", body, is_base64, route_transaction_id, parse_period_result)
        if isinstance(verified, CallbackReply):
            return verified
        delivery, result, tid = verified
        charge = PeriodCharge(
            transaction_id=tid,
            merchant_trade_no=result.merchant_trade_no,
            merchant_id=result.merchant_id,
            paid=result.is_paid,
            amount=result.amount,
            period=result.total_success_times,
            rtn_code=result.rtn_code,
            rtn_msg=result.rtn_msg,
            gwsr=result.gwsr,
            auth_code=result.auth_code,
            process_date=result.process_date,
            simulate_paid=result.simulate_paid,
        )
        applied = apply_period_charge(
            self.store,
            charge,
            delivery,
            merchant_id=self.credentials.merchant_id,
            clock=self.clock,
            confirm=self._period_cross_check if self.cross_check_paid else None,
        )
        return _reply(applied, tid)
