"""Forged ECPay notifications: every way a ReturnURL body can be wrong, generated from a seed.

Each :class:`Forgery` is something an attacker, a broken proxy or a misconfigured merchant could
send to a callback route. None of them may be credited: the wallet must record each one and answer
an error line (``0|<reason>``), never ``1|OK`` — the paid notifications they are made from are real
ones in every respect but the one that is forged.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote_plus, urlencode

from ecpay_lambda.ecpay.checkmac import MD5
from ecpay_lambda.ecpay.credentials import MerchantCredentials

from .harness import STAGE, paid_fields, period_fields, sign

FORM = "application/x-www-form-urlencoded"
REQUIRED = ("MerchantID", "MerchantTradeNo", "RtnCode", "RtnMsg", "TradeNo", "TradeAmt")


@dataclass(frozen=True)
class Target:
    """A deposit awaiting payment that forgeries try to get credited."""

    user_id: str
    transaction_id: str
    merchant_trade_no: str
    amount: int


@dataclass(frozen=True)
class Forgery:
    """One forged request to a callback route."""

    category: str
    detail: str
    user_id: str
    transaction_id: str  # of the route it is posted to
    body: bytes
    content_type: str = FORM


def _encode(fields: dict[str, str] | Sequence[tuple[str, str]]) -> bytes:
    return urlencode(fields).encode("utf-8")


class Forger:
    """Makes forgeries against ``targets`` from a seeded random generator."""

    def __init__(self, targets: Sequence[Target], seed: int) -> None:
        self.targets = list(targets)
        self.rng = random.Random(seed)
        self.categories: dict[str, Callable[[Target], tuple[str, bytes, str]]] = {
            "tampered": self.tampered,
            "wrong_key": self.wrong_key,
            "wrong_merchant": self.wrong_merchant,
            "wrong_amount": self.wrong_amount,
            "md5": self.md5,
            "missing_field": self.missing_field,
            "duplicated_field": self.duplicated_field,
            "non_utf8": self.non_utf8,
            "oversize": self.oversize,
            "empty": self.empty,
            "garbage": self.garbage,
            "wrong_route": self.wrong_route,
            "foreign_trade_no": self.foreign_trade_no,
        }

    def make(self, count: int) -> list[Forgery]:
        """``count`` forgeries, every category in turn, targets and details at random."""
        names = list(self.categories)
        out: list[Forgery] = []
        for index in range(count):
            category = names[index % len(names)]
            target = self.rng.choice(self.targets)
            detail, body, ctype = self.categories[category](target)
            route = target
            if category == "wrong_route":
                route = self.rng.choice([t for t in self.targets if t != target] or [target])
            out.append(Forgery(category, detail, route.user_id, route.transaction_id, body, ctype))
        self.rng.shuffle(out)
        return out

    # --- helpers --------------------------------------------------------------------------------

    def _text(self, length: int) -> str:
        pool = string.ascii_letters + string.digits + " +-_.~!*()'&=%#/:;?@[]{}<>|\\\"交易成功付款"
        return "".join(self.rng.choice(pool) for _ in range(length))

    def _fields(self, target: Target, **changes: str) -> dict[str, str]:
        fields = paid_fields(
            target.merchant_trade_no,
            target.amount,
            rtn_msg=self.rng.choice(["交易成功", "paid", "Succeeded"]),
        )
        fields.update(changes)
        return fields

    def _other_credentials(self) -> MerchantCredentials:
        return MerchantCredentials(
            STAGE.merchant_id,
            "".join(self.rng.choices(string.ascii_letters + string.digits, k=16)),
            "".join(self.rng.choices(string.ascii_letters + string.digits, k=16)),
        )

    # --- categories -------------------------------------------------------------------------------

    def tampered(self, target: Target) -> tuple[str, bytes, str]:
        """Signed correctly, then one thing changed."""
        kind = self.rng.randrange(12)
        if kind == 0:  # a failure notice turned into a payment
            signed = sign(self._fields(target, RtnCode="10200058", RtnMsg="Authorization failed"))
            signed["RtnCode"] = "1"
            return "failure notice flipped to RtnCode=1", _encode(signed), FORM
        signed = sign(self._fields(target))
        if kind == 1:
            signed["TradeAmt"] = str(target.amount * self.rng.choice([2, 10, 100]))
            detail = "TradeAmt raised after signing"
        elif kind == 2:
            signed["TradeNo"] = "2" + "".join(self.rng.choices(string.digits, k=19))
            detail = "TradeNo changed"
        elif kind == 3:
            signed["PaymentDate"] = "2030/01/01 00:00:00"
            detail = "PaymentDate changed"
        elif kind == 4:
            signed["CustomField1"] = self._text(10)
            detail = "CustomField1 changed"
        elif kind == 5:
            signed["Injected"] = "1"
            detail = "field added after signing"
        elif kind == 6:
            del signed["StoreID"]
            detail = "blank field removed after signing"
        elif kind == 7:
            signed["CheckMacValue"] = signed["CheckMacValue"].lower()
            detail = "CheckMacValue lower-cased"
        elif kind == 8:
            signed["CheckMacValue"] = signed["CheckMacValue"][:-1]
            detail = "CheckMacValue truncated"
        elif kind == 9:
            signed["CheckMacValue"] = ""
            detail = "CheckMacValue blank"
        elif kind == 10:
            signed["RtnMsg"] = signed["RtnMsg"] + " "
            detail = "trailing space in RtnMsg"
        else:
            other = sign(self._fields(target, TradeAmt="1"))
            signed["CheckMacValue"] = other["CheckMacValue"]
            detail = "CheckMacValue of another notification"
        return detail, _encode(signed), FORM

    def wrong_key(self, target: Target) -> tuple[str, bytes, str]:
        """Signed with another HashKey/HashIV (or ours swapped)."""
        if self.rng.random() < 0.2:
            swapped = MerchantCredentials(STAGE.merchant_id, STAGE.hash_iv, STAGE.hash_key)
            return "HashKey and HashIV swapped", _encode(sign(self._fields(target), swapped)), FORM
        return "random HashKey/HashIV", _encode(sign(self._fields(target), self._other_credentials())), FORM

    def wrong_merchant(self, target: Target) -> tuple[str, bytes, str]:
        """Another MerchantID, signed with our key (a valid MAC) or with a key of its own."""
        merchant = self.rng.choice(["3002599", "2000132", "3002607 ", "30026070", ""])
        fields = self._fields(target, MerchantID=merchant)
        if self.rng.random() < 0.5:
            return f"MerchantID {merchant!r}, our key", _encode(sign(fields)), FORM
        credentials = self._other_credentials()
        return f"MerchantID {merchant!r}, its key", _encode(sign(fields, credentials)), FORM

    def wrong_amount(self, target: Target) -> tuple[str, bytes, str]:
        """Correctly signed, but TradeAmt is not the deposit's amount."""
        amount = self.rng.choice([target.amount + 1, target.amount - 1, 0, target.amount * 10, 1])
        # (Not "0" + the right amount: correctly signed, that is ECPay saying the right amount.)
        text = self.rng.choice([str(amount), f"{amount}.00", f" {target.amount}", f"-{target.amount}"])
        return f"TradeAmt {text!r}", _encode(sign(self._fields(target, TradeAmt=text))), FORM

    def md5(self, target: Target) -> tuple[str, bytes, str]:
        """Our key, but MD5 (EncryptType 0) instead of SHA256."""
        return "MD5 CheckMacValue", _encode(sign(self._fields(target), STAGE, MD5)), FORM

    def missing_field(self, target: Target) -> tuple[str, bytes, str]:
        """A required field (or the MAC) left out; whatever remains correctly signed."""
        name = self.rng.choice([*REQUIRED, "CheckMacValue"])
        fields = self._fields(target)
        fields.pop(name, None)
        signed = sign(fields)
        if name == "CheckMacValue":
            del signed["CheckMacValue"]
        return f"{name} missing", _encode(signed), FORM

    def duplicated_field(self, target: Target) -> tuple[str, bytes, str]:
        """A field sent twice (the same value, or a second one after the signed one)."""
        signed = sign(self._fields(target))
        name = self.rng.choice(["TradeAmt", "RtnCode", "MerchantTradeNo", "CheckMacValue", "MerchantID"])
        pairs = list(signed.items())
        second = signed[name] if self.rng.random() < 0.5 else self.rng.choice(["1", "999999", "x"])
        pairs.insert(self.rng.randrange(len(pairs) + 1), (name, second))
        return f"{name} twice", _encode(pairs), FORM

    def non_utf8(self, target: Target) -> tuple[str, bytes, str]:
        """Bytes that are not UTF-8: raw, percent-encoded, or a Big5 RtnMsg (a real integration bug)."""
        signed = sign(self._fields(target))
        kind = self.rng.randrange(3)
        if kind == 0:
            body = _encode(signed).replace(b"RtnMsg=", b"RtnMsg=\xff\xfe", 1)
            return "raw 0xFF in RtnMsg", body, FORM
        if kind == 1:
            body = _encode(signed) + b"&Remark=%FF%FE"
            return "percent-encoded 0xFF", body, FORM
        big5 = quote_plus("交易成功".encode("big5"))
        pairs = [(k, v) for k, v in signed.items() if k != "RtnMsg"]
        body = _encode(pairs) + f"&RtnMsg={big5}".encode()
        return "RtnMsg in Big5", body, FORM

    def oversize(self, target: Target) -> tuple[str, bytes, str]:
        """A body far larger than any ECPay notification (about 1 KB)."""
        length = self.rng.choice([70 * 1024, 200 * 1024, 1024 * 1024])
        signed = sign(self._fields(target, CustomField4="A" * length))
        return f"{length // 1024} KB CustomField4", _encode(signed), FORM

    def empty(self, target: Target) -> tuple[str, bytes, str]:
        """Nothing, or nothing but separators."""
        body = self.rng.choice([b"", b"&", b"=", b"&&&", b"CheckMacValue=", b" "])
        return f"body {body!r}", body, FORM

    def garbage(self, target: Target) -> tuple[str, bytes, str]:
        """Not a form at all: random bytes, JSON, a bare word, base64 of a signed form."""
        kind = self.rng.randrange(5)
        if kind == 0:
            return "random bytes", self.rng.randbytes(self.rng.randrange(1, 2048)), FORM
        if kind == 1:
            body = json.dumps(sign(self._fields(target))).encode()
            return "signed fields as JSON", body, "application/json"
        if kind == 2:
            return "no '=' at all", self._text(40).replace("=", "").replace("&", "").encode(), FORM
        if kind == 3:
            body = base64.b64encode(_encode(sign(self._fields(target, TradeAmt="1"))))
            return "base64 of a form with another amount", body, FORM
        return (
            "signed form sent as text/plain",
            _encode(sign(self._fields(target, TradeAmt="1"))),
            "text/plain",
        )

    def wrong_route(self, target: Target) -> tuple[str, bytes, str]:
        """A genuine notification of one deposit posted to another deposit's route."""
        return "posted to another deposit's route", _encode(sign(self._fields(target))), FORM

    def foreign_trade_no(self, target: Target) -> tuple[str, bytes, str]:
        """Correctly signed, but the MerchantTradeNo is not one this wallet made."""
        mtn = self.rng.choice(
            ["ecpay20230312153023", target.merchant_trade_no[:-1], "A" * 21, "", target.transaction_id]
        )
        return f"MerchantTradeNo {mtn!r}", _encode(sign(self._fields(target, MerchantTradeNo=mtn))), FORM


# PeriodReturnURL's names for the ReturnURL fields the categories above forge.
_PERIOD_NAMES = {"TradeAmt": "Amount", "TradeNo": "Gwsr", "PaymentDate": "ProcessDate"}
PERIOD_REQUIRED = ("MerchantID", "MerchantTradeNo", "RtnCode", "RtnMsg", "Amount", "TotalSuccessTimes")


class PeriodForger(Forger):
    """Forgeries of PeriodReturnURL bodies (charge #2 of paid recurring deposits), same categories.

    Every forgery is made from a notification that would be credited if it were not forged.
    """

    def _fields(self, target: Target, **changes: str) -> dict[str, str]:
        fields = period_fields(
            target.merchant_trade_no,
            target.amount,
            2,
            rtn_msg=self.rng.choice(["交易成功", "paid", "Succeeded"]),
        )
        fields.update({_PERIOD_NAMES.get(name, name): value for name, value in changes.items()})
        return fields

    def missing_field(self, target: Target) -> tuple[str, bytes, str]:
        """A required PeriodReturnURL field (or the MAC) left out; the rest correctly signed."""
        name = self.rng.choice([*PERIOD_REQUIRED, "CheckMacValue"])
        fields = self._fields(target)
        fields.pop(name, None)
        signed = sign(fields)
        if name == "CheckMacValue":
            del signed["CheckMacValue"]
        return f"{name} missing", _encode(signed), FORM

    def duplicated_field(self, target: Target) -> tuple[str, bytes, str]:
        """A field sent twice (the same value, or a second one after the signed one)."""
        signed = sign(self._fields(target))
        name = self.rng.choice(["Amount", "RtnCode", "TotalSuccessTimes", "CheckMacValue", "MerchantID"])
        pairs = list(signed.items())
        second = signed[name] if self.rng.random() < 0.5 else self.rng.choice(["1", "999999", "x"])
        pairs.insert(self.rng.randrange(len(pairs) + 1), (name, second))
        return f"{name} twice", _encode(pairs), FORM
