"""Taiwan wall-clock time, which every ECPay date field uses whatever the server's zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

# Taiwan has kept UTC+8 without daylight saving since 1979, so a fixed offset is exact and avoids
# depending on the tzdata package, which the Lambda runtime does not ship.
TAIPEI = timezone(timedelta(hours=8), "Asia/Taipei")
ECPAY_DATETIME_FORMAT = "%Y/%m/%d %H:%M:%S"
ECPAY_DATE_FORMAT = "%Y/%m/%d"

# The exact shapes ECPay sends (zero-padded ASCII digits). These are read directly; anything else
# goes to datetime.strptime, whose rules decide as before. Why: the first strptime call imports
# _strptime (locale tables) and compiles the format's regex, about 1 ms, for dates that never need it.
_DATETIME_SHAPE = re.compile(r"([0-9]{4})/([0-9]{2})/([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
_DATE_SHAPE = re.compile(r"([0-9]{4})/([0-9]{2})/([0-9]{2})")


def format_ecpay_datetime(moment: datetime) -> str:
    """Format an aware datetime as ECPay's ``yyyy/MM/dd HH:mm:ss`` in Taiwan time."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC recommended)")
    return moment.astimezone(TAIPEI).strftime(ECPAY_DATETIME_FORMAT)


def parse_naive(text: str, fmt: str) -> datetime:
    """``datetime.strptime(text, fmt)`` for ``ECPAY_DATETIME_FORMAT`` / ``ECPAY_DATE_FORMAT``.

    Same results and the same ``ValueError`` for invalid values (month 13, 31 April...): on the
    zero-padded shapes strptime's patterns accept exactly these digits and leave the range checks
    to ``datetime``, as here.
    """
    shapes = {ECPAY_DATETIME_FORMAT: _DATETIME_SHAPE, ECPAY_DATE_FORMAT: _DATE_SHAPE}
    shape = shapes.get(fmt)
    match = shape.fullmatch(text) if shape is not None else None
    if match is None:
        return datetime.strptime(text, fmt)
    year, month, day, *clock = (int(group) for group in match.groups())
    hour, minute, second = clock or (0, 0, 0)
    return datetime(year, month, day, hour, minute, second)


def parse_ecpay_datetime(text: str) -> datetime:
    """Parse ``yyyy/MM/dd HH:mm:ss`` (or ``yyyy/MM/dd``) Taiwan time into an aware UTC datetime."""
    text = text.strip()
    fmt = ECPAY_DATETIME_FORMAT if " " in text else ECPAY_DATE_FORMAT
    return parse_naive(text, fmt).replace(tzinfo=TAIPEI).astimezone(UTC)
