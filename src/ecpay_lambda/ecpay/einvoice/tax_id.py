"""Taiwan's business administration number (統一編號, 統編) and its check digit rule.

Source: the Ministry of Finance's rule for the unified business number check code (財政部「營利事業
統一編號檢查碼邏輯修正說明」, in force from 2023-04): multiply the eight digits by the weights
1, 2, 1, 2, 1, 2, 4, 1, add the two digits of each product, and the number is valid when that sum is
divisible by 5 (divisible by 10 before the 2023 change, when the numbers began to run out; every
old number still passes, since a multiple of 10 is a multiple of 5). When the seventh digit is 7 its
product 28 gives 2 + 8 = 10, which counts as 1 or 0: the number is then also valid when the sum + 1
is divisible by 5.
"""

from __future__ import annotations

_WEIGHTS = (1, 2, 1, 2, 1, 2, 4, 1)
DIVISOR = 5


def tax_id_sum(tax_id: str) -> int:
    """The weighted digit-sum of an 8-digit number (each product's two digits added)."""
    return sum(
        product // 10 + product % 10
        for product in (int(c) * w for c, w in zip(tax_id, _WEIGHTS, strict=True))
    )


def is_valid_tax_id(tax_id: str) -> bool:
    """True for 8 ASCII digits that pass the check digit rule above."""
    if not isinstance(tax_id, str) or len(tax_id) != 8 or not tax_id.isascii() or not tax_id.isdigit():
        return False
    total = tax_id_sum(tax_id)
    return total % DIVISOR == 0 or (tax_id[6] == "7" and (total + 1) % DIVISOR == 0)
