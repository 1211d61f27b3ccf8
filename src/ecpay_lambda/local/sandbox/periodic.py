"""Periodic (定期定額) card orders: the executions ECPay keeps and what its period APIs answer (§7.3, §7.4).

Charge #1 is the checkout's own authorisation (reported to ReturnURL); charges #2..n run on a simulated
calendar: the ``charge-period`` control action charges the next period now and reports it to
PeriodReturnURL (§5.5) with :func:`period_result`'s fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ...ecpay.timezone import format_ecpay_datetime
from .trades import Trade

# CreditCardPeriodAction refusals (code, RtnMsg). 90100150 is ECPay's (§6); the others are the
# sandbox's own, next to it, as ECPay publishes no list.
PERIOD_ERRORS: dict[str, tuple[str, str]] = {
    "bad_action": ("10100050", "Parameter Error. Action"),
    "no_order": ("90100150", "不存在的訂單"),
    "not_running": ("90100151", "The periodic order is not running (ExecStatus {status})"),
    "reauth_not_failed": ("90100152", "ReAuth is only for a failed charge"),
    "reauth_stage": ("90100153", "ReAuth cannot be exercised on stage"),
}
# The charge-period control action's refusals (the sandbox's own: ECPay runs its calendar itself).
CHARGE_REFUSALS: dict[str, str] = {
    "0": "the periodic order is cancelled (or its first charge never succeeded): no further charges",
    "2": "the periodic order is finished: every planned charge succeeded",
}
CUSTOM_FIELDS = ("CustomField1", "CustomField2", "CustomField3", "CustomField4")
EXEC_CANCELLED, EXEC_RUNNING, EXEC_FINISHED = "0", "1", "2"
# ECPay cancels a schedule after this many failed charges (§4.5).
MAX_FAILED_CHARGES = 6


def execution(
    trade: Trade, *, rtn_code: str, at: datetime, gwsr: str = "", auth_code: str = ""
) -> dict[str, Any]:
    """One ExecLog entry: ``RtnCode`` (1 = charged), amount, gwsr, process_date, auth_code, TradeNo."""
    return {
        "RtnCode": int(rtn_code),
        "amount": trade.amount,
        "gwsr": int(gwsr) if gwsr else "",
        "process_date": format_ecpay_datetime(at),
        "auth_code": auth_code,
        "TradeNo": trade.trade_no,
    }


def exec_status(trade: Trade) -> str:
    """ExecStatus: 0 cancelled (or never started: no successful first charge), 1 running, 2 finished."""
    executions = trade.period_executions
    if trade.period_cancelled or not executions or executions[0]["RtnCode"] != 1:
        return EXEC_CANCELLED
    successes = sum(1 for e in executions if e["RtnCode"] == 1)
    return EXEC_FINISHED if successes >= int(trade.params.get("ExecTimes") or 0) else EXEC_RUNNING


def period_info(trade: Trade) -> dict[str, Any]:
    """QueryCreditCardPeriodInfo's JSON answer (§7.3); the top-level card fields are charge #1's."""
    executions = trade.period_executions
    first: dict[str, Any] = executions[0] if executions else {}
    charged = [e for e in executions if e["RtnCode"] == 1]
    card = bool(first) and first["RtnCode"] == 1
    return {
        "MerchantID": trade.merchant_id,
        "MerchantTradeNo": trade.merchant_trade_no,
        "TradeNo": trade.trade_no,
        "RtnCode": first.get("RtnCode", 0),
        "PeriodType": trade.params.get("PeriodType", ""),
        "Frequency": int(trade.params.get("Frequency") or 0),
        "ExecTimes": int(trade.params.get("ExecTimes") or 0),
        "PeriodAmount": int(trade.params.get("PeriodAmount") or 0),
        "amount": first.get("amount", 0),
        "gwsr": first.get("gwsr", ""),
        "process_date": first.get("process_date", ""),
        "auth_code": first.get("auth_code", ""),
        "card4no": "2222" if card else "",
        "card6no": "431195" if card else "",
        "TotalSuccessTimes": len(charged),
        "TotalSuccessAmount": sum(int(e["amount"]) for e in charged),
        "ExecStatus": exec_status(trade),
        "ExecLog": [dict(e) for e in executions],
    }


def error_answer(key: str, **details: str) -> tuple[str, str]:
    """(RtnCode, RtnMsg) for a refusal key of :data:`PERIOD_ERRORS`."""
    code, text = PERIOD_ERRORS[key]
    return code, text.format(**details) if details else text


def successes(trade: Trade) -> int:
    """How many charges succeeded so far (TotalSuccessTimes)."""
    return sum(1 for e in trade.period_executions if e["RtnCode"] == 1)


def period_result(trade: Trade, execution_entry: dict[str, Any], *, rtn_msg: str) -> dict[str, str]:
    """PeriodReturnURL's fields (§5.5) for one later charge, unsigned (``Gwsr`` with a capital G)."""
    params = trade.params
    first = trade.period_executions[0] if trade.period_executions else {}
    return {
        "MerchantID": trade.merchant_id,
        "MerchantTradeNo": trade.merchant_trade_no,
        "StoreID": params.get("StoreID", ""),
        "RtnCode": str(execution_entry["RtnCode"]),
        "RtnMsg": rtn_msg,
        "PeriodType": params.get("PeriodType", ""),
        "Frequency": params.get("Frequency", ""),
        "ExecTimes": params.get("ExecTimes", ""),
        "Amount": str(execution_entry["amount"]),
        "Gwsr": str(execution_entry["gwsr"]),
        "ProcessDate": str(execution_entry["process_date"]),
        "AuthCode": str(execution_entry["auth_code"]),
        "FirstAuthAmount": str(first.get("amount", trade.amount)),
        "TotalSuccessTimes": str(successes(trade)),
        **{
            name: params.get(name, "")
            for name in ("CustomField1", "CustomField2", "CustomField3", "CustomField4")
        },
    }
