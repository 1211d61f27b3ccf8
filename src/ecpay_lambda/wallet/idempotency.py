"""Idempotency keys for creating transactions, with Stripe's rules.

Same key + same body -> the first result; same key + different body -> ``IdempotencyMismatch``;
a key lives 24 hours (the store keeps the record at least that long, then the key may be reused).
"""

from __future__ import annotations

import hashlib
import json

from .errors import InvalidRequest
from .models import PaymentMethod, TransactionType

MAX_KEY_LENGTH = 255  # Stripe's limit


def validate_key(key: str) -> None:
    """Refuse empty, over-long or non-printable-ASCII keys (they end up in storage keys)."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise InvalidRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
    if not all(" " <= c <= "~" for c in key):
        raise InvalidRequest("Idempotency-Key must be printable ASCII")


def fingerprint(
    transaction_type: TransactionType, amount: object, payment_method: PaymentMethod | None
) -> str:
    """SHA-256 of the normalized request, so a reused key with another body is detected."""
    normalized = json.dumps(
        {
            "transaction_type": str(transaction_type),
            "amount": amount if isinstance(amount, int) and not isinstance(amount, bool) else repr(amount),
            "payment_method": None if payment_method is None else str(payment_method),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def refund_fingerprint(deposit_id: str, amount: object) -> str:
    """SHA-256 of a normalized refund request (the deposit and the amount asked, None = the rest)."""
    normalized = json.dumps(
        {
            "refund_of": deposit_id,
            "amount": amount
            if amount is None or (isinstance(amount, int) and not isinstance(amount, bool))
            else repr(amount),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()
