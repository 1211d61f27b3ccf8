"""ECPay environments (stage, production, or a given base URL such as the offline sandbox)."""

# Annotations evaluated, not postponed: the cold-start rule (docs/performance.md).

from typing import NamedTuple

STAGE_BASE_URL = "https://payment-stage.ecpay.com.tw"
PRODUCTION_BASE_URL = "https://payment.ecpay.com.tw"
# The merchant back office's host, which also serves the trade file (TradeNoAio, §7.7).
STAGE_VENDOR_URL = "https://vendor-stage.ecpay.com.tw"
PRODUCTION_VENDOR_URL = "https://vendor.ecpay.com.tw"
_VENDOR_OF_PAYMENT_HOST = {STAGE_BASE_URL: STAGE_VENDOR_URL, PRODUCTION_BASE_URL: PRODUCTION_VENDOR_URL}
# The e-invoice service (AES-JSON, its own merchant keys): a host of its own (§8, §13.6).
STAGE_EINVOICE_URL = "https://einvoice-stage.ecpay.com.tw"
PRODUCTION_EINVOICE_URL = "https://einvoice.ecpay.com.tw"


def einvoice_base_url(environment: str, base_url: str | None = None) -> str:
    """The e-invoice service's base URL: ``base_url`` when given (the sandbox), else stage/production."""
    if base_url:
        return base_url.rstrip("/")
    if environment == "stage":
        return STAGE_EINVOICE_URL
    if environment == "production":
        return PRODUCTION_EINVOICE_URL
    raise ValueError(f"environment {environment!r} needs an explicit base_url")


class Endpoints(NamedTuple):
    """The ECPay URLs this library calls, derived from the payment host base URL.

    ECPay's vendor host (trade file) is ``vendor_base_url`` when given, else the vendor host
    matching a stage/production payment host, else ``base_url`` itself (the offline sandbox
    serves both). A NamedTuple, not a dataclass: it is on the notification Lambda's import path
    (see ``records``).
    """

    base_url: str
    vendor_base_url: str = ""

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
    def vendor_url(self) -> str:
        """The vendor host base URL (``vendor[-stage].ecpay.com.tw``, or the sandbox's base URL)."""
        if self.vendor_base_url:
            return self.vendor_base_url.rstrip("/")
        return _VENDOR_OF_PAYMENT_HOST.get(self.base_url.lower(), self.base_url)

    @property
    def trade_no_aio(self) -> str:
        """PaymentMedia/TradeNoAio (the merchant trade file) on the vendor host."""
        return f"{self.vendor_url}/PaymentMedia/TradeNoAio"

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
