"""Server-to-server notifications: first delivery now, then retries on a (compressed) schedule until ``1|OK``.

ECPay re-sends a notification that was not answered exactly ``1|OK`` (up to 5 deliveries, every
5-15 minutes); locally the default gaps are 1, 2, 4 and 8 seconds. Every attempt is recorded with
the merchant's answer. A notification created while ``drop_callbacks`` is on is recorded as dropped
and never sent, not even by retries: that is what a lost notification looks like to the merchant.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

from .trades import CallbackAttempt

log = logging.getLogger(__name__)

OK_BODY = b"1|OK"
MAX_RECORDED_BODY = 1000


@dataclass
class Notification:
    """One notification to deliver until acknowledged (attempts share ``series``)."""

    trade_key: tuple[str, str]
    kind: str  # "return" | "payment_info" | "period_return"
    url: str
    fields: dict[str, str]  # unsigned
    series: int
    retry_rtn_msg: str | None = None  # ReturnURL re-deliveries say RtnMsg=paid
    delays: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    max_deliveries: int = 5
    timeout: float = 10.0
    attempts: int = field(default=0)

    def fields_for(self, attempt: int) -> dict[str, str]:
        """The unsigned fields of delivery number ``attempt``."""
        fields = dict(self.fields)
        if attempt > 1 and self.retry_rtn_msg is not None and "RtnMsg" in fields:
            fields["RtnMsg"] = self.retry_rtn_msg
        return fields


Sender = Callable[[str, dict[str, str], float], tuple[int, bytes]]
Signer = Callable[[dict[str, str]], dict[str, str]]
Recorder = Callable[[Notification, CallbackAttempt], None]


def post_form(url: str, fields: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """POST ``fields`` form-encoded as ECPay's servers do; returns (status, body)."""
    data = urlencode(fields).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked at checkout
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), bytes(response.read(64 * 1024))
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read(64 * 1024))


class CallbackDispatcher:
    """Delivers notifications: the first attempt in the caller's thread, retries in one worker thread."""

    def __init__(self, *, sign: Signer, record: Recorder, send: Sender = post_form) -> None:
        self._sign = sign
        self._record = record
        self._send = send
        self._queue: list[tuple[float, int, Notification]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="sandbox-callbacks", daemon=True)
        self._thread.start()

    def deliver(self, notification: Notification, *, drop: bool = False) -> CallbackAttempt:
        """Attempt delivery now; schedule retries unless acknowledged. ``drop`` records it unsent."""
        if drop:
            notification.attempts = 1
            attempt = CallbackAttempt(
                kind=notification.kind,
                url=notification.url,
                attempt=1,
                at=_now(),
                fields=self._sign(notification.fields_for(1)),
                dropped=True,
                series=notification.series,
            )
            self._record(notification, attempt)
            return attempt
        return self._attempt(notification)

    def resend(self, notification: Notification) -> CallbackAttempt:
        """One extra delivery now, as a re-delivery (no further retries scheduled)."""
        attempt_no = max(2, notification.attempts + 1)
        return self._attempt(notification, attempt_no=attempt_no, schedule=False)

    def _attempt(
        self, notification: Notification, *, attempt_no: int | None = None, schedule: bool = True
    ) -> CallbackAttempt:
        number = attempt_no or notification.attempts + 1
        notification.attempts = max(notification.attempts, number)
        fields = self._sign(notification.fields_for(number))
        attempt = CallbackAttempt(
            kind=notification.kind,
            url=notification.url,
            attempt=number,
            at=_now(),
            fields=fields,
            series=notification.series,
        )
        try:
            status, body = self._send(notification.url, fields, notification.timeout)
            attempt.status = status
            attempt.body = body[:MAX_RECORDED_BODY].decode("utf-8", errors="replace")
            attempt.ok = status == 200 and body == OK_BODY
        except (OSError, ValueError) as exc:
            attempt.error = f"{type(exc).__name__}: {exc}"
        self._record(notification, attempt)
        if schedule and not attempt.ok and number < notification.max_deliveries:
            index = min(number - 1, len(notification.delays) - 1)
            delay = notification.delays[index] if notification.delays else 0.0
            with self._cond:
                heapq.heappush(self._queue, (time.monotonic() + delay, next(self._counter), notification))
                self._cond.notify()
        return attempt

    def pending(self) -> int:
        """Notifications waiting for a retry."""
        with self._cond:
            return len(self._queue)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._queue or self._queue[0][0] > time.monotonic()):
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cond.wait(timeout)
                if self._closed:
                    return
                _, _, notification = heapq.heappop(self._queue)
            try:
                self._attempt(notification)
            except Exception:  # the worker must survive one bad delivery
                log.exception("callback retry failed")

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker; pending retries are abandoned."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)


def _now() -> str:
    return datetime.now(UTC).isoformat()
