"""The one retry-on-conflict loop of the wallet's use cases.

A use case reads, decides (a pure function) and writes one conditional ``AtomicWrite``. When another
writer changed a transaction in between (``VersionConflict``: DynamoDB's conditions, or a SQL
compare-and-set), the use case is simply run again on fresh reads; nothing was written.
"""

from collections.abc import Callable
from typing import TypeVar

from .port import VersionConflict

T = TypeVar("T")

# Runs of one use case before giving up on a transaction that keeps changing under it.
CAS_ATTEMPTS = 20


def retry_on_conflict(
    step: Callable[[], T], on_exhausted: Callable[[], T], *, attempts: int = CAS_ATTEMPTS
) -> T:
    """``step()`` again after each ``VersionConflict``; ``on_exhausted()`` after ``attempts`` of them.

    ``on_exhausted`` answers (a result) or raises (e.g. ``errors.Conflict``): its caller's choice.
    """
    for _ in range(attempts):
        try:
            return step()
        except VersionConflict:
            continue
    return on_exhausted()
