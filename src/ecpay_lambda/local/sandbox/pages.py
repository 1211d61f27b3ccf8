"""HTML pages of the sandbox: ECPay-style error page, payment page, results, and a trade browser.

They share the dashboard's look (colours, type, buttons) and its formats: amounts as ``NT$1,500``, times
in Taiwan time, states and payment types in words (繁體中文 and English) rather than raw values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
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
# Readable names of the sandbox's trade states (TradeStatus values; an unknown one shows as it is).
STATUS_LABELS = {
    "created": "等待付款 Waiting for the shopper",
    "code_issued": "已取號，等待繳費 Code issued, not paid yet",
    "paid": "已付款 Paid",
    "failed": "付款失敗 Failed",
    "expired": "已逾期 Expired",
}
# The dashboard's palette and buttons (local/dashboard/styles.css), so both read as one product.
_STYLE = """
:root{--bg:#f4f6f5;--surface:#fff;--surface-2:#f8faf9;--border:#e2e7e5;--text:#1b2421;--muted:#5f6b67;
--brand:#00925a;--brand-strong:#007548;--brand-soft:#e6f4ee;--amber:#a15c00;--amber-soft:#fff4e0;
--red:#c0392b;--red-soft:#fdecea;--grey-soft:#eef1f0}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans TC","Noto Sans CJK TC","PingFang TC",
"Microsoft JhengHei",sans-serif;font-size:15px;line-height:1.5;margin:0;background:var(--bg);
color:var(--text)}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:.2rem .8rem;background:var(--surface);
border-bottom:1px solid var(--border);padding:.8rem 1.2rem}header b{font-size:1.05rem}
header b::before{content:"";display:inline-block;width:.7rem;height:.7rem;border-radius:3px;
background:var(--brand);margin-right:.5rem}header small{color:var(--muted)}
main{max-width:48rem;margin:1.2rem auto;padding:0 1rem}
h2,h3{margin:.2rem 0 .7rem;line-height:1.3}h2{font-size:1.15rem}h3{font-size:1rem}
.card{background:var(--surface);border:1px solid var(--border);border-radius:12px;padding:1rem 1.2rem;
margin-bottom:1rem;box-shadow:0 1px 2px rgba(16,24,20,.06)}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.4rem .5rem;border-bottom:1px solid var(--border);vertical-align:top;
font-size:.92rem}th{color:var(--muted);font-weight:600}.kv{table-layout:fixed}.kv th{width:38%}
.kv td{overflow-wrap:anywhere}
.list th{font-size:.8rem;white-space:nowrap}.list td{white-space:nowrap}.num{text-align:right}
button,a.button{display:inline-flex;align-items:center;justify-content:center;min-height:40px;font:inherit;
font-weight:600;font-size:.92rem;padding:.5rem 1rem;border-radius:8px;border:1px solid var(--brand);
background:var(--brand);color:#fff;cursor:pointer;margin:.2rem .3rem .2rem 0;text-decoration:none}
button:hover{background:var(--brand-strong)}
button.secondary,a.button{background:var(--brand-soft);color:var(--brand-strong);border-color:#bfe3d2}
button.secondary:hover,a.button:hover{background:#d5ede2}
button.danger{background:var(--surface);color:var(--red);border-color:#f0c4bf}
button.danger:hover{background:var(--red-soft)}form{display:inline}
a{color:var(--brand-strong);font-weight:600;text-decoration:underline;text-underline-offset:2px}
.error{border-left:5px solid var(--red)}.ok{border-left:5px solid var(--brand)}
.note{color:var(--muted);font-size:.88rem}
.state{display:inline-block;padding:.05rem .6rem;border-radius:999px;font-size:.85rem;font-weight:600;
background:var(--grey-soft);color:var(--muted)}
.state-paid{background:var(--brand-soft);color:var(--brand-strong)}
.state-created,.state-code_issued{background:var(--amber-soft);color:var(--amber)}
.state-failed{background:var(--red-soft);color:var(--red)}
code{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:.88em;
background:var(--grey-soft);padding:.1rem .3rem;border-radius:4px;word-break:break-all}
.big{font-size:1.4rem;letter-spacing:.06em}
pre{white-space:pre-wrap;word-break:break-all;font-size:.8rem;background:var(--surface-2);padding:.5rem;
border-radius:6px}
@media (max-width:600px){main{padding:0 .6rem}.card{padding:.9rem}.kv th{width:42%}
.big{font-size:1.15rem;letter-spacing:.03em}
button,a.button{width:100%;margin:.25rem 0}form{display:block}}
"""


def _page(title: str, body: str, *, head: str = "") -> str:
    return (
        f'<!doctype html><html lang="zh-Hant"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)} · ECPay sandbox</title><style>{_STYLE}</style>{head}</head><body>"
        f"<header><b>綠界 ECPay 模擬付款 · sandbox</b>"
        f"<small>本機離線模擬，不會有真實金流 · offline, no real money moves</small></header>"
        f"<main>{body}</main></body></html>"
    )


def _rows(pairs: Sequence[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in pairs)


def _money(amount: int) -> str:
    """The dashboard's amount format: ``NT$1,500``."""
    return f"NT${amount:,}"


def _status(status: object) -> str:
    """A trade state in words, as a badge."""
    value = str(status)
    return f'<span class="state state-{escape(value)}">{escape(STATUS_LABELS.get(value, value))}</span>'


def _payment(payment_type: str) -> str:
    """ECPay's payment type (``ATM_TAISHIN``, ``Credit_CreditCard``, or a ChoosePayment) in words."""
    method, _, sub = payment_type.partition("_")
    label = METHOD_LABELS.get(method) or METHOD_LABELS.get(payment_type)
    if label is None:
        return payment_type
    return f"{label} ({sub})" if sub and sub not in ("CreditCard", method) else label


def _taipei(moment: str) -> str:
    """An ISO-8601 time (UTC) as ECPay writes times: Taiwan wall-clock, to the second."""
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError:
        return moment
    return format_ecpay_datetime(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


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
    hint = ""
    if "CheckMacValue" in error.message:
        hint = (
            '<p class="note" id="checkmac-hint">找出檢查碼哪裡不同 To see where the CheckMacValue differs, '
            "compute it step by step with the same fields: "
            "<code>ecpay-lambda checkmac --explain Field=value ...</code></p>"
        )
    body = (
        f'<div class="card error" id="ecpay-error" data-rtn-code="{escape(error.code)}">'
        f'<h2>交易失敗 Transaction failed</h2><table class="kv">'
        f"{_rows([('訊息代碼 Message code', error.code), ('訊息說明 Message', error.message)])}"
        f"</table>{hint}</div>"
    )
    return _page(f"Error {error.code}", body)


def _summary(trade: Trade) -> str:
    return (
        _rows(
            [
                ("特店交易編號 MerchantTradeNo", trade.merchant_trade_no),
                ("綠界交易編號 TradeNo", trade.trade_no),
                ("商品 ItemName", trade.params.get("ItemName", "")),
                ("金額 Amount", _money(trade.amount)),
                ("付款方式 Payment", _payment(trade.payment_type or trade.choose_payment)),
            ]
        )
        + f"<tr><th>狀態 Status</th><td>{_status(trade.status)}</td></tr>"
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
        f'<table class="kv">{_summary(trade)}</table></div>'
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
            + _button(mtn, "pay", f"付款 Pay {_money(trade.amount)}")
            + _button(mtn, "fail", "付款失敗 Decline", css="danger")
        )
    elif trade.status is TradeStatus.CODE_ISSUED:
        back = _client_redirect_button(trade)
        actions = (
            f'<h3>繳費資訊 Payment code</h3><table class="kv">{_code_rows(trade)}</table>'
            '<p class="note">Pay later from the sandbox trade page, or now:</p>'
            + _button(mtn, "pay", "模擬消費者完成繳費 The shopper pays now")
            + back
        )
    else:
        actions = f"<p>這筆交易 This trade: {_status(trade.status)}</p>" + _back_link(trade)
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
    return f'<p><a id="client-back" class="button" href="{escape(url)}">返回商店 Back to the shop</a></p>'


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
        f'<table class="kv">{_summary(trade)}'
        f"{_rows([('RtnCode', trade.rtn_code), ('RtnMsg', trade.rtn_msg)])}</table>"
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
        f"<td>{escape(_payment(t.payment_type or t.choose_payment))}</td>"
        f'<td class="num">{_money(t.amount)}</td>'
        f"<td>{_status(t.status)}</td><td>{escape(format_ecpay_datetime(t.trade_date))}</td></tr>"
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
        clock + '<div class="card"><h2>交易 Trades</h2><div class="scroll"><table class="list"><tr>'
        '<th>MerchantTradeNo</th><th>付款方式 Payment</th><th class="num">金額 Amount</th>'
        f"<th>狀態 Status</th><th>建立時間 Created (Taipei)</th></tr>{rows}</table></div></div>"
        f'<div class="card"><h2>設定 Settings</h2><pre>{escape(json.dumps(settings, indent=1))}</pre>{toggle}'
        '<p class="note">JSON control API: <code>/sandbox/api/trades</code>, '
        "<code>/sandbox/api/trades/{MerchantTradeNo}</code>, <code>/sandbox/api/settings</code></p></div>"
        '<p class="note"><a href="/sandbox/invoices">電子發票 E-invoices</a></p>'
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
        f'<div class="card" id="trade" data-status="{escape(str(trade.status))}">'
        f'<table class="kv">{_summary(trade)}'
    ]
    parts.append(_code_rows(trade))
    parts.append(
        _rows(
            [
                ("已退款 Refunded", _money(trade.refunded_amount)),
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
        f"<tr><td>{a.series}.{a.attempt}</td><td>{escape(a.kind)}</td><td>{escape(_taipei(a.at))}</td>"
        f"<td>{'dropped' if a.dropped else escape(_answer(a))}</td>"
        f"<td><code>{escape(a.body[:80])}</code></td><td>{'✔' if a.ok else '✘'}</td></tr>"
        for a in trade.callbacks
    )
    parts.append(
        '<div class="card"><h3>通知 Callbacks</h3><div class="scroll"><table class="list"><tr><th>#</th>'
        "<th>Kind</th><th>時間 At (Taipei)</th><th>HTTP</th>"
        f"<th>Answer</th><th>OK</th></tr>{attempts}</table></div></div>"
    )
    events = "".join(
        f"<tr><td>{escape(_taipei(e['at']))}</td><td>{escape(e['event'])}</td></tr>" for e in trade.events
    )
    parts.append(f'<div class="card"><h3>紀錄 History (Taipei)</h3><table class="kv">{events}</table></div>')
    parts.append('<p class="note"><a href="/sandbox/">All sandbox trades</a></p>')
    return _page(f"Trade {mtn}", "".join(parts))
