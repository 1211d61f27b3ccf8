"""Server-to-server ECPay client: QueryTradeInfo, QueryPaymentInfo, DoAction and friends."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from .credentials import MerchantCredentials
from .environments import Endpoints
from .transport import Transport


@dataclass(frozen=True)
class TradeInfo:
    """A verified QueryTradeInfo/V5 answer."""

    merchant_trade_no: str
    trade_no: str
    trade_status: str  # "0" unpaid, "1" paid, "10200095" failed/never paid, "10200047" not found, ...
    trade_amt: int
    payment_type: str
    payment_date: datetime | None  # UTC
    simulate_paid: bool  # from NeedExtraPaidInfo/SimulatePaid when present, else False
    fields: Mapping[str, str] = field(repr=False)

    @property
    def is_paid(self) -> bool:
        """TradeStatus 1."""
        return self.trade_status == "1"


@dataclass(frozen=True)
class ActionResult:
    """A CreditDetail/DoAction answer."""

    rtn_code: str
    rtn_msg: str
    merchant_trade_no: str
    trade_no: str
    fields: Mapping[str, str] = field(repr=False)

    @property
    def ok(self) -> bool:
        """RtnCode 1."""
        return self.rtn_code == "1"


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
    ) -> None:
        self.credentials = credentials
        self.endpoints = endpoints
        self.timeout = timeout
        self._transport = transport
        self._clock = clock

    def query_trade_info(self, merchant_trade_no: str) -> TradeInfo:
        """QueryTradeInfo/V5 for one MerchantTradeNo."""
        raise NotImplementedError

    def do_action(
        self, merchant_trade_no: str, trade_no: str, action: str, total_amount: int
    ) -> ActionResult:
        """CreditDetail/DoAction with Action C, R, E or N."""
        raise NotImplementedError
