"""HTML pages of the sandbox: ECPay-style error page, payment page, results, and a trade browser."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape

from ...ecpay.timezone import format_ecpay_datetime
from .capture import STATUS_TEXT, CardState
from .messages import code_fields, is_offline
from .trades import CallbackAttempt, Trade, TradeStatus
from .validation import CheckoutError

METHOD_LABELS = {
    "Credit": "信用卡 Credit card",
    "ATM": "ATM 虛擬帳號 ATM transfer",
    "CVS": "超商代碼 Convenience-store code",
    "BARCODE": "超商條碼 Convenience-store barcode",
    "WebATM": "網路 ATM WebATM",
    "TWQR": "TWQR",
    "ApplePay": "Apple Pay",
    "BNPL": "無卡分期 BNPL",
    "WeiXin": "微信支付 WeChat Pay",
    "DigitalPayment": "電子錢包 e-wallet",
}
_STYLE = """
body{font-family:system-ui,-apple-system,"Noto Sans TC",sans-serif;margin:0;background:#f3f6f4;color:#1d2b24}
header{background:#00a051;color:#fff;padding:.8rem 1.2rem}header b{font-size:1.1rem}
header small{opacity:.85;margin-left:.6rem}main{max-width:46rem;margin:1.2rem auto;padding:0 1rem}
.card{background:#fff;border-radius:8px;padding:1rem 1.2rem;margin-bottom:1rem;box-shadow:0 1px 3px #0002}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.3rem .4rem;border-bottom:1px solid #e4e9e6;
vertical-align:top;font-size:.92rem}th{width:38%;color:#4a5c53;font-weight:600}
button{font:inherit;padding:.55rem 1rem;border-radius:6px;border:1px solid #00a051;background:#00a051;
color:#fff;cursor:pointer;margin:.2rem .3rem .2rem 0}button.secondary{background:#fff;color:#00753b}
button.danger{background:#fff;color:#b3261e;border-color:#b3261e}form{display:inline}
.error{border-left:6px solid #b3261e}.ok{border-left:6px solid #00a051}.note{color:#4a5c53;font-size:.88rem}
code{background:#eef3f0;padding:.1rem .3rem;border-radius:4px}.big{font-size:1.5rem;letter-spacing:.08em}
pre{white-space:pre-wrap;word-break:break-all;font-size:.8rem;background:#f6f8f7;padding:.5rem;border-radius:4px}
"""


def _page(title: str, body: str, *, head: str = "") -> str:
    return (
        f'<!doctype html><html lang="zh-Hant"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)} · ECPay sandbox</title><style>{_STYLE}</style>{head}</head><body>"
        f"<header><b>綠界 ECPay</b><small>offline sandbox — no real money moves</small></header>"
        f"<main>{body}</main></body></html>"
    )


def _rows(pairs: Sequence[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in pairs)


def _button(
    mtn: str, action: str, label: str, *, css: str = "", extra: Mapping[str, str] | None = None
) -> str:
    hidden = f'<input type="hidden" name="action" value="{escape(action)}">'
    for name, value in (extra or {}).items():
        hidden += f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
    cls = f' class="{css}"' if css else ""
    return (
        f'<form method="post" action="/sandbox/checkout/{escape(mtn)}">{hidden}'
        f'<button type="submit" name="do" value="{escape(action)}"{cls}>{escape(label)}</button></form>'
    )


def error_page(error: CheckoutError) -> str:
    """ECPay's checkout error page: the message code and text (HTTP 200, as ECPay answers)."""
    body = (
        f'<div class="card error" id="ecpay-error" data-rtn-code="{escape(error.code)}">'
        f"<h2>交易失敗 Transaction failed</h2><table>"
        f"{_rows([('訊息代碼 Message code', error.code), ('訊息說明 Message', error.message)])}"
        f"</table></div>"
    )
    return _page(f"Error {error.code}", body)


def _summary(trade: Trade) -> str:
    return _rows(
        [
            ("特店交易編號 MerchantTradeNo", trade.merchant_trade_no),
            ("綠界交易編號 TradeNo", trade.trade_no),
            ("商品 ItemName", trade.params.get("ItemName", "")),
            ("金額 Amount", f"NT$ {trade.amount:,}"),
            ("付款方式 Payment", trade.payment_type or trade.choose_payment),
            ("狀態 Status", str(trade.status)),
        ]
    )


def _code_rows(trade: Trade) -> str:
    codes = code_fields(trade)
    labels = {
        "BankCode": "銀行代碼 Bank code",
        "vAccount": "虛擬帳號 Virtual account",
        "PaymentNo": "繳費代碼 Payment code",
        "Barcode1": "條碼 Barcode 1",
        "Barcode2": "條碼 Barcode 2",
        "Barcode3": "條碼 Barcode 3",
        "ExpireDate": "繳費期限 Pay before",
    }
    return "".join(
        f"<tr><th>{escape(labels[k])}</th>"
        f'<td><code class="big" data-field="{escape(k)}">{escape(v)}</code></td></tr>'
        for k, v in codes.items()
        if v
    )


def checkout_page(trade: Trade, methods: Sequence[str], notice: str = "") -> str:
    """The payment page for the trade's state: choose a method, pay or fail, get a code, pay a code."""
    mtn = trade.merchant_trade_no
    parts = [
        f'<div class="card" id="trade" data-status="{escape(str(trade.status))}">'
        f"<table>{_summary(trade)}</table></div>"
    ]
    if notice:
        parts.append(f'<div class="card ok" id="notice">{escape(notice)}</div>')
    actions = ""
    if trade.status is TradeStatus.CREATED and trade.method is None:
        actions = "<h3>選擇付款方式 Choose a payment method</h3>" + "".join(
            _button(mtn, "choose", METHOD_LABELS.get(m, m), extra={"method": m}) for m in methods
        )
    elif trade.status is TradeStatus.CREATED and is_offline(trade.method):
        actions = (
            f"<h3>{escape(METHOD_LABELS.get(trade.method or '', ''))}</h3>"
            + _button(mtn, "issue-code", "取得繳費代碼 Get the payment code")
            + _button(mtn, "fail", "取號失敗 Fail", css="danger")
        )
    elif trade.status is TradeStatus.CREATED:
        card = (
            '<p class="note">Test card 4311-9522-2222-2222, any future expiry, CVV 222, 3-D code 1234 — '
            "the sandbox collects no card data.</p>"
            if trade.method == "Credit"
            else ""
        )
        actions = (
            f"<h3>{escape(METHOD_LABELS.get(trade.method or '', trade.method or ''))}</h3>{card}"
            + _button(mtn, "pay", f"付款 Pay NT$ {trade.amount:,}")
            + _button(mtn, "fail", "付款失敗 Decline", css="danger")
        )
    elif trade.status is TradeStatus.CODE_ISSUED:
        back = _client_redirect_button(trade)
        actions = (
            f"<h3>繳費資訊 Payment code</h3><table>{_code_rows(trade)}</table>"
            '<p class="note">Pay later from the sandbox trade page, or now:</p>'
            + _button(mtn, "pay", "模擬消費者完成繳費 The shopper pays now")
            + back
        )
    else:
        actions = f"<p>This trade is {escape(str(trade.status))}.</p>" + _back_link(trade)
    if trade.status in (TradeStatus.CREATED, TradeStatus.CODE_ISSUED):
        actions += (
            '<p class="note">Merchant back office: ReturnURL with SimulatePaid=1 '
            "(must never be credited).</p>"
            + _button(mtn, "simulate-paid", "模擬付款 Simulated payment notice", css="secondary")
        )
    parts.append(f'<div class="card">{actions}</div>')
    parts.append(f'<p class="note"><a href="/sandbox/trades/{escape(mtn)}">Sandbox trade record</a></p>')
    return _page("付款 Payment", "".join(parts))


def _client_redirect_button(trade: Trade) -> str:
    url = trade.params.get("ClientRedirectURL", "")
    if url:
        return (
            f'<form method="post" action="/sandbox/checkout/{escape(trade.merchant_trade_no)}">'
            '<input type="hidden" name="action" value="client-redirect">'
            '<button type="submit" class="secondary">返回商店 Back to the shop</button></form>'
        )
    return _back_link(trade)


def _back_link(trade: Trade) -> str:
    url = trade.params.get("ClientBackURL", "")
    if not url:
        return ""
    return f'<p><a id="client-back" href="{escape(url)}">返回商店 Back to the shop</a></p>'


def autopost_page(title: str, url: str, fields: Mapping[str, str], message: str) -> str:
    """A page that POSTs ``fields`` to ``url`` at once (the browser going back to the merchant)."""
    inputs = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items()
    )
    body = (
        f'<div class="card ok"><p>{escape(message)}</p>'
        f'<form id="autopost" method="post" action="{escape(url)}">{inputs}'
        '<button type="submit">返回商店 Back to the shop</button></form></div>'
        "<script>document.getElementById('autopost').submit()</script>"
    )
    return _page(title, body)


def result_page(trade: Trade) -> str:
    """Result after paying or failing, with the ClientBackURL link (no OrderResultURL was given)."""
    paid = trade.status is TradeStatus.PAID
    css = "ok" if paid else "error"
    title = "付款成功 Payment succeeded" if paid else "付款失敗 Payment failed"
    body = (
        f'<div class="card {css}" id="result" data-status="{escape(str(trade.status))}"><h2>{title}</h2>'
        f"<table>{_summary(trade)}{_rows([('RtnCode', trade.rtn_code), ('RtnMsg', trade.rtn_msg)])}</table>"
        f"{_back_link(trade)}</div>"
    )
    return _page(title, body)


def _answer(attempt: CallbackAttempt) -> str:
    return str(attempt.status) if attempt.status is not None else (attempt.error or "")


def index_page(trades: Sequence[Trade], settings: Mapping[str, object], now: datetime) -> str:
    """The sandbox's trade list, its clock (Taiwan time, with any offset) and settings."""
    rows = "".join(
        f'<tr><td><a href="/sandbox/trades/{escape(t.merchant_trade_no)}">'
        f"{escape(t.merchant_trade_no)}</a></td>"
        f"<td>{escape(t.payment_type or t.choose_payment)}</td><td>{t.amount:,}</td>"
        f"<td>{escape(str(t.status))}</td><td>{escape(format_ecpay_datetime(t.trade_date))}</td></tr>"
        for t in trades[:200]
    )
    drop = bool(settings.get("drop_callbacks"))
    toggle = (
        '<form method="post" action="/sandbox/settings">'
        f'<input type="hidden" name="drop_callbacks" value="{"false" if drop else "true"}">'
        f'<button type="submit" class="{"danger" if not drop else ""}">'
        f"{'Deliver callbacks again' if drop else 'Drop callbacks (simulate lost notifications)'}"
        "</button></form>"
    )
    offset = settings.get("clock_offset_seconds") or 0
    clock = (
        f'<div class="card" id="sandbox-clock"><b>Sandbox time (Taiwan)</b> '
        f'<code data-now="{escape(now.isoformat())}">{escape(format_ecpay_datetime(now))}</code>'
        + (f' <span class="note">clock moved by {escape(str(offset))} s</span>' if offset else "")
        + '<p class="note">Card trades close daily at 20:15 (已授權 → 要關帳 → 已關帳); '
        "no DoAction from 20:15 to 20:30.</p></div>"
    )
    body = (
        clock + '<div class="card"><h2>Trades</h2><table><tr><th>MerchantTradeNo</th><th>Type</th>'
        f"<th>Amount</th><th>Status</th><th>Created (Taiwan)</th></tr>{rows}</table></div>"
        f'<div class="card"><h2>Settings</h2><pre>{escape(json.dumps(settings, indent=1))}</pre>{toggle}'
        '<p class="note">JSON control API: <code>/sandbox/api/trades</code>, '
        "<code>/sandbox/api/trades/{MerchantTradeNo}</code>, <code>/sandbox/api/settings</code></p></div>"
    )
    return _page("Sandbox", body)


def _card_section(trade: Trade, extra: Mapping[str, str]) -> str:
    """Close-now buttons, the DoAction history and QueryTrade/V2's close_data of a card trade."""
    if trade.card_state is None:
        return ""
    mtn = trade.merchant_trade_no
    buttons = ""
    if trade.card_state is CardState.AUTHORISED:
        buttons += _button(
            mtn,
            "close",
            "要關帳 Request capture now",
            css="secondary",
            extra={**extra, "state": "to_be_closed"},
        )
    if trade.card_state in (CardState.AUTHORISED, CardState.TO_BE_CLOSED):
        buttons += _button(mtn, "close", "已關帳 Close now", extra={**extra, "state": "closed"})
    actions = "".join(
        f"<tr><td>{escape(str(a.get('at', '')))}</td><td>{escape(str(a.get('action', '')))}</td>"
        f"<td>{escape(str(a.get('amount', '')))}</td>"
        f"<td>{escape(str(a.get('state_before')))} → {escape(str(a.get('state_after')))}</td>"
        f"<td>{escape(str(a.get('rtn_code', '')))} {escape(str(a.get('rtn_msg', '')))}</td></tr>"
        for a in trade.actions
    )
    closes = "".join(
        f"<tr><td>{escape(str(c['sno']))}</td><td>{escape(str(c['status']))}</td>"
        f"<td>{escape(str(c['amount']))}</td><td>{escape(str(c['datetime']))}</td></tr>"
        for c in trade.close_data
    )
    return (
        f'<div class="card" id="card"><h3>刷卡 Card capture</h3>{buttons}'
        "<h4>DoAction</h4><table><tr><th>At (UTC)</th><th>Action</th><th>Amount</th><th>State</th>"
        f"<th>Answer</th></tr>{actions}</table>"
        "<h4>close_data</h4><table><tr><th>sno</th><th>status</th><th>amount</th><th>datetime</th></tr>"
        f"{closes}</table></div>"
    )


def trade_page(trade: Trade, notice: str = "") -> str:
    """One trade: fields, codes, actions (pay later, fail, simulate, expire) and every callback attempt."""
    mtn = trade.merchant_trade_no
    extra = {"from": "record"}
    parts = [
        f'<div class="card" id="trade" data-status="{escape(str(trade.status))}"><table>{_summary(trade)}'
    ]
    parts.append(_code_rows(trade))
    parts.append(
        _rows(
            [
                ("Refunded", f"NT$ {trade.refunded_amount:,}"),
                ("RtnCode / RtnMsg", f"{trade.rtn_code} {trade.rtn_msg}"),
            ]
        )
    )
    if trade.card_state is not None:
        state = escape(str(trade.card_state))
        parts.append(
            f'<tr><th>刷卡狀態 Card state</th><td id="card-state" data-card-state="{state}">'
            f"{escape(STATUS_TEXT[trade.card_state])} ({state})</td></tr>" + _rows([("gwsr", trade.gwsr)])
        )
    parts.append("</table></div>")
    if notice:
        parts.append(f'<div class="card ok" id="notice">{escape(notice)}</div>')
    if trade.status in (TradeStatus.CREATED, TradeStatus.CODE_ISSUED):
        buttons = _button(mtn, "pay", "Pay now", extra=extra)
        if trade.status is TradeStatus.CREATED and (trade.method is None or is_offline(trade.method)):
            buttons += _button(mtn, "issue-code", "Issue code", css="secondary", extra=extra)
        buttons += _button(mtn, "simulate-paid", "Simulated payment notice", css="secondary", extra=extra)
        buttons += _button(mtn, "fail", "Fail", css="danger", extra=extra)
        buttons += _button(mtn, "expire", "Expire", css="danger", extra=extra)
        parts.append(f'<div class="card">{buttons}</div>')
    parts.append(_card_section(trade, extra))
    if any(a.kind == "return" for a in trade.callbacks):
        parts.append(
            '<div class="card">'
            + _button(mtn, "resend", "Resend ReturnURL notification", css="secondary", extra=extra)
            + "</div>"
        )
    attempts = "".join(
        f"<tr><td>{a.series}.{a.attempt}</td><td>{escape(a.kind)}</td><td>{escape(a.at)}</td>"
        f"<td>{'dropped' if a.dropped else escape(_answer(a))}</td>"
        f"<td><code>{escape(a.body[:80])}</code></td><td>{'✔' if a.ok else '✘'}</td></tr>"
        for a in trade.callbacks
    )
    parts.append(
        '<div class="card"><h3>Callbacks</h3><table><tr><th>#</th><th>Kind</th><th>At (UTC)</th><th>HTTP</th>'
        f"<th>Answer</th><th>OK</th></tr>{attempts}</table></div>"
    )
    events = "".join(
        f"<tr><td>{escape(e['at'])}</td><td>{escape(e['event'])}</td></tr>" for e in trade.events
    )
    parts.append(f'<div class="card"><h3>History</h3><table>{events}</table></div>')
    parts.append('<p class="note"><a href="/sandbox/">All sandbox trades</a></p>')
    return _page(f"Trade {mtn}", "".join(parts))
