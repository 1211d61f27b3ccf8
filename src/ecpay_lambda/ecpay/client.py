"""Server-to-server ECPay client: QueryTradeInfo, QueryPaymentInfo, DoAction and friends."""

# Annotations evaluated, not postponed: the cold-start rule (docs/performance.md).

import json
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import date, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

from .checkmac import check_mac_value, verify_check_mac_value
from .credentials import MerchantCredentials
from .environments import Endpoints
from .errors import (
    EcpayValidationError,
    NotificationError,
    RateLimitedError,
    RejectedError,
    ResponseError,
    TransportError,
)
from .notifications import (
    NO_EXTRA_PAID_INFO,
    ExtraPaidInfo,
    PaymentInfoNotice,
    payment_info_from_fields,
    simulate_paid_flag,
)
from .records import repr_without
from .timezone import parse_ecpay_datetime
from .transport import Transport, UrllibTransport

if TYPE_CHECKING:
    # Only for annotations: the trade file parser (csv) is imported when a file is downloaded.
    from .statement import StatementFile

_TRADE_NO = re.compile(r"[A-Za-z0-9_]{1,20}")
_PLATFORM_ID = re.compile(r"[A-Za-z0-9]{1,10}")
_INTEGER = re.compile(r"-?[0-9]+")
_PIPE_ANSWER = re.compile(r"(-?[0-9]+)\|(.*)", re.DOTALL)
_KV_ANSWER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=[^\r\n]*")
DO_ACTIONS = frozenset({"C", "R", "E", "N"})
PERIOD_ACTIONS = frozenset({"ReAuth", "Cancel"})
# Left out of the answers' reprs (and so of logs): the raw field set and the extra-paid-info block.
_HIDDEN = frozenset({"fields", "extra"})

# The answers are NamedTuples, not dataclasses: this module is on the notification Lambda's import
# path (the paid cross-check), where a dataclass costs ~1 ms to define (see ``records``).


class TradeInfo(NamedTuple):
    """A verified QueryTradeInfo/V5 answer."""

    merchant_trade_no: str
    trade_no: str
    trade_status: str  # "0" unpaid, "1" paid, "10200095" failed/never paid, "10200047" not found, ...
    trade_amt: int
    payment_type: str
    payment_date: datetime | None  # UTC
    simulate_paid: bool  # SimulatePaid other than exactly "0" when present; absent = not simulated
    fields: Mapping[str, str]  # left out of repr
    trade_date: datetime | None = None  # UTC
    item_name: str = ""
    handling_charge: str = ""  # may be decimal; kept as sent
    payment_type_charge_fee: str = ""
    store_id: str = ""
    custom_fields: tuple[str, str, str, str] = ("", "", "", "")
    extra: ExtraPaidInfo = NO_EXTRA_PAID_INFO  # left out of repr

    @property
    def is_paid(self) -> bool:
        """TradeStatus 1."""
        return self.trade_status == "1"

    def __repr__(self) -> str:
        return repr_without(self, _HIDDEN)


class ActionResult(NamedTuple):
    """A CreditDetail/DoAction (or CreditCardPeriodAction) answer."""

    rtn_code: str
    rtn_msg: str
    merchant_trade_no: str
    trade_no: str
    fields: Mapping[str, str]  # left out of repr
    signed: bool = False  # True when the answer carried a CheckMacValue (which was then verified)

    @property
    def ok(self) -> bool:
        """RtnCode 1."""
        return self.rtn_code == "1"

    def __repr__(self) -> str:
        return repr_without(self, _HIDDEN)


class PeriodExecution(NamedTuple):
    """One attempt of a periodic (定期定額) order, from QueryCreditCardPeriodInfo's ExecLog."""

    rtn_code: str
    amount: int | None
    gwsr: str
    process_date: datetime | None  # UTC
    auth_code: str
    trade_no: str
    fields: Mapping[str, object]  # left out of repr

    @property
    def ok(self) -> bool:
        """RtnCode 1."""
        return self.rtn_code == "1"

    def __repr__(self) -> str:
        return repr_without(self, _HIDDEN)


class PeriodInfo(NamedTuple):
    """A QueryCreditCardPeriodInfo answer (JSON, not signed by ECPay)."""

    merchant_trade_no: str
    trade_no: str
    rtn_code: str
    exec_status: str  # "0" cancelled, "1" running, "2" finished
    period_type: str
    frequency: int | None
    exec_times: int | None
    period_amount: int | None
    total_success_times: int | None
    total_success_amount: int | None
    executions: tuple[PeriodExecution, ...]
    fields: Mapping[str, object]  # left out of repr

    def __repr__(self) -> str:
        return repr_without(self, _HIDDEN)


class CreditTradeDetail(NamedTuple):
    """A CreditDetail/QueryTrade/V2 answer (JSON, not signed by ECPay)."""

    rtn_msg: str
    trade_id: str
    amount: int | None
    clsamt: int | None  # captured amount
    authtime: str
    status: str  # e.g. 已授權 (authorised), 要關帳 (capture requested), 已關帳 (captured), 已退款
    close_data: tuple[Mapping[str, object], ...]
    fields: Mapping[str, object]  # left out of repr

    def __repr__(self) -> str:
        return repr_without(self, _HIDDEN)


# --- answer parsing (module level so the sandbox and tests can use the same rules) ---------------


def parse_raw_pairs(text: str) -> dict[str, str]:
    """Split a QueryTradeInfo-style answer: ``&`` then the first ``=``, with no decoding at all.

    These answers are not form-encoded: a ``+`` is a plus and a space is a space.
    """
    text = text.removeprefix("\ufeff").strip("\r\n")
    fields: dict[str, str] = {}
    for piece in text.split("&"):
        if not piece:
            continue
        if "=" not in piece:
            raise ResponseError("malformed answer: a field has no '='")
        name, value = piece.split("=", 1)
        if name in fields:
            raise ResponseError(f"malformed answer: field {name[:40]!r} appears more than once")
        fields[name] = value
    if not fields:
        raise ResponseError("empty answer")
    return fields


def parse_form_pairs(text: str) -> dict[str, str]:
    """Split a form-encoded answer (DoAction, CreditCardPeriodAction): ``+`` and ``%XX`` decoded."""
    raw = parse_raw_pairs(text)
    try:
        return {
            urllib.parse.unquote_plus(name, errors="strict"): urllib.parse.unquote_plus(
                value, errors="strict"
            )
            for name, value in raw.items()
        }
    except UnicodeDecodeError:
        raise ResponseError("malformed answer: a percent-encoded value is not UTF-8") from None


def _unquote_plus(text: str) -> str:
    return urllib.parse.unquote_plus(text, encoding="utf-8", errors="strict")


def _percent_decoded(fields: Mapping[str, str]) -> dict[str, str] | None:
    try:
        return {name: urllib.parse.unquote(value, errors="strict") for name, value in fields.items()}
    except UnicodeDecodeError:
        return None


def _json_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _json_int(value: object) -> int | None:
    text = _json_text(value).strip()
    return int(text) if _INTEGER.fullmatch(text) else None


def _json_datetime(value: object) -> datetime | None:
    text = _json_text(value).strip()
    if not text:
        return None
    try:
        return parse_ecpay_datetime(text)
    except ValueError:
        return None


def _optional_datetime(fields: Mapping[str, str], name: str) -> datetime | None:
    value = fields.get(name, "").strip()
    if not value:
        return None
    try:
        return parse_ecpay_datetime(value)
    except ValueError:
        raise ResponseError(f"{name} is not a date: {value[:40]!r}") from None


def _custom_fields(fields: Mapping[str, str]) -> tuple[str, str, str, str]:
    return (
        fields.get("CustomField1", ""),
        fields.get("CustomField2", ""),
        fields.get("CustomField3", ""),
        fields.get("CustomField4", ""),
    )


class EcpayClient:
    """Calls ECPay's query and action APIs through an injectable transport, verifying signed answers."""

    def __init__(
        self,
        credentials: MerchantCredentials,
        endpoints: Endpoints,
        *,
        transport: Transport | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] | None = None,
        platform_id: str | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        if platform_id is not None and not _PLATFORM_ID.fullmatch(platform_id):
            raise EcpayValidationError("PlatformID", "must be 1 to 10 letters or digits")
        self.credentials = credentials
        self.endpoints = endpoints
        self.timeout = timeout
        self.platform_id = platform_id
        self._transport: Transport = transport if transport is not None else UrllibTransport()
        self._clock: Callable[[], float] = clock if clock is not None else time.time

    # --- plumbing ---------------------------------------------------------------------------

    def _timestamp(self) -> str:
        # Seconds since the epoch at send time; ECPay accepts it for about 3 minutes.
        return str(int(self._clock()))

    def _signed(self, params: Mapping[str, str]) -> dict[str, str]:
        fields = {"MerchantID": self.credentials.merchant_id, **params}
        if self.platform_id is not None:
            fields["PlatformID"] = self.platform_id
        fields["CheckMacValue"] = check_mac_value(fields, self.credentials.hash_key, self.credentials.hash_iv)
        return fields

    def _post(self, url: str, params: Mapping[str, str], endpoint: str) -> str:
        response = self._transport.post_form(url, self._signed(params), timeout=self.timeout)
        if response.status == 403:
            raise RateLimitedError(
                f"{endpoint}: ECPay answered HTTP 403 (query rate-limit lockout; back off about 30 minutes)"
            )
        if response.status != 200:
            raise TransportError(f"{endpoint}: ECPay answered HTTP {response.status}")
        try:
            return response.body.decode("utf-8")
        except UnicodeDecodeError:
            raise ResponseError(f"{endpoint}: answer is not UTF-8") from None

    def _verifies(self, fields: Mapping[str, str]) -> bool:
        return verify_check_mac_value(fields, self.credentials.hash_key, self.credentials.hash_iv)

    def _verified_raw(self, text: str, endpoint: str, merchant_trade_no: str) -> dict[str, str]:
        fields = parse_raw_pairs(text)
        if "CheckMacValue" not in fields:
            code = (fields.get("TradeStatus") or fields.get("RtnCode") or "").strip()
            if code and code != "1":
                raise RejectedError(code, fields.get("RtnMsg", "")[:200], endpoint)
            # An unsigned answer claiming success is exactly what must never be believed.
            raise ResponseError(f"{endpoint}: answer is not signed")
        if not self._verifies(fields):
            # The documented format is raw; should ECPay ever percent-encode a value, the decoded
            # set is tried too. Either way the MAC decides, so nothing unsigned gets through.
            decoded = _percent_decoded(fields) if "%" in text else None
            if decoded is None or not self._verifies(decoded):
                raise ResponseError(f"{endpoint}: the answer's CheckMacValue does not match")
            fields = decoded
        self._check_identity(fields, endpoint, merchant_trade_no)
        return fields

    def _check_identity(self, fields: Mapping[str, object], endpoint: str, merchant_trade_no: str) -> None:
        merchant_id = fields.get("MerchantID")
        if merchant_id is not None and _json_text(merchant_id) != self.credentials.merchant_id:
            raise ResponseError(f"{endpoint}: the answer is for another MerchantID")
        answered_no = fields.get("MerchantTradeNo")
        if answered_no is not None and _json_text(answered_no) != merchant_trade_no:
            raise ResponseError(f"{endpoint}: the answer is for another MerchantTradeNo")

    def _parse_action_answer(
        self, text: str, endpoint: str, merchant_trade_no: str, trade_no: str
    ) -> ActionResult:
        stripped = text.strip()
        pipe = _PIPE_ANSWER.fullmatch(stripped)
        if pipe is not None and "=" not in stripped:
            return ActionResult(
                rtn_code=pipe.group(1),
                rtn_msg=pipe.group(2),
                merchant_trade_no=merchant_trade_no,
                trade_no=trade_no,
                fields=MappingProxyType({"RtnCode": pipe.group(1), "RtnMsg": pipe.group(2)}),
            )
        if "=" not in stripped:
            raise ResponseError(f"{endpoint}: unrecognised answer")
        fields = parse_form_pairs(text)
        signed = "CheckMacValue" in fields
        if signed and not self._verifies(fields):
            raw = parse_raw_pairs(text)
            if not self._verifies(raw):
                raise ResponseError(f"{endpoint}: the answer's CheckMacValue does not match")
            fields = raw
        self._check_identity(fields, endpoint, merchant_trade_no)
        answered_trade_no = fields.get("TradeNo")
        if answered_trade_no is not None and trade_no and answered_trade_no != trade_no:
            raise ResponseError(f"{endpoint}: the answer is for another TradeNo")
        if "RtnCode" not in fields:
            raise ResponseError(f"{endpoint}: answer has no RtnCode")
        return ActionResult(
            rtn_code=fields["RtnCode"].strip(),
            rtn_msg=fields.get("RtnMsg", ""),
            merchant_trade_no=fields.get("MerchantTradeNo", merchant_trade_no),
            trade_no=fields.get("TradeNo", trade_no),
            fields=MappingProxyType(fields),
            signed=signed,
        )

    def _json_answer(self, text: str, endpoint: str) -> dict[str, object]:
        try:
            data = json.loads(text)
        except ValueError:
            # Errors from these endpoints may come back in the k=v format instead of JSON.
            if "=" in text:
                fields = parse_form_pairs(text)
                code = fields.get("RtnCode") or fields.get("TradeStatus")
                if code:
                    raise RejectedError(code, fields.get("RtnMsg", "")[:200], endpoint) from None
            raise ResponseError(f"{endpoint}: answer is not JSON") from None
        if not isinstance(data, dict):
            raise ResponseError(f"{endpoint}: answer is not a JSON object")
        return data

    # --- endpoints --------------------------------------------------------------------------

    def query_trade_info(self, merchant_trade_no: str) -> TradeInfo:
        """QueryTradeInfo/V5 for one MerchantTradeNo."""
        _check_trade_no("MerchantTradeNo", merchant_trade_no)
        endpoint = "QueryTradeInfo"
        text = self._post(
            self.endpoints.query_trade_info,
            {"MerchantTradeNo": merchant_trade_no, "TimeStamp": self._timestamp()},
            endpoint,
        )
        fields = self._verified_raw(text, endpoint, merchant_trade_no)
        for name in ("TradeStatus", "TradeAmt"):
            if name not in fields:
                raise ResponseError(f"{endpoint}: answer has no {name}")
        trade_amt = fields["TradeAmt"].strip()
        if not _INTEGER.fullmatch(trade_amt):
            raise ResponseError(f"{endpoint}: TradeAmt is not an integer")
        return TradeInfo(
            merchant_trade_no=fields.get("MerchantTradeNo", merchant_trade_no),
            trade_no=fields.get("TradeNo", ""),
            trade_status=fields["TradeStatus"].strip(),
            trade_amt=int(trade_amt),
            payment_type=fields.get("PaymentType", ""),
            payment_date=_optional_datetime(fields, "PaymentDate"),
            # Present only with NeedExtraPaidInfo (or for a simulation): absent means not simulated.
            simulate_paid=simulate_paid_flag(fields, required=False),
            fields=MappingProxyType(fields),
            trade_date=_optional_datetime(fields, "TradeDate"),
            item_name=fields.get("ItemName", ""),
            handling_charge=fields.get("HandlingCharge", ""),
            payment_type_charge_fee=fields.get("PaymentTypeChargeFee", ""),
            store_id=fields.get("StoreID", ""),
            custom_fields=_custom_fields(fields),
            extra=ExtraPaidInfo.from_fields(fields),
        )

    def query_payment_info(self, merchant_trade_no: str) -> PaymentInfoNotice:
        """QueryPaymentInfo: the ATM account / CVS code / barcodes of an unpaid offline order.

        The answer's RtnCode is ECPay's (``1`` on success per its English page, where the
        PaymentInfoURL notification uses ``2`` / ``10100073``).
        """
        _check_trade_no("MerchantTradeNo", merchant_trade_no)
        endpoint = "QueryPaymentInfo"
        text = self._post(
            self.endpoints.query_payment_info,
            {"MerchantTradeNo": merchant_trade_no, "TimeStamp": self._timestamp()},
            endpoint,
        )
        fields = self._verified_raw(text, endpoint, merchant_trade_no)
        try:
            return payment_info_from_fields(fields)
        except NotificationError as error:
            raise ResponseError(f"{endpoint}: {error.reason}") from None

    def do_action(
        self, merchant_trade_no: str, trade_no: str, action: str, total_amount: int
    ) -> ActionResult:
        """CreditDetail/DoAction with Action C, R, E or N."""
        _check_trade_no("MerchantTradeNo", merchant_trade_no)
        _check_trade_no("TradeNo", trade_no)
        if action not in DO_ACTIONS:
            raise EcpayValidationError("Action", "must be C (capture), R (refund), E (cancel) or N (abandon)")
        if isinstance(total_amount, bool) or not isinstance(total_amount, int) or total_amount < 1:
            raise EcpayValidationError("TotalAmount", "must be a positive integer")
        endpoint = "DoAction"
        text = self._post(
            self.endpoints.do_action,
            {
                "MerchantTradeNo": merchant_trade_no,
                "TradeNo": trade_no,
                "Action": action,
                "TotalAmount": str(total_amount),
            },
            endpoint,
        )
        return self._parse_action_answer(text, endpoint, merchant_trade_no, trade_no)

    def credit_card_period_action(self, merchant_trade_no: str, action: str) -> ActionResult:
        """CreditCardPeriodAction: ``ReAuth`` a failed periodic charge or ``Cancel`` future charges."""
        _check_trade_no("MerchantTradeNo", merchant_trade_no)
        if action not in PERIOD_ACTIONS:
            raise EcpayValidationError("Action", "must be ReAuth or Cancel")
        endpoint = "CreditCardPeriodAction"
        text = self._post(
            self.endpoints.credit_card_period_action,
            {"MerchantTradeNo": merchant_trade_no, "Action": action, "TimeStamp": self._timestamp()},
            endpoint,
        )
        return self._parse_action_answer(text, endpoint, merchant_trade_no, "")

    def query_credit_card_period_info(self, merchant_trade_no: str) -> PeriodInfo:
        """QueryCreditCardPeriodInfo: the schedule and every attempt of a periodic order."""
        _check_trade_no("MerchantTradeNo", merchant_trade_no)
        endpoint = "QueryCreditCardPeriodInfo"
        text = self._post(
            self.endpoints.query_credit_card_period_info,
            {"MerchantTradeNo": merchant_trade_no, "TimeStamp": self._timestamp()},
            endpoint,
        )
        data = self._json_answer(text, endpoint)
        self._check_identity(data, endpoint, merchant_trade_no)
        log = data.get("ExecLog") or []
        if not isinstance(log, list) or not all(isinstance(entry, dict) for entry in log):
            raise ResponseError(f"{endpoint}: ExecLog is not a list of objects")
        executions = tuple(
            PeriodExecution(
                rtn_code=_json_text(entry.get("RtnCode")),
                amount=_json_int(entry.get("amount")),
                gwsr=_json_text(entry.get("gwsr")),
                process_date=_json_datetime(entry.get("process_date")),
                auth_code=_json_text(entry.get("auth_code")),
                trade_no=_json_text(entry.get("TradeNo")),
                fields=MappingProxyType(dict(entry)),
            )
            for entry in log
        )
        return PeriodInfo(
            merchant_trade_no=_json_text(data.get("MerchantTradeNo", merchant_trade_no)),
            trade_no=_json_text(data.get("TradeNo")),
            rtn_code=_json_text(data.get("RtnCode")),
            exec_status=_json_text(data.get("ExecStatus")),
            period_type=_json_text(data.get("PeriodType")),
            frequency=_json_int(data.get("Frequency")),
            exec_times=_json_int(data.get("ExecTimes")),
            period_amount=_json_int(data.get("PeriodAmount")),
            total_success_times=_json_int(data.get("TotalSuccessTimes")),
            total_success_amount=_json_int(data.get("TotalSuccessAmount")),
            executions=executions,
            fields=MappingProxyType(data),
        )

    def download_trade_file(
        self,
        begin: date,
        end: date,
        *,
        date_type: str = "2",
        payment_status: str | None = None,
        media_formatted: str = "1",
    ) -> "StatementFile":
        """PaymentMedia/TradeNoAio: the merchant's trade file for ``begin``..``end`` (Taipei dates).

        ``date_type`` ``2`` selects by payment date, ``4`` disbursement, ``6`` order date;
        ``payment_status`` ``0``/``1``/``2`` filters unpaid/paid/failed (None: all). At most 7 days
        per request and one request per minute (ECPay locks the merchant out for about 30 minutes
        otherwise: ``RateLimitedError``). An error answer raises ``RejectedError``; a file that
        cannot be read raises ``StatementError`` (a ``ResponseError``).
        """
        from .statement import (  # noqa: PLC0415 - csv only when a file is downloaded
            DATE_TYPES,
            PAYMENT_STATUSES,
            check_trade_file_range,
            decode_statement,
            parse_statement,
        )

        for name, value in (("BeginDate", begin), ("EndDate", end)):
            if isinstance(value, datetime) or not isinstance(value, date):
                raise EcpayValidationError(name, "must be a date (not a datetime)")
        check_trade_file_range(begin, end)
        if date_type not in DATE_TYPES:
            raise EcpayValidationError("DateType", f"must be one of {', '.join(DATE_TYPES)}")
        if payment_status is not None and payment_status not in PAYMENT_STATUSES:
            raise EcpayValidationError("PaymentStatus", "must be 0 (unpaid), 1 (paid) or 2 (failed)")
        if media_formatted not in ("0", "1"):
            raise EcpayValidationError("MediaFormated", "must be 0 (old layout) or 1 (new layout)")
        # Exactly §7.7's fields (note ECPay's spelling "MediaFormated"); no PlatformID or TimeStamp.
        fields = {
            "MerchantID": self.credentials.merchant_id,
            "DateType": date_type,
            "BeginDate": begin.isoformat(),
            "EndDate": end.isoformat(),
            "MediaFormated": media_formatted,
        }
        if payment_status is not None:
            fields["PaymentStatus"] = payment_status
        fields["CheckMacValue"] = check_mac_value(fields, self.credentials.hash_key, self.credentials.hash_iv)
        endpoint = "TradeNoAio"
        response = self._transport.post_form(self.endpoints.trade_no_aio, fields, timeout=self.timeout)
        if response.status == 403:
            raise RateLimitedError(
                f"{endpoint}: ECPay answered HTTP 403 (one trade file per minute; back off about 30 minutes)"
            )
        if response.status != 200:
            raise TransportError(f"{endpoint}: ECPay answered HTTP {response.status}")
        if not response.body.strip():
            raise ResponseError(f"{endpoint}: empty answer")
        text, _ = decode_statement(response.body)
        stripped = text.strip()
        if _KV_ANSWER.fullmatch(stripped):
            # An error comes back as one k=v line instead of a file.
            answer = parse_form_pairs(stripped)
            code = (answer.get("RtnCode") or answer.get("TradeStatus") or "error").strip()
            raise RejectedError(code, answer.get("RtnMsg", "")[:200], endpoint)
        if stripped[:1] == "<":
            raise ResponseError(f"{endpoint}: ECPay answered an HTML page instead of a file")
        return parse_statement(response.body)

    def query_credit_trade(
        self, credit_refund_id: int, credit_amount: int, credit_check_code: int
    ) -> CreditTradeDetail:
        """CreditDetail/QueryTrade/V2: one card trade's authorisation and capture state.

        ``credit_refund_id`` is the authorisation's ``gwsr``; ``credit_check_code`` is the
        merchant's check code from ECPay's vendor back office.
        """
        for name, value in (
            ("CreditRefundId", credit_refund_id),
            ("CreditAmount", credit_amount),
            ("CreditCheckCode", credit_check_code),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise EcpayValidationError(name, "must be a non-negative integer")
        endpoint = "CreditDetail/QueryTrade/V2"
        text = self._post(
            self.endpoints.query_credit_trade,
            {
                "CreditRefundId": str(credit_refund_id),
                "CreditAmount": str(credit_amount),
                "CreditCheckCode": str(credit_check_code),
            },
            endpoint,
        )
        data = self._json_answer(text, endpoint)
        rtn_value = data.get("RtnValue") or {}
        if not isinstance(rtn_value, dict):
            raise ResponseError(f"{endpoint}: RtnValue is not an object")
        close_data = rtn_value.get("close_data") or []
        if not isinstance(close_data, list) or not all(isinstance(entry, dict) for entry in close_data):
            raise ResponseError(f"{endpoint}: close_data is not a list of objects")
        return CreditTradeDetail(
            rtn_msg=_json_text(data.get("RtnMsg")),
            trade_id=_json_text(rtn_value.get("TradeID")),
            amount=_json_int(rtn_value.get("amount")),
            clsamt=_json_int(rtn_value.get("clsamt")),
            authtime=_json_text(rtn_value.get("authtime")),
            status=_json_text(rtn_value.get("status")),
            close_data=tuple(MappingProxyType(dict(entry)) for entry in close_data),
            fields=MappingProxyType(data),
        )


def _check_trade_no(name: str, value: str) -> None:
    if not isinstance(value, str) or not _TRADE_NO.fullmatch(value):
        raise EcpayValidationError(name, "must be 1 to 20 letters, digits or underscores")
