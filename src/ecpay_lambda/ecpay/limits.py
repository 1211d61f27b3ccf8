"""ECPay's business limits: per-method order amounts and periodic (定期定額) schedules.

Pure data and checks, free of pydantic: the config layer parses an amount-limits setting with
:meth:`AmountLimits.from_env_text`, the checkout model enforces both, and the sandbox can import
the same tables so it refuses what ECPay refuses.
"""

# Annotations evaluated, not postponed: the cold-start rule (docs/performance.md).

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import NamedTuple

from .errors import EcpayValidationError

MAX_INT = 2_147_483_647  # ECPay's "Int" parameters are 32-bit on its side

# Periodic limits per PeriodType: (Frequency max, ExecTimes max); Frequency starts at 1, ExecTimes
# at MIN_EXEC_TIMES. Protocol page §13.3 (ECPay stage's own errors 10100227/10100228: "PeriodType
# equal M, ExecTimes between 2 and 999", "... Y, ExecTimes between 2 and 99") corrects the older
# M <= 99 / Y <= 9 of the parameter doc.
PERIOD_LIMITS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {"D": (365, 999), "M": (12, 999), "Y": (1, 99)}
)
MIN_EXEC_TIMES = 2

Range = tuple[int, int]

# ChoosePayment spelling -> AmountLimits field. One table, so range_for, from_env_text and the
# messages agree on names.
_FIELD_OF_METHOD: Mapping[str, str] = MappingProxyType(
    {
        "Credit": "credit",
        "WebATM": "webatm",
        "ATM": "atm",
        "CVS": "cvs",
        "BARCODE": "barcode",
        "ApplePay": "apple_pay",
        "TWQR": "twqr",
        "BNPL": "bnpl",
        "WeiXin": "weixin",
        "DigitalPayment": "digital_payment",
    }
)
_METHOD_BY_LOWER: Mapping[str, str] = MappingProxyType({name.lower(): name for name in _FIELD_OF_METHOD})

# What ChoosePayment=ALL offers on a standard AIO contract. WeiXin (WeChat Pay) needs its own
# contract and has no documented limit, so it does not rescue an amount no other method accepts;
# DigitalPayment cannot be offered through ALL at all (IgnorePayment does not list it).
ALL_PAGE_METHODS = ("Credit", "WebATM", "ATM", "CVS", "BARCODE", "ApplePay", "TWQR", "BNPL")

_ENTRY = re.compile(r"\s*([A-Za-z]+)\s*=\s*([0-9][0-9_]*)\s*-\s*([0-9][0-9_]*)\s*")


def _twd(amount: int) -> str:
    return f"{amount:,}"


class AmountLimits(NamedTuple):
    """Inclusive (low, high) single-order amounts in TWD per payment method (protocol page §13.2).

    The defaults are ECPay's published figures for merchants; contracts can differ, so the config
    layer offers a setting parsed by :meth:`from_env_text`.
    """

    credit: Range = (5, 199_999)
    webatm: Range = (11, 49_999)
    atm: Range = (11, 49_999)
    cvs: Range = (33, 6_000)  # 超商代碼
    barcode: Range = (17, 20_000)  # 超商條碼
    # No separate figures were found for Apple Pay and TWQR: both are card-like and ECPay's fee
    # page lists them with credit cards, so they take Credit's range.
    apple_pay: Range = (5, 199_999)
    twqr: Range = (5, 199_999)
    # BNPL: at least 3,000 (ECPay error 10200105 below). The upper bound is an ASSUMPTION (no
    # figure in the stored sources): 200,000, the order of the BNPL providers' per-order caps.
    bnpl: Range = (3_000, 200_000)
    # No documented limits for these two: any whole positive amount ECPay's Int can carry.
    weixin: Range = (1, MAX_INT)
    digital_payment: Range = (1, MAX_INT)

    def range_for(self, method: str) -> Range:
        """(low, high) for a ChoosePayment value (``Credit``, ``CVS``...); ValueError for ALL/unknown."""
        field = _FIELD_OF_METHOD.get(method)
        if field is None:
            raise ValueError(f"no amount limits for payment method {method!r}")
        low, high = getattr(self, field)
        return (low, high)

    def accepts(self, method: str, amount: int) -> bool:
        """True when ``amount`` is within ``method``'s range."""
        low, high = self.range_for(method)
        return low <= amount <= high

    def check(self, method: str, amount: int, *, ignore: Iterable[str] = ()) -> None:
        """Raise ``EcpayValidationError("TotalAmount", ...)`` if ECPay would refuse ``amount`` by ``method``.

        ``ALL`` is refused only when no method of the ALL page (minus ``ignore``, the IgnorePayment
        list) accepts the amount; the others would be hidden from the shopper by ECPay anyway.
        """
        if method == "ALL":
            ignored = set(ignore)
            offered = [m for m in ALL_PAGE_METHODS if m not in ignored]
            if not offered or any(self.accepts(m, amount) for m in offered):
                return
            ranges = "; ".join(f"{m} {self._text(m)}" for m in offered)
            raise EcpayValidationError(
                "TotalAmount", f"no offered payment method accepts {_twd(amount)} TWD ({ranges})"
            )
        if not self.accepts(method, amount):
            raise EcpayValidationError("TotalAmount", f"{method} accepts {self._text(method)} TWD")

    def _text(self, method: str) -> str:
        low, high = self.range_for(method)
        if high >= MAX_INT:
            return f"{_twd(low)} or more"
        return f"{_twd(low)} to {_twd(high)}"

    @classmethod
    def from_env_text(cls, text: str, *, base: "AmountLimits | None" = None) -> "AmountLimits":
        """Parse ``"CVS=33-6000,Credit=5-199999"`` into limits: these methods overridden, others as ``base``.

        Method names as ECPay spells them (case-insensitive); ``,`` or ``;`` between entries;
        ``_`` allowed in numbers (``199_999``). Raises ValueError with a readable message.
        """
        limits = base if base is not None else cls()
        changes: dict[str, Range] = {}
        for raw in re.split(r"[,;]", text):
            if not raw.strip():
                continue
            match = _ENTRY.fullmatch(raw)
            if match is None:
                raise ValueError(
                    f"amount limit {raw.strip()[:40]!r} is not METHOD=LOW-HIGH (e.g. CVS=33-6000)"
                )
            name, low_text, high_text = match.groups()
            method = _METHOD_BY_LOWER.get(name.lower())
            if method is None:
                known = ", ".join(_FIELD_OF_METHOD)
                raise ValueError(f"amount limit for unknown payment method {name[:20]!r} (known: {known})")
            low, high = int(low_text), int(high_text)
            if not 1 <= low <= high <= MAX_INT:
                raise ValueError(f"amount limit {method}={low}-{high}: need 1 <= LOW <= HIGH <= {MAX_INT}")
            field = _FIELD_OF_METHOD[method]
            if field in changes:
                raise ValueError(f"amount limit for {method} given twice")
            changes[field] = (low, high)
        return limits._replace(**changes)

    def to_env_text(self) -> str:
        """The inverse of :meth:`from_env_text` (every method), e.g. for showing the effective setting."""
        return ",".join(f"{m}={low}-{high}" for m in _FIELD_OF_METHOD for low, high in [self.range_for(m)])


DEFAULT_AMOUNT_LIMITS = AmountLimits()


def check_period(period_type: str, frequency: int, exec_times: int) -> None:
    """Raise ``EcpayValidationError`` naming the field when a periodic schedule breaks §13.3's limits."""
    limits = PERIOD_LIMITS.get(period_type)
    if limits is None:
        raise EcpayValidationError("PeriodType", "must be D (day), M (month) or Y (year)")
    max_frequency, max_exec_times = limits
    if not 1 <= frequency <= max_frequency:
        raise EcpayValidationError(
            "Frequency", f"must be between 1 and {max_frequency} when PeriodType is {period_type}"
        )
    if not MIN_EXEC_TIMES <= exec_times <= max_exec_times:
        raise EcpayValidationError(
            "ExecTimes",
            f"must be between {MIN_EXEC_TIMES} and {max_exec_times} when PeriodType is {period_type}",
        )
