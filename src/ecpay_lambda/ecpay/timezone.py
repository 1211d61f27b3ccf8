"""Taiwan wall-clock time, which every ECPay date field uses whatever the server's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

# Taiwan has kept UTC+8 without daylight saving since 1979, so a fixed offset is exact and avoids
# depending on the tzdata package, which the Lambda runtime does not ship.
TAIPEI = timezone(timedelta(hours=8), "Asia/Taipei")
ECPAY_DATETIME_FORMAT = "%Y/%m/%d %H:%M:%S"
ECPAY_DATE_FORMAT = "%Y/%m/%d"


def format_ecpay_datetime(moment: datetime) -> str:
    """Format an aware datetime as ECPay's ``yyyy/MM/dd HH:mm:ss`` in Taiwan time."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC recommended)")
    return moment.astimezone(TAIPEI).strftime(ECPAY_DATETIME_FORMAT)


def parse_ecpay_datetime(text: str) -> datetime:
    """Parse ``yyyy/MM/dd HH:mm:ss`` (or ``yyyy/MM/dd``) Taiwan time into an aware UTC datetime."""
    text = text.strip()
    fmt = ECPAY_DATETIME_FORMAT if " " in text else ECPAY_DATE_FORMAT
    return datetime.strptime(text, fmt).replace(tzinfo=TAIPEI).astimezone(UTC)
