"""ECPay times are Taiwan wall-clock whatever the host's zone."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ecpay_lambda
from ecpay_lambda.ecpay.timezone import (
    ECPAY_DATE_FORMAT,
    ECPAY_DATETIME_FORMAT,
    format_ecpay_datetime,
    parse_ecpay_datetime,
    parse_naive,
)

SRC = str(Path(ecpay_lambda.__file__).resolve().parents[1])


def test_format_converts_to_taipei() -> None:
    assert format_ecpay_datetime(datetime(2024, 12, 31, 16, 30, 5, tzinfo=UTC)) == "2025/01/01 00:30:05"
    new_york = timezone(timedelta(hours=-5))
    assert format_ecpay_datetime(datetime(2024, 1, 1, 0, 0, tzinfo=new_york)) == "2024/01/01 13:00:00"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_ecpay_datetime(datetime(2024, 1, 1))


def test_parse_gives_utc() -> None:
    assert parse_ecpay_datetime("2025/01/01 00:30:05") == datetime(2024, 12, 31, 16, 30, 5, tzinfo=UTC)
    assert parse_ecpay_datetime("2025/01/01") == datetime(2024, 12, 31, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize("host_zone", ["UTC", "America/New_York", "Pacific/Kiritimati", "Asia/Taipei"])
def test_merchant_trade_date_ignores_the_host_zone(host_zone: str) -> None:
    script = (
        "import time; time.tzset()\n"
        "from datetime import UTC, datetime\n"
        "from ecpay_lambda.ecpay.checkout import merchant_trade_date\n"
        "from ecpay_lambda.ecpay.timezone import TAIPEI\n"
        "print(merchant_trade_date(datetime(2024, 6, 30, 20, 15, tzinfo=UTC)))\n"
        "fmt = '%Y/%m/%d %H:%M:%S'\n"
        "before = datetime.now(TAIPEI).strftime(fmt)\n"
        "now = merchant_trade_date()\n"
        "after = datetime.now(TAIPEI).strftime(fmt)\n"
        "print(before <= now <= after)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"TZ": host_zone, "PYTHONPATH": SRC},
    )
    assert result.stdout.splitlines() == ["2024/07/01 04:15:00", "True"]


# --- parse_naive: strptime's results, without importing _strptime for ECPay's own shapes ---------

_DIGITS = st.integers(min_value=0, max_value=99).map(lambda n: f"{n:02d}")


@settings(max_examples=400, deadline=None)
@given(
    year=st.sampled_from(["0000", "0999", "1900", "2023", "2024", "2026", "9999"]),
    month=_DIGITS,
    day=_DIGITS,
    clock=st.none() | st.tuples(_DIGITS, _DIGITS, _DIGITS),
)
def test_parse_naive_agrees_with_strptime_on_ecpay_shapes(
    year: str, month: str, day: str, clock: tuple[str, str, str] | None
) -> None:
    # Valid or not (month 13, 31 April, 29 February, hour 24, second 60...): same datetime or ValueError.
    text = f"{year}/{month}/{day}" + ("" if clock is None else " {}:{}:{}".format(*clock))
    fmt = ECPAY_DATE_FORMAT if clock is None else ECPAY_DATETIME_FORMAT
    assert _outcome(parse_naive, text, fmt) == _outcome(datetime.strptime, text, fmt)


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("2026/1/5 3:04:05", ECPAY_DATETIME_FORMAT),  # not zero-padded: strptime accepts it
        ("2026/11/27  12:00:00", ECPAY_DATETIME_FORMAT),  # two spaces
        ("2026/1/5", ECPAY_DATE_FORMAT),
        ("２０２６/11/27", ECPAY_DATE_FORMAT),  # full-width digits
        ("2026-11-27", ECPAY_DATE_FORMAT),
        ("2026/11/27 12:00", ECPAY_DATETIME_FORMAT),
    ],
)
def test_parse_naive_leaves_other_shapes_to_strptime(text: str, fmt: str) -> None:
    assert _outcome(parse_naive, text, fmt) == _outcome(datetime.strptime, text, fmt)


def test_parsing_ecpay_dates_does_not_import_strptime() -> None:
    code = (
        "import sys\n"
        "from ecpay_lambda.ecpay.timezone import parse_ecpay_datetime\n"
        "parse_ecpay_datetime('2026/11/27 12:00:00'); parse_ecpay_datetime('2026/11/30')\n"
        "print('_strptime' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _outcome(parse: Callable[[str, str], datetime], text: str, fmt: str) -> datetime | str:
    try:
        return parse(text, fmt)
    except ValueError:
        return "ValueError"
