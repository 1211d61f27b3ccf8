"""The tests' one way to pin a wallet's or the sandbox's time of day, whenever the suite runs.

ECPay's card trades change state at 20:15 Taipei and refuse DoAction until 20:30, so a test that runs on
the real clock pins its business time (``clock_offset_seconds`` for the sandbox, ``set_clock`` for the
wallet) at 10:00 Taipei today. The offset is then anywhere from about +10 h (just after midnight Taipei)
to -14 h (just before): a test that compares such a clock with ``datetime.now()`` fails at some hours of
the day (CI found two, just after midnight Taipei). Compare with the pinned clock instead.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ecpay_lambda.ecpay.timezone import TAIPEI


def daytime_offset(hour: int = 10, minute: int = 0) -> float:
    """Seconds that put a clock at ``hour:minute`` Taipei today (a sandbox's ``clock_offset_seconds``)."""
    now = datetime.now(UTC)
    target = now.astimezone(TAIPEI).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return (target - now).total_seconds()
