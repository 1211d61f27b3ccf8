"""Shared by ``serve`` and ``sandbox``: logging set-up and serving until Ctrl+C or SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stack import LocalStack


def setup_logging(quiet: bool) -> None:
    """Request lines and warnings on stderr (quiet: warnings only)."""
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(asctime)s %(message)s")


def run_until_stopped(stack: LocalStack) -> None:
    """Serve in this thread until SIGINT/SIGTERM, then stop callbacks and close the socket."""

    def _stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return, so it must run outside the serving thread.
        threading.Thread(target=stack.server.shutdown, daemon=True).start()

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        stack.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if stack.sandbox is not None:
            stack.sandbox.close()
        stack.server.server_close()
        print("stopped", flush=True)
