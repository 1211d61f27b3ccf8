"""``ecpay-lambda checkmac``: compute, verify, explain (with HashKey/HashIV masked)."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from ecpay_lambda import cli
from ecpay_lambda.commands import checkmac as command
from ecpay_lambda.ecpay import check_mac_value
from ecpay_lambda.ecpay.checkmac import MD5, explain_check_mac_value

OFFICIAL = [
    "TradeDesc=促銷方案",
    "PaymentType=aio",
    "MerchantTradeDate=2023/03/12 15:30:23",
    "MerchantTradeNo=ecpay20230312153023",
    "MerchantID=3002607",
    "ReturnURL=https://www.ecpay.com.tw/receive.php",
    "ItemName=Apple iphone 15",
    "TotalAmount=30000",
    "ChoosePayment=ALL",
    "EncryptType=1",
]
OFFICIAL_MAC = "6C51C9E6888DE861FD62FB1DD17029FC742634498FD813DC43D4243B5685B840"
OWN_KEY, OWN_IV = "K3yK3yK3yK3yK3y9", "Iv1vIv1vIv1vIv1Z"


@pytest.fixture(autouse=True)
def _no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECPAY_HASH_KEY", raising=False)
    monkeypatch.delenv("ECPAY_HASH_IV", raising=False)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="checkmac")
    command.add_arguments(parser)
    code = command.run(parser.parse_args(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_compute_from_key_value_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(OFFICIAL, capsys) == (0, OFFICIAL_MAC + "\n", "")


def test_compute_through_the_console_script_dispatcher(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only this command: the other command modules belong to other parts of the tree.
    monkeypatch.setattr(cli, "COMMANDS", {"checkmac": cli.COMMANDS["checkmac"]})
    assert cli.main(["checkmac", *OFFICIAL]) == 0
    assert capsys.readouterr().out == OFFICIAL_MAC + "\n"


def test_compute_from_a_query_string(capsys: pytest.CaptureFixture[str]) -> None:
    query = urllib.parse.urlencode([(item.partition("=")[0], item.partition("=")[2]) for item in OFFICIAL])
    assert run(["--query", query], capsys)[1] == OFFICIAL_MAC + "\n"
    assert run(["--query", "?" + query], capsys)[1] == OFFICIAL_MAC + "\n"


def test_raw_query_keeps_plus(capsys: pytest.CaptureFixture[str]) -> None:
    expected = check_mac_value({"ItemName": "A+B"}, "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs")
    assert run(["--query", "ItemName=A+B", "--raw"], capsys)[1] == expected + "\n"
    assert run(["--query", "ItemName=A+B"], capsys)[1] != expected + "\n"


def test_compute_from_json_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = dict(item.split("=", 1) for item in OFFICIAL)
    data["TotalAmount"] = 30000  # type: ignore[assignment]
    path = tmp_path / "params.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    assert run(["--json", str(path)], capsys) == (0, OFFICIAL_MAC + "\n", "")


def test_json_from_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(dict(item.split("=", 1) for item in OFFICIAL))))
    assert run(["--json", "-"], capsys)[1] == OFFICIAL_MAC + "\n"


def test_md5_and_keys_from_options_and_env(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    params = {"A": "1", "B": ""}
    expected = check_mac_value(params, OWN_KEY, OWN_IV, MD5)
    args = ["A=1", "B=", "--md5", "--hash-key", OWN_KEY, "--hash-iv", OWN_IV]
    assert run(args, capsys)[1] == expected + "\n"
    monkeypatch.setenv("ECPAY_HASH_KEY", OWN_KEY)
    monkeypatch.setenv("ECPAY_HASH_IV", OWN_IV)
    assert run(["A=1", "B=", "--md5"], capsys)[1] == expected + "\n"


def test_verify_ok_and_mismatch(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([*OFFICIAL, f"CheckMacValue={OFFICIAL_MAC}", "--verify"], capsys)
    assert (code, out) == (0, "OK: CheckMacValue matches\n")
    code, out, _ = run([*OFFICIAL, "Remark=x", f"CheckMacValue={OFFICIAL_MAC}", "--verify"], capsys)
    assert code == 1
    assert out.startswith("MISMATCH:")
    assert "--explain" in out


def test_explain_masks_hash_key_and_iv(capsys: pytest.CaptureFixture[str]) -> None:
    params = ["ItemName=Joe's ~Café~", "MerchantID=3002607"]
    code, out, err = run([*params, "--explain", "--hash-key", OWN_KEY, "--hash-iv", OWN_IV], capsys)
    assert code == 0
    for secret in (OWN_KEY, OWN_IV, OWN_KEY.lower(), OWN_IV.lower()):
        assert secret not in out + err
    assert "HashKey=********&ItemName=Joe's ~Café~&MerchantID=3002607&HashIV=********" in out
    assert (
        "hashkey%3d********%26itemname%3djoe%27s+%7ecaf%c3%a9%7e%26merchantid%3d3002607%26hashiv%3d********"
        in out
    )
    digest = check_mac_value({"ItemName": "Joe's ~Café~", "MerchantID": "3002607"}, OWN_KEY, OWN_IV)
    assert out.rstrip().endswith(digest)
    assert "public stage test merchant" not in out


def test_explain_with_the_default_stage_keys_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([*OFFICIAL, "--explain"], capsys)
    assert code == 0
    assert "public stage test merchant" in out
    assert "pwFHCqoQZGmho4w6" not in out and "ekrm7ift261dpevs" not in out


@pytest.mark.parametrize(
    ("received_from", "hint"),
    [
        ("md5", "use --md5"),
        ("blank dropped", "blank fields are left out"),
        ("tilde kept", "'~' is left unencoded"),
        ("lower case", "letter case"),
        ("garbage", "no common mistake"),
    ],
)
def test_explain_diagnoses_common_mistakes(
    received_from: str, hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    params = {"ItemName": "A~B", "CustomField1": "", "MerchantID": "3002607"}
    key, iv = "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs"
    if received_from == "md5":
        received = check_mac_value(params, key, iv, MD5)
    elif received_from == "blank dropped":
        received = check_mac_value({k: v for k, v in params.items() if v}, key, iv)
    elif received_from == "tilde kept":
        encoded = explain_check_mac_value(params, key, iv).encoded.replace("%7e", "~")
        received = hashlib.sha256(encoded.encode()).hexdigest().upper()
    elif received_from == "lower case":
        received = check_mac_value(params, key, iv).lower()
    else:
        received = "F" * 64
    argv = [f"{k}={v}" for k, v in params.items()] + [f"CheckMacValue={received}", "--verify", "--explain"]
    code, out, _ = run(argv, capsys)
    assert code == 1
    assert hint in out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["noequals"],
        ["=value"],
        ["A=1", "A=2"],
        ["A=1", "--query", "A=2"],
        ["--raw", "A=1"],
        ["A=1", "--hash-key", "onlykey"],
        ["A=1", "--verify"],
        ["--query", "A=1&A=2"],
        ["--json", "/nonexistent/params.json"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2
    assert err.startswith("checkmac: ")
    assert out == ""


def test_json_must_be_an_object_of_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for content in ("[1]", '{"A": true}', '{"A": 1.5}', '{"A": {"b": 1}}', "not json"):
        path = tmp_path / "p.json"
        path.write_text(content, encoding="utf-8")
        assert run(["--json", str(path)], capsys)[0] == 2


def test_a_given_checkmacvalue_is_ignored_when_computing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([*OFFICIAL, "CheckMacValue=whatever"], capsys)
    assert (code, out) == (0, OFFICIAL_MAC + "\n")
    assert "ignored" in err


def test_module_import_stays_light() -> None:
    script = (
        "import sys\n"
        "import ecpay_lambda.commands.checkmac\n"
        "print(sorted(m for m in sys.modules if m.startswith(('ecpay_lambda.ecpay', 'pydantic', 'json'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_names_differing_only_by_case_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["E=1", "e=2"], capsys)
    assert code == 2 and out == ""
    assert "only by case" in err
