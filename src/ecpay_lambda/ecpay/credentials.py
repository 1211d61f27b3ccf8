"""Merchant credentials, kept out of reprs, logs and errors."""

from __future__ import annotations

from dataclasses import dataclass, field

# ECPay's public stage test merchant (documented by ECPay; safe to ship as a sandbox/stage default).
STAGE_TEST_MERCHANT_ID = "3002607"
STAGE_TEST_HASH_KEY = "pwFHCqoQZGmho4w6"  # public stage test default, not a secret
STAGE_TEST_HASH_IV = "EkRm7iFT261dpevs"  # public stage test default, not a secret


@dataclass(frozen=True)
class MerchantCredentials:
    """A merchant's MerchantID, HashKey and HashIV; the key and IV never appear in ``repr``."""

    merchant_id: str
    hash_key: str = field(repr=False)
    hash_iv: str = field(repr=False)

    @property
    def is_public_test_merchant(self) -> bool:
        """True for ECPay's published stage test merchant."""
        return self.merchant_id == STAGE_TEST_MERCHANT_ID and self.hash_key == STAGE_TEST_HASH_KEY

    @classmethod
    def stage_test_merchant(cls) -> MerchantCredentials:
        """ECPay's public stage test merchant 3002607."""
        return cls(STAGE_TEST_MERCHANT_ID, STAGE_TEST_HASH_KEY, STAGE_TEST_HASH_IV)
