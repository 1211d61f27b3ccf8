"""ECPay times are Taiwan wall-clock whatever the host's zone."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import ecpay_lambda
from ecpay_lambda.ecpay.timezone import format_ecpay_datetime, parse_ecpay_datetime

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
