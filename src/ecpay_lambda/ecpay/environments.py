"""ECPay environments (stage, production, or a given base URL such as the offline sandbox)."""

# Annotations are evaluated, not postponed (no ``from __future__ import annotations``): typing.NamedTuple
# would otherwise compile each field's string annotation at import (cold start, see ``records``).

from typing import NamedTuple

STAGE_BASE_URL = "https://payment-stage.ecpay.com.tw"
PRODUCTION_BASE_URL = "https://payment.ecpay.com.tw"


class Endpoints(NamedTuple):
    """The ECPay URLs this library calls, all derived from one payment host base URL.

    A NamedTuple, not a dataclass: it is on the notification Lambda's import path (see ``records``).
    """

    base_url: str

    @classmethod
    def for_environment(cls, environment: str, base_url: str | None = None) -> "Endpoints":
        """``stage`` / ``production``, or ``sandbox`` (which needs ``base_url``) / any explicit base URL."""
        if base_url:
            return cls(base_url.rstrip("/"))
        if environment == "stage":
            return cls(STAGE_BASE_URL)
        if environment == "production":
            return cls(PRODUCTION_BASE_URL)
        raise ValueError(f"environment {environment!r} needs an explicit base_url")

    @property
    def checkout(self) -> str:
        """AioCheckOut/V5 (browser form POST)."""
        return f"{self.base_url}/Cashier/AioCheckOut/V5"

    @property
    def query_trade_info(self) -> str:
        """QueryTradeInfo/V5."""
        return f"{self.base_url}/Cashier/QueryTradeInfo/V5"

    @property
    def query_payment_info(self) -> str:
        """QueryPaymentInfo."""
        return f"{self.base_url}/Cashier/QueryPaymentInfo"

    @property
    def query_credit_card_period_info(self) -> str:
        """QueryCreditCardPeriodInfo (JSON answer)."""
        return f"{self.base_url}/Cashier/QueryCreditCardPeriodInfo"

    @property
    def credit_card_period_action(self) -> str:
        """CreditCardPeriodAction."""
        return f"{self.base_url}/Cashier/CreditCardPeriodAction"

    @property
    def do_action(self) -> str:
        """CreditDetail/DoAction (capture, refund, cancel, abandon)."""
        return f"{self.base_url}/CreditDetail/DoAction"

    @property
    def query_credit_trade(self) -> str:
        """CreditDetail/QueryTrade/V2 (JSON answer)."""
        return f"{self.base_url}/CreditDetail/QueryTrade/V2"
