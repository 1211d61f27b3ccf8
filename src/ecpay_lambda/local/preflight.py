"""Start-up checks: open the store ``STORE_URL`` names within seconds, or say why not in one line.

Without them ``serve`` with a broken ``STORE_URL`` printed "Listening" and then answered 500 to every
request, and ``audit`` against an unreachable database printed a 132-line traceback.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..wallet.port import WalletStore

STORE_CHECK_SECONDS = 15.0  # a bound for DNS, TCP and the drivers' own retries; not a measurement


class PreflightError(RuntimeError):
    """A start-up check failed; the message is one line, names the setting and holds no password."""


def redact_url(url: str) -> str:
    """A URL with any password replaced by ``***`` (safe to print)."""
    return re.sub(r"(//[^/:@]+):[^@/]*@", r"\1:***@", url)


def _password(url: str) -> str | None:
    found = re.search(r"//[^/:@]+:([^@/]*)@", url)
    return found.group(1) if found and found.group(1) else None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def describe_store_error(exc: BaseException) -> str:
    """A short reason for a store failure: the driver's own message, not the wrapper's SQL and links."""
    orig = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's exception
    if isinstance(orig, BaseException):
        exc = orig
    if isinstance(exc, ModuleNotFoundError):
        return f"its database driver is not installed ({exc.name})"
    text = _first_line(str(exc)) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _one_line(url: str, reason: str) -> str:
    secret = _password(url)
    if secret:
        reason = reason.replace(secret, "***")
    return f"STORE_URL={redact_url(url)}: {reason}"


def open_checked_store(url: str, *, write: bool = True, timeout: float = STORE_CHECK_SECONDS) -> WalletStore:
    """Open the store, create or migrate its schema, and (``write``) overwrite its health record.

    Raises :class:`PreflightError` when any step fails or does not finish within ``timeout`` seconds.
    """
    # Imported here: the adapter (and its driver) is loaded only for the store the URL names.
    from ..store import open_store  # noqa: PLC0415

    outcome: list[WalletStore | BaseException] = []

    def check() -> None:
        try:
            store = open_store(url)
            store.ensure_schema()
            if write:
                store.probe_write()
            outcome.append(store)
        except BaseException as exc:  # reported to the caller's thread, whatever it is
            outcome.append(exc)

    # A thread, so that a host that swallows packets cannot hold the command past the bound.
    worker = threading.Thread(target=check, name="store-check", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise PreflightError(_one_line(url, f"no answer within {timeout:.0f} s (is the host reachable?)"))
    result = outcome[0]
    if isinstance(result, BaseException):
        if isinstance(result, ValueError) and not hasattr(result, "orig"):
            # open_store's own refusal of the URL's form: its message says what is wrong.
            raise PreflightError(_one_line(url, _first_line(str(result)))) from None
        raise PreflightError(
            _one_line(url, f"cannot use the store: {describe_store_error(result)}")
        ) from None
    return result
