"""Local mode's invoice worker (issue 13): the invoice job every few seconds, in the background of ``serve``.

On AWS the scheduled function runs the same job (``api/scheduled.py``). Invoices are never issued on
the notification's ``1|OK`` path: a paid deposit is marked ``pending`` with its credit, and this worker
issues it moments later. ``INVOICE_WORKER_SECONDS`` sets the pause between runs (default 3; ``0`` turns
the worker off, so pending invoices wait for ``ecpay-lambda invoices`` — how the tests simulate a crash
between the credit and the invoice).
"""

from __future__ import annotations

import logging
import os
import threading
import time

DEFAULT_INTERVAL = 3.0

logger = logging.getLogger("ecpay_lambda.local.invoice_worker")


def worker_interval(env: dict[str, str] | None = None) -> float:
    """Seconds between runs from ``INVOICE_WORKER_SECONDS`` (0: no worker); raises ValueError if malformed."""
    text = ((env if env is not None else os.environ).get("INVOICE_WORKER_SECONDS") or "").strip()
    if not text:
        return DEFAULT_INTERVAL
    seconds = float(text)
    if not 0 <= seconds <= 3600:
        raise ValueError("INVOICE_WORKER_SECONDS must be between 0 and 3600")
    return seconds


class InvoiceWorker:
    """A daemon thread that runs the invoice job, then waits ``interval`` seconds, until stopped."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="invoice-worker", daemon=True)

    def start(self) -> InvoiceWorker:
        """Start the thread; returns self."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and wait for it (a run in progress finishes first)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run_once(self) -> None:
        """One run of the job (nothing when invoicing is off); errors are logged, never raised."""
        from ..api.invoicing import get_invoice_service  # noqa: PLC0415 - settings are set by now

        try:
            job = get_invoice_service()
            if job is None:
                return
            report = job.run(limit=50, deadline=time.monotonic() + max(self.interval * 5, 10.0))
            if report.examined:
                logger.info("invoice job: %s", report.to_dict())
        except Exception:  # the next run tries again; a person sees it in the log
            logger.exception("invoice job failed")
        finally:
            self.runs += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval)


def start_invoice_worker(env: dict[str, str] | None = None) -> InvoiceWorker | None:
    """Start the worker when invoicing is on and the interval is not 0; None otherwise."""
    from ..config import load_settings  # noqa: PLC0415

    interval = worker_interval(env)
    if interval <= 0 or load_settings().invoicing is None:
        return None
    return InvoiceWorker(interval).start()
