"""Settings: one typed object from environment variables, secrets from Secrets Manager on AWS."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from ecpay_lambda.config import (
    DEFAULT_STORE_URL,
    ConfigError,
    Settings,
    load_settings,
    parse_settings,
)
from ecpay_lambda.ecpay.credentials import MerchantCredentials

REAL = {"MerchantID": "3099999", "HashKey": "abcdefghijklmnop", "HashIV": "qrstuvwxyz123456"}
SANDBOX = {"ECPAY_BASE_URL": "http://127.0.0.1:3000"}


def secrets(values: dict[str, str]) -> Callable[[str], str]:
    """A secret reader over a dict (ARN -> string) that fails on unknown ARNs."""

    def read(arn: str) -> str:
        return values[arn]

    return read


def test_defaults_are_the_offline_sandbox_with_the_public_test_merchant() -> None:
    settings = parse_settings(SANDBOX)
    assert settings.ecpay_env == "sandbox"
    assert settings.ecpay_base_url == "http://127.0.0.1:3000"
    assert settings.credentials == MerchantCredentials.stage_test_merchant()
    assert settings.cross_check is False
    assert settings.store_url == DEFAULT_STORE_URL
    assert settings.api_token is None
    assert settings.auth_mode == "token"
    assert settings.on_lambda is False
    assert settings.auth_required is False


def test_sandbox_needs_its_base_url() -> None:
    with pytest.raises(ConfigError, match="ECPAY_BASE_URL"):
        parse_settings({})


@pytest.mark.parametrize(
    ("env", "expected"),
    [("sandbox", False), ("stage", True), ("production", True)],
)
def test_cross_check_is_on_by_default_outside_the_sandbox(env: str, expected: bool) -> None:
    base = {**SANDBOX, "ECPAY_ENV": env}
    if env == "production":
        base |= {"ECPAY_MERCHANT_ID": "3099999", "ECPAY_HASH_KEY": "k" * 16, "ECPAY_HASH_IV": "i" * 16}
    assert parse_settings(base).cross_check is expected


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("1", True), ("false", False), ("OFF", False)]
)
def test_cross_check_is_configurable(value: str, expected: bool) -> None:
    assert parse_settings({"ECPAY_ENV": "stage", "ECPAY_CROSS_CHECK": value}).cross_check is expected


def test_a_bad_boolean_is_refused() -> None:
    with pytest.raises(ConfigError, match="ECPAY_CROSS_CHECK"):
        parse_settings({"ECPAY_ENV": "stage", "ECPAY_CROSS_CHECK": "maybe"})


def test_stage_defaults_to_the_public_test_merchant_and_ecpays_stage_host() -> None:
    settings = parse_settings({"ECPAY_ENV": "stage"})
    assert settings.credentials is not None and settings.credentials.is_public_test_merchant
    assert settings.ecpay_base_url is None  # Endpoints.for_environment("stage") picks the stage host


def test_production_refuses_to_start_without_real_credentials() -> None:
    with pytest.raises(ConfigError, match="production"):
        parse_settings({"ECPAY_ENV": "production"})
    public = MerchantCredentials.stage_test_merchant()
    with pytest.raises(ConfigError, match="public test merchant"):
        parse_settings(
            {
                "ECPAY_ENV": "production",
                "ECPAY_MERCHANT_ID": public.merchant_id,
                "ECPAY_HASH_KEY": public.hash_key,
                "ECPAY_HASH_IV": public.hash_iv,
            }
        )


def test_production_with_real_credentials_from_env() -> None:
    settings = parse_settings(
        {
            "ECPAY_ENV": "production",
            "ECPAY_MERCHANT_ID": REAL["MerchantID"],
            "ECPAY_HASH_KEY": REAL["HashKey"],
            "ECPAY_HASH_IV": REAL["HashIV"],
        }
    )
    assert settings.credentials == MerchantCredentials(REAL["MerchantID"], REAL["HashKey"], REAL["HashIV"])


def test_partial_credentials_are_refused() -> None:
    with pytest.raises(ConfigError, match="ECPAY_HASH_IV"):
        parse_settings({**SANDBOX, "ECPAY_MERCHANT_ID": "3099999", "ECPAY_HASH_KEY": "x"})


def test_credentials_from_secrets_manager_json() -> None:
    arn = "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:ecpay"
    settings = parse_settings(
        {"ECPAY_ENV": "production", "ECPAY_SECRET_ARN": arn}, read_secret=secrets({arn: json.dumps(REAL)})
    )
    assert settings.credentials == MerchantCredentials(REAL["MerchantID"], REAL["HashKey"], REAL["HashIV"])


def test_a_blank_secret_means_not_configured_yet() -> None:
    arn = "arn:ecpay"
    blank = json.dumps({"MerchantID": "", "HashKey": "", "HashIV": ""})
    stage = parse_settings({"ECPAY_ENV": "stage", "ECPAY_SECRET_ARN": arn}, read_secret=secrets({arn: blank}))
    assert stage.credentials is not None and stage.credentials.is_public_test_merchant
    with pytest.raises(ConfigError, match="production"):
        parse_settings(
            {"ECPAY_ENV": "production", "ECPAY_SECRET_ARN": arn}, read_secret=secrets({arn: blank})
        )


@pytest.mark.parametrize(
    "secret", ["not json", "[1, 2]", json.dumps({"MerchantID": "3099999", "HashKey": "", "HashIV": "x"})]
)
def test_a_malformed_secret_is_refused_without_echoing_it(secret: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(
            {"ECPAY_ENV": "stage", "ECPAY_SECRET_ARN": "arn:x"}, read_secret=secrets({"arn:x": secret})
        )
    assert secret not in str(info.value)


def test_a_function_without_ecpay_needs_no_credentials_even_in_production() -> None:
    settings = parse_settings({"ECPAY_ENV": "production", "ECPAY_CREDENTIALS": "none"})
    assert settings.credentials is None
    assert settings.ecpay_enabled is False


def test_api_token_from_env_or_secret() -> None:
    assert parse_settings({**SANDBOX, "API_TOKEN": " tok "}).api_token == "tok"
    read = secrets({"arn:tok": "from-secret\n"})
    assert (
        parse_settings({**SANDBOX, "API_TOKEN_SECRET_ARN": "arn:tok"}, read_secret=read).api_token
        == "from-secret"
    )
    assert parse_settings({**SANDBOX, "API_TOKEN": ""}).api_token is None


def test_on_lambda_auth_is_always_required() -> None:
    settings = parse_settings({**SANDBOX, "AWS_LAMBDA_FUNCTION_NAME": "fn"})
    assert settings.on_lambda and settings.api_token is None and settings.auth_required


def test_jwt_mode_needs_no_token() -> None:
    settings = parse_settings({**SANDBOX, "AUTH_MODE": "JWT", "API_TOKEN": "ignored"})
    assert settings.auth_mode == "jwt" and settings.api_token is None and settings.auth_required


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ECPAY_ENV", "live"),
        ("AUTH_MODE", "basic"),
        ("FRONTEND_URL", "javascript:alert(1)"),
        ("PUBLIC_BASE_URL", "ftp://example.com"),
        ("ECPAY_CREDENTIALS", "some"),
    ],
)
def test_invalid_values_are_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        parse_settings({**SANDBOX, name: value})


def test_urls_and_origins_are_normalised() -> None:
    settings = parse_settings(
        {
            **SANDBOX,
            "FRONTEND_URL": "https://shop.example/",
            "PUBLIC_BASE_URL": "https://api.example/v1/",
            "CORS_ORIGINS": " https://a.example/ , ,https://b.example",
        }
    )
    assert settings.frontend_url == "https://shop.example"
    assert settings.public_base_url == "https://api.example/v1"
    assert settings.cors_origins == ("https://a.example", "https://b.example")


def test_secrets_stay_out_of_repr() -> None:
    settings = parse_settings(
        {
            **SANDBOX,
            "API_TOKEN": "tok-SECRET-123",
            "ECPAY_MERCHANT_ID": "3099999",
            "ECPAY_HASH_KEY": "HASHKEY-SECRET",
            "ECPAY_HASH_IV": "HASHIV-SECRET",
        }
    )
    text = repr(settings)
    assert "3099999" in text
    for secret in ("tok-SECRET-123", "HASHKEY-SECRET", "HASHIV-SECRET"):
        assert secret not in text


def test_load_settings_reads_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECPAY_ENV", "stage")
    monkeypatch.delenv("ECPAY_SECRET_ARN", raising=False)
    load_settings.cache_clear()
    try:
        first = load_settings()
        monkeypatch.setenv("ECPAY_ENV", "sandbox")
        assert load_settings() is first  # per cold start, not per request
        assert isinstance(first, Settings) and first.ecpay_env == "stage"
    finally:
        load_settings.cache_clear()


@mock_aws
def test_secrets_are_read_from_secrets_manager_with_boto3(monkeypatch: pytest.MonkeyPatch) -> None:
    # moto intercepts boto3 in-process: no network.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-northeast-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("secretsmanager", region_name="ap-northeast-1")
    ecpay_arn = client.create_secret(Name="ecpay", SecretString=json.dumps(REAL))["ARN"]
    token_arn = client.create_secret(Name="token", SecretString="tok-from-sm")["ARN"]
    settings = parse_settings(
        {"ECPAY_ENV": "production", "ECPAY_SECRET_ARN": ecpay_arn, "API_TOKEN_SECRET_ARN": token_arn}
    )
    assert settings.credentials is not None and settings.credentials.merchant_id == "3099999"
    assert settings.api_token == "tok-from-sm"
    with pytest.raises(ConfigError, match="cannot read secret") as info:
        parse_settings({"ECPAY_ENV": "stage", "ECPAY_SECRET_ARN": ecpay_arn + "-missing"})
    assert "HashKey" not in str(info.value)


def test_the_notification_cross_check_is_bounded_inside_ecpays_five_seconds() -> None:
    """A cross-check ECPay cannot answer in time is refused (0|…, ECPay retries) before its 5 s run out."""
    from ecpay_lambda.api.composition import ecpay_config  # noqa: PLC0415
    from ecpay_lambda.ecpay.errors import TransportError  # noqa: PLC0415
    from ecpay_lambda.ecpay.transport import HttpResponse  # noqa: PLC0415
    from ecpay_lambda.wallet.notifications import CallbackHandler  # noqa: PLC0415
    from ecpay_lambda.wallet.outcomes import EcpayOutcome, OutcomeKind  # noqa: PLC0415

    seen: list[float] = []

    class Hanging:
        def post_form(self, url: str, fields: object, *, timeout: float) -> HttpResponse:
            seen.append(timeout)
            raise TransportError("timed out")

    config = ecpay_config(parse_settings({"ECPAY_ENV": "stage"}), transport=Hanging())
    handler = CallbackHandler.for_config(None, config, lambda: datetime.now(UTC))  # type: ignore[arg-type]
    assert config.client.timeout == 10.0  # queries and refunds off the notification path keep theirs
    outcome = EcpayOutcome(OutcomeKind.PAID, "abcdefghijkl", "abcdefghijkl0a1b2c3d", "3002607", 500)
    assert handler._cross_check(None, outcome) == "rejected:cross_check_unavailable"  # type: ignore[arg-type]
    assert seen == [3.0]
    with pytest.raises(ConfigError):
        parse_settings({"ECPAY_ENV": "stage", "ECPAY_CROSS_CHECK_TIMEOUT": "6"})  # beyond ECPay's 5 s
