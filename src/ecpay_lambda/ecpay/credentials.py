"""Merchant credentials, kept out of reprs, logs and errors."""

from __future__ import annotations

# ECPay's public stage test merchant (documented by ECPay; safe to ship as a sandbox/stage default).
STAGE_TEST_MERCHANT_ID = "3002607"
STAGE_TEST_HASH_KEY = "pwFHCqoQZGmho4w6"  # public stage test default, not a secret
STAGE_TEST_HASH_IV = "EkRm7iFT261dpevs"  # public stage test default, not a secret


class KeyedCredentials:
    """A MerchantID with its HashKey and HashIV; the key and IV never appear in ``repr``.

    Immutable, compared and hashed by value (two kinds are never equal). A plain class rather than a
    dataclass (the cold-start rule, docs/performance.md) and rather than a NamedTuple: a tuple would hand
    the secrets to anything that iterates or JSON-encodes it.
    """

    __slots__ = ("_hash_iv", "_hash_key", "_merchant_id")
    _merchant_id: str
    _hash_key: str
    _hash_iv: str

    def __init__(self, merchant_id: str, hash_key: str, hash_iv: str) -> None:
        object.__setattr__(self, "_merchant_id", merchant_id)
        object.__setattr__(self, "_hash_key", hash_key)
        object.__setattr__(self, "_hash_iv", hash_iv)

    @property
    def merchant_id(self) -> str:
        """ECPay's MerchantID."""
        return self._merchant_id

    @property
    def hash_key(self) -> str:
        """HashKey (secret)."""
        return self._hash_key

    @property
    def hash_iv(self) -> str:
        """HashIV (secret)."""
        return self._hash_iv

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(merchant_id={self._merchant_id!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyedCredentials) or other.__class__ is not self.__class__:
            return NotImplemented
        return (self._merchant_id, self._hash_key, self._hash_iv) == (
            other._merchant_id,
            other._hash_key,
            other._hash_iv,
        )

    def __hash__(self) -> int:
        return hash((self._merchant_id, self._hash_key, self._hash_iv))


class MerchantCredentials(KeyedCredentials):
    """A merchant's AIO credentials (CheckMacValue): MerchantID, HashKey and HashIV."""

    __slots__ = ()

    @property
    def is_public_test_merchant(self) -> bool:
        """True for ECPay's published stage test merchant."""
        return self.merchant_id == STAGE_TEST_MERCHANT_ID and self.hash_key == STAGE_TEST_HASH_KEY

    @classmethod
    def stage_test_merchant(cls) -> MerchantCredentials:
        """ECPay's public stage test merchant 3002607."""
        return cls(STAGE_TEST_MERCHANT_ID, STAGE_TEST_HASH_KEY, STAGE_TEST_HASH_IV)
