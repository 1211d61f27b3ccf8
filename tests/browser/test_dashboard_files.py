"""The dashboard's static files, checked without a browser: every text has both languages, and every
status, payment method and error code the API can answer has a readable label."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ecpay_lambda.local.static import default_dashboard_dir
from ecpay_lambda.wallet import errors
from ecpay_lambda.wallet.models import PaymentMethod, TransactionStatus, TransactionType, UserStatus

DASHBOARD = default_dashboard_dir()
ENTRY = re.compile(r'^\s*"([^"]+)":\s*"((?:[^"\\]|\\.)*)",?\s*$')


def _dictionary(name: str) -> dict[str, str]:
    """The ``const <name> = { ... };`` dictionary of i18n.js."""
    source = (DASHBOARD / "i18n.js").read_text(encoding="utf-8")
    block = re.search(rf"^const {name} = \{{\n(.*?)^\}};", source, re.S | re.M)
    assert block, f"i18n.js defines const {name}"
    entries: dict[str, str] = {}
    for line in block.group(1).splitlines():
        match = ENTRY.match(line)
        assert match, f"unexpected line in {name}: {line!r}"
        assert match.group(1) not in entries, f"{match.group(1)} twice in {name}"
        entries[match.group(1)] = match.group(2)
    return entries


EN = _dictionary("en")
ZH = _dictionary("zhTW")


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    assert EN.keys() == ZH.keys()
    for key, text in EN.items():
        assert set(re.findall(r"\{\w+\}", text)) == set(re.findall(r"\{\w+\}", ZH[key])), key
        assert ZH[key].strip(), key


def test_every_key_the_page_and_script_use_exists() -> None:
    html = (DASHBOARD / "index.html").read_text(encoding="utf-8")
    script = (DASHBOARD / "app.js").read_text(encoding="utf-8")
    used = set(re.findall(r'data-i18n(?:-placeholder|-aria)?="([^"]+)"', html))
    used |= set(re.findall(r'\bt\("([^"]+)"', script))
    assert used, "the dashboard uses translated texts"
    assert used <= EN.keys(), f"missing translations: {sorted(used - EN.keys())}"


@pytest.mark.parametrize(
    "key",
    [f"status.{s.value}" for s in TransactionStatus]
    + [f"type.{t.value}" for t in TransactionType]
    + [f"users.status.{s.value}" for s in UserStatus]
    + [f"method.{m.value}" for m in PaymentMethod],
)
def test_every_domain_value_has_a_label(key: str) -> None:
    assert key in EN
    assert key in ZH


def _error_codes() -> set[str]:
    found: set[str] = set()
    pending: list[type[errors.WalletError]] = [errors.WalletError]
    while pending:
        cls = pending.pop()
        found.add(cls.code)
        found |= getattr(cls, "CODES", frozenset())  # codes set per instance (refund refusals)
        pending.extend(cls.__subclasses__())
    found.discard("wallet_error")  # the abstract base: never answered
    return found


@pytest.mark.parametrize("code", sorted(_error_codes()))
def test_every_domain_error_code_reads_as_a_sentence(code: str) -> None:
    assert f"errors.{code}" in EN
    assert f"errors.{code}" in ZH


def test_the_page_loads_its_files_from_the_static_prefix() -> None:
    html = (DASHBOARD / "index.html").read_text(encoding="utf-8")
    for name in re.findall(r'(?:src|href)="/static/([^"]+)"', html):
        assert (DASHBOARD / name).is_file(), name
    script = (DASHBOARD / "app.js").read_text(encoding="utf-8")
    for name in re.findall(r'from "\./([^"]+)"', script):
        assert (DASHBOARD / Path(name)).is_file(), name


def test_the_app_is_named_as_ours_not_as_an_ecpay_product() -> None:
    # 「綠界錢包」 read like an official ECPay product: the title names this wallet, ECPay only pays.
    assert "ECPay" not in EN["app.title"] and "綠界" not in ZH["app.title"]
    assert "ECPay" in EN["app.subtitle"] and "綠界" in ZH["app.subtitle"]


# Codes of the API changes made in parallel (store outages, deposit cancellation, refund rules):
# each must read as a sentence in both languages, never as the raw code or the server's English.
@pytest.mark.parametrize(
    "code",
    [
        "store_unavailable",
        "deposit_payable",
        "refund_partial_before_close",
        "refund_close_window",
        "refund_full_only",
        "refund_pending",
        "amount_out_of_range",
        "unsupported_media_type",
        "service_unavailable",
    ],
)
def test_new_api_error_codes_read_as_sentences(code: str) -> None:
    assert EN[f"errors.{code}"] and ZH[f"errors.{code}"] != EN[f"errors.{code}"]


@pytest.mark.parametrize(
    "flag", ["duplicate_payment", "closed_user_credit", "paid_after_cancel", "refund_unconfirmed"]
)
def test_every_transaction_flag_has_a_sentence(flag: str) -> None:
    assert f"tx.flag.{flag}" in EN and f"tx.flag.{flag}" in ZH
