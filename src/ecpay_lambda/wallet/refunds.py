"""Card refunds as ECPay's state machine: plan by the trade's capture state, settle only on ECPay's word.

ECPay accepts a refund action according to the card trade's state (protocol page §7.5, §13.1): ``N``
(abandon, whole amount) while authorised, ``E`` then ``N`` (whole) or ``R`` (part) while it is to be
closed, ``R`` once closed; nothing between 20:15 and 20:30 Asia/Taipei; installment and bonus-point trades
only in full. The wallet asks CreditDetail/QueryTrade/V2 for the state before it debits anything.

A refund whose outcome is unknown (crash, timeout, a two-step plan cut halfway) stays ``pending`` and is
settled by asking ECPay what it refunded on the trade: the difference from the refunds the wallet already
completed says whether this one happened (completed) or not (failed: the points come back). Anything else is
left pending for an operator, never decided by assumption.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from ..ecpay.card_refunds import (
    CardTradeState,
    RefundPlan,
    card_trade_state,
    in_close_window,
    plan_refund,
    refunded_by_ecpay,
)
from ..ecpay.client import CreditTradeDetail, EcpayClient
from ..ecpay.errors import EcpayError, EcpayValidationError, RateLimitedError
from . import errors
from .ids import new_notification_id
from .models import Transaction, TransactionStatus, TransactionType
from .outcomes import Delivery, EcpayOutcome, OutcomeKind, apply_outcome
from .port import WalletStore

# Stable error codes (``refund_<reason>``) for the reasons ``plan_refund`` gives.
REFUND_REASON_MESSAGES = {
    "partial_before_close": (
        "ECPay can only abandon a card trade in full before its daily close at 20:15 (Asia/Taipei); "
        "refund the whole amount now, or refund part of it after 20:30"
    ),
    "full_only": "installment and bonus-point card trades can only be refunded in full",
    "rest_after_close": (
        "this card trade is being closed by ECPay and was partly refunded: refund the rest after the "
        "next daily close (20:15 Asia/Taipei)"
    ),
    "already_cancelled": "ECPay already cancelled this card trade",
    "unknown_state": (
        "ECPay reported a card trade state this wallet does not know; refund it in ECPay's back office"
    ),
}


class RefundContext(NamedTuple):
    """The card trade a refund acts on, as ECPay reports it now."""

    gwsr: int
    state: CardTradeState
    detail: CreditTradeDetail
    full_only: bool


def refund_gwsr(deposit: Transaction) -> int | None:
    """The card authorisation serial of a paid deposit, when ECPay gave it."""
    text = deposit.payment_info.get("gwsr", "")
    return int(text) if text.isdigit() else None


def is_full_only(deposit: Transaction) -> bool:
    """Installment and bonus-point (Redeem) trades refund in full only."""
    return "installments" in deposit.payment_info or "redeem_amount" in deposit.payment_info


class CardRefunds:
    """Plans, sends and settles card refunds for one wallet (store, ECPay client, check code, clock)."""

    def __init__(
        self,
        store: WalletStore,
        client: EcpayClient,
        *,
        merchant_id: str,
        credit_check_code: int | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.client = client
        self.merchant_id = merchant_id
        self.credit_check_code = credit_check_code
        self.clock = clock

    def check_window(self) -> None:
        """Refuse while ECPay closes card trades (20:15-20:30 Asia/Taipei)."""
        if in_close_window(self.clock()):
            raise errors.RefundNotPossible(
                "refund_close_window",
                "ECPay closes card trades between 20:15 and 20:30 (Asia/Taipei); refund after 20:30",
            )

    def context(self, deposit: Transaction) -> RefundContext:
        """Ask ECPay for the card trade's state (``RefundNotPossible`` / ``PaymentGatewayError``)."""
        if self.credit_check_code is None:
            raise errors.RefundNotPossible(
                "refund_not_configured",
                "refunds need the merchant's credit check code (ECPAY_CREDIT_CHECK_CODE) "
                "to ask ECPay for the card trade's state",
            )
        gwsr = refund_gwsr(deposit)
        if gwsr is None:
            raise errors.RefundNotPossible(
                "refund_unknown_trade",
                "ECPay did not report this payment's card authorisation serial (gwsr); "
                "refund it in ECPay's back office",
            )
        try:
            detail = self.client.query_credit_trade(gwsr, deposit.amount, self.credit_check_code)
        except RateLimitedError:
            raise errors.PaymentGatewayError("ECPay is rate-limiting queries; try again later") from None
        except EcpayError as exc:
            raise errors.PaymentGatewayError(
                f"ECPay did not tell the card trade's state ({type(exc).__name__}); nothing was refunded"
            ) from None
        return RefundContext(gwsr, card_trade_state(detail), detail, is_full_only(deposit))

    def plan(self, deposit: Transaction, value: int, ctx: RefundContext) -> RefundPlan:
        """The DoAction sequence for refunding ``value`` now, or ``RefundNotPossible``."""
        plan = plan_refund(
            ctx.state,
            amount=value,
            paid_amount=deposit.amount,
            refunded_so_far=deposit.refunded_amount,
            full_only=ctx.full_only,
        )
        if not plan.actions:
            message = REFUND_REASON_MESSAGES.get(
                plan.reason, f"ECPay refuses this refund now ({plan.reason})"
            )
            raise errors.RefundNotPossible(f"refund_{plan.reason}", message)
        return plan

    def _apply(
        self, refund: Transaction, kind: OutcomeKind, route: str, raw: str, evidence: dict[str, str]
    ) -> Transaction:
        assert refund.merchant_trade_no is not None
        oc = EcpayOutcome(
            kind=kind,
            transaction_id=refund.transaction_id,
            merchant_trade_no=refund.merchant_trade_no,
            merchant_id=self.merchant_id,
            amount=refund.amount,
            trade_no=refund.trade_no or "",
            payment_info=evidence,
        )
        delivery = Delivery(new_notification_id(), route, raw, self.clock())
        result = apply_outcome(self.store, oc, delivery, merchant_id=self.merchant_id, clock=self.clock)
        return result.transaction or self.store.get_transaction(refund.transaction_id) or refund

    def send(self, refund: Transaction, actions: tuple[str, ...], full_amount: int) -> Transaction:
        """Send the planned DoAction(s); settle on ECPay's answers, leave pending when unknown."""
        assert refund.merchant_trade_no is not None and refund.trade_no is not None
        answers: list[str] = []
        for step, action in enumerate(actions):
            # N abandons the whole authorisation; E cancels the whole capture request; R refunds the part.
            amount = refund.amount if action == "R" else full_amount
            try:
                result = self.client.do_action(refund.merchant_trade_no, refund.trade_no, action, amount)
            except EcpayValidationError as exc:
                if step == 0:  # refused before anything was sent: certainly not refunded
                    raw = urllib.parse.urlencode({"error": "validation", "field": exc.field})
                    self._apply(
                        refund, OutcomeKind.REFUND_FAILED, "refund", raw, {"refused_by": "validation"}
                    )
                    raise errors.PaymentGatewayError(f"ECPay refund request invalid: {exc.reason}") from None
                raise errors.PaymentGatewayError(
                    "the refund stays pending until ECPay's records settle it"
                ) from None
            except EcpayError:
                # Unknown whether ECPay acted: keep the refund pending (points stay debited) and let
                # reconciliation ask ECPay; never give the points back on a guess.
                raise errors.PaymentGatewayError(
                    "ECPay did not answer the refund; it stays pending until ECPay's records settle it"
                ) from None
            answers.append(f"{action}:{result.rtn_code}")
            if not result.ok:
                raw = urllib.parse.urlencode({**dict(result.fields), "plan": ",".join(actions)})
                if step == 0:
                    self._apply(refund, OutcomeKind.REFUND_FAILED, "refund", raw, {"refused_by": "DoAction"})
                    raise errors.PaymentGatewayError(
                        f"ECPay refused the refund ({result.rtn_code}: {result.rtn_msg[:100]})"
                    )
                # A later step refused after an earlier one was done: ECPay's records decide.
                raise errors.PaymentGatewayError(
                    f"ECPay refused step {action} of the refund ({result.rtn_code}); "
                    "it stays pending until ECPay's records settle it"
                )
        raw = urllib.parse.urlencode({"plan": ",".join(actions), "answers": " ".join(answers)})
        return self._apply(refund, OutcomeKind.REFUNDED, "refund", raw, {"confirmed_by": "DoAction"})

    def settle(self, refund: Transaction) -> str:
        """Settle a pending refund by ECPay's records: completed, failed, unchanged, review or error."""
        if (
            refund.transaction_type is not TransactionType.REFUND
            or refund.status is not TransactionStatus.PENDING
        ):
            return "unchanged"
        deposit = self.store.get_transaction(refund.related_transaction_id or "")
        if deposit is None:
            return "review: the refunded deposit is missing"
        if self.credit_check_code is None:
            return "review: cannot ask ECPay (ECPAY_CREDIT_CHECK_CODE is not set); check ECPay's back office"
        gwsr = refund_gwsr(deposit)
        if gwsr is None:
            return "review: no card authorisation serial (gwsr) to ask ECPay with; check its back office"
        try:
            detail = self.client.query_credit_trade(gwsr, deposit.amount, self.credit_check_code)
        except RateLimitedError:
            return "error: rate_limited"
        except EcpayError as exc:
            return f"error: {type(exc).__name__}"
        ecpay_refunded = refunded_by_ecpay(detail)
        # The wallet debits a refund when it is created; only this one of the deposit can be pending.
        completed_before = deposit.refunded_amount - refund.amount
        difference = ecpay_refunded - completed_before
        raw = urllib.parse.urlencode(
            {
                "status": detail.status,
                "ecpay_refunded": str(ecpay_refunded),
                "wallet_completed": str(completed_before),
            }
        )
        if difference == refund.amount:
            self._apply(refund, OutcomeKind.REFUNDED, "reconcile", raw, {"confirmed_by": "QueryTrade"})
            return "completed"
        if difference == 0:
            self._apply(refund, OutcomeKind.REFUND_FAILED, "reconcile", raw, {"refused_by": "QueryTrade"})
            return "failed"
        return (
            f"review: ECPay shows {ecpay_refunded} refunded on the trade, the wallet completed "
            f"{completed_before} and has {refund.amount} pending"
        )
