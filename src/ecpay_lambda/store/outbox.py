"""Local mode's event outbox: the events the Pipe would publish on AWS, appended to a JSON-lines file.

On AWS the table's stream and an EventBridge Pipe publish wallet events (``dynamodb_events``). SQL
stores have no stream, so with ``EVENTS_OUTBOX`` set (``serve`` sets ``.data/events.jsonl``) the
composition root wraps the store in :class:`OutboxStore`: each successful ``commit`` (or ``run``'s
write) is turned into
the stream records DynamoDB would have written for it (old and new transaction images encoded as the
DynamoDB adapter encodes them), passed through the Pipe's own filter (:func:`dynamodb_events.event_of`),
and every event is appended to the file, one JSON object a line. So local mode shows exactly the
events the deployed stack would publish.

Local and development use only: commits of this process are serialized so that the image read before
a commit is the one it replaces; a process that does not set ``EVENTS_OUTBOX`` (a CLI run without the
variable) writes no events, and a crash between a commit and its append loses that event.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, TypeVar

from ..wallet.models import Transaction
from ..wallet.port import AtomicWrite, Decide, Decision, Reads, Snapshot, WalletStore
from .dynamodb_events import event_of
from .dynamodb_items import encode_transaction, transaction_key

T = TypeVar("T")


def stream_record(old: Transaction | None, new: Transaction) -> dict[str, Any]:
    """The stream record (NEW_AND_OLD_IMAGES) of writing ``new`` over ``old`` as the DynamoDB adapter does."""
    dynamodb: dict[str, Any] = {
        "Keys": transaction_key(new.transaction_id),
        "NewImage": encode_transaction(new),
    }
    if old is not None:
        dynamodb["OldImage"] = encode_transaction(old)
    return {"eventName": "INSERT" if old is None else "MODIFY", "dynamodb": dynamodb}


class OutboxStore:
    """A WalletStore that also appends the wallet events of each commit to ``path``."""

    def __init__(self, inner: WalletStore, path: Path) -> None:
        self._inner = inner
        self.path = path
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        # Everything but the writes (commit, run) is the wrapped store's own. A speculative write
        # (DynamoDB's run_guessed) is not: it writes without the images an event needs, so through
        # the outbox a use case always runs (port.run_with_guess falls back to run).
        if name == "run_guessed":
            raise AttributeError(name)
        return getattr(self._inner, name)

    def commit(self, write: AtomicWrite) -> None:
        """Commit ``write``, then append the events its transaction changes are."""
        with self._lock:
            olds = {
                put.new.transaction_id: self._inner.get_transaction(put.new.transaction_id)
                for put in write.transactions
                if put.expected_version > 0
            }
            self._inner.commit(write)
            self._append(write, olds)

    def run(self, reads: Reads, decide: Decide[T]) -> T:
        """Run the use case, then append the events of the write it made (images from its reads)."""
        with self._lock:
            seen: list[tuple[Snapshot, Decision[T]]] = []

            def watched(snapshot: Snapshot) -> Decision[T]:
                decision = decide(snapshot)
                seen[:] = [(snapshot, decision)]  # the last call is the one written
                return decision

            result = self._inner.run(reads, watched)
            if seen and seen[0][1].write is not None:
                snapshot, decision = seen[0]
                assert decision.write is not None
                self._append(decision.write, dict(snapshot.transactions))
            return result

    def _append(self, write: AtomicWrite, olds: dict[str, Transaction | None]) -> None:
        found = [
            e.detail()
            for put in write.transactions
            if (e := event_of(stream_record(olds.get(put.new.transaction_id), put.new))) is not None
        ]
        if found:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                for detail in found:
                    out.write(json.dumps(detail, ensure_ascii=False) + "\n")


def read_outbox(path: Path) -> list[dict[str, Any]]:
    """Every event in the outbox file, oldest first (none when it does not exist)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]
