"""Typed settings, read once per cold start from environment variables (secrets from AWS on Lambda).

Import discipline: the ECPay notification Lambda reads these settings, so this module stays on the
standard library (a frozen dataclass and hand-written parsing, no pydantic); boto3 is imported only
when a secret has to be fetched from Secrets Manager.

Variables (the local server sets the same names):

- ``ECPAY_ENV``: ``sandbox`` (default) | ``stage`` | ``production``
- ``ECPAY_BASE_URL``: ECPay payment host; required for ``sandbox`` (e.g. ``http://127.0.0.1:3000``)
- ``ECPAY_MERCHANT_ID`` / ``ECPAY_HASH_KEY`` / ``ECPAY_HASH_IV``, or ``ECPAY_SECRET_ARN`` (a Secrets
  Manager secret holding ``{"MerchantID", "HashKey", "HashIV"}``); ECPay's public test merchant
  3002607 is the default for sandbox and stage; production refuses to start without real ones
- ``ECPAY_CREDENTIALS``: ``none`` for a function that never talks to ECPay (least privilege)
- ``ECPAY_CROSS_CHECK``: confirm paid notifications with QueryTradeInfo; default true outside sandbox
- ``STORE_URL``: default ``sqlite:///.data/wallet.db``
- ``API_TOKEN`` or ``API_TOKEN_SECRET_ARN``; ``AUTH_MODE``: ``token`` (default) | ``jwt``
- ``JWT_USER_CLAIM`` (default ``sub``): the claim of an end user's JWT that names their wallet user id;
  ``JWT_GROUPS_CLAIM`` (default ``cognito:groups``) and ``JWT_OPERATOR_GROUP`` (default ``operators``),
  or ``JWT_OPERATOR_SCOPE`` (default none): what makes a JWT an operator's (``AUTH_MODE=jwt``)
- ``EVENTS_OUTBOX``: local mode's wallet events file (``serve`` sets ``.data/events.jsonl``); unset on AWS,
  where the table's stream publishes them
- ``FRONTEND_URL``, ``PUBLIC_BASE_URL``, ``CORS_ORIGINS`` (comma-separated)
- ``ECPAY_CREDIT_CHECK_CODE``: the merchant's credit check code (商家檢查碼, from the vendor back office):
  refunds ask CreditDetail/QueryTrade/V2 for the card trade's state with it.
  Default: the sandbox's ``12345678`` in sandbox mode, none elsewhere (refunds are then refused)
- ``AMOUNT_LIMITS``: per-method single-order limits over ECPay's defaults, e.g. ``CVS=33-6000``
- ``RECONCILE_DEADLINE_SECONDS``: a reconciliation run stops starting ECPay queries after this (default 240,
  the scheduled function's 300 s timeout minus a margin)
- ``ECPAY_TIMEOUT``: seconds an ECPay query or refund may take (default 10); reconciliation stops
  starting queries when less than this is left before its deadline
- ``ECPAY_CROSS_CHECK_TIMEOUT``: seconds for the notification path's QueryTradeInfo cross-check (default 3:
  ECPay's notification must be answered within 5 s; a slower answer is refused so ECPay retries)
- ``INVOICING``: issue a B2C e-invoice for each paid deposit (default off; ``serve`` turns it on in sandbox
  mode). ``INVOICE_MERCHANT_ID`` / ``INVOICE_HASH_KEY`` / ``INVOICE_HASH_IV``, or ``INVOICE_SECRET_ARN``
  (``{"MerchantID", "HashKey", "HashIV"}``): the e-invoice service's own merchant keys; ECPay's public
  test merchant 2000132 is the default for sandbox and stage, production refuses to start without real
  ones. ``INVOICE_BASE_URL``: the e-invoice host (default: ``ECPAY_BASE_URL`` in sandbox mode, where the
  offline sandbox serves /B2CInvoice on the same port; ECPay's einvoice[-stage] host otherwise).
  ``INVOICE_RELATE_PREFIX`` (default ``W``): starts every RelateNumber (prefix + transaction id), so
  deployments sharing one invoice merchant never collide
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from .ecpay.credentials import MerchantCredentials
from .ecpay.limits import DEFAULT_AMOUNT_LIMITS, AmountLimits

EcpayEnvironment = Literal["sandbox", "stage", "production"]
AuthMode = Literal["token", "jwt"]

ENVIRONMENTS: tuple[EcpayEnvironment, ...] = ("sandbox", "stage", "production")
AUTH_MODES: tuple[AuthMode, ...] = ("token", "jwt")
DEFAULT_STORE_URL = "sqlite:///.data/wallet.db"
SANDBOX_CREDIT_CHECK_CODE = 12345678  # the offline sandbox's default (local/sandbox settings)
DEFAULT_RECONCILE_DEADLINE = 240.0
DEFAULT_CROSS_CHECK_TIMEOUT = 3.0
DEFAULT_ECPAY_TIMEOUT = 10.0
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

# Reads a secret's string by ARN; injectable so tests never reach AWS.
SecretReader = Callable[[str], str]


class ConfigError(Exception):
    """The configuration is invalid or incomplete; the message names the variable, never a value."""


INVOICE_HOSTS: Mapping[str, str] = {
    "stage": "https://einvoice-stage.ecpay.com.tw",
    "production": "https://einvoice.ecpay.com.tw",
}
# ECPay's public e-invoice test merchant (SDK_PHP examples; protocol page §13.6): public like 3002607.
INVOICE_TEST_MERCHANT = ("2000132", "ejCk326UnaZWKisg", "q9jcZX8Ib9LM8wYk")
MAX_RELATE_PREFIX = 18  # + the 12-character transaction id = ECPay's 30-character RelateNumber


@dataclass(frozen=True)
class InvoiceSettings:
    """The e-invoice service: its host and its own merchant keys (the keys never appear in a repr)."""

    base_url: str
    merchant_id: str
    hash_key: str = field(repr=False)
    hash_iv: str = field(repr=False)
    relate_prefix: str = "W"

    @property
    def is_public_test_merchant(self) -> bool:
        """True for ECPay's published test merchant 2000132."""
        return self.merchant_id == INVOICE_TEST_MERCHANT[0]


@dataclass(frozen=True)
class Settings:
    """Everything the handlers and commands need to know, parsed and checked once."""

    ecpay_env: EcpayEnvironment = "sandbox"
    ecpay_base_url: str | None = None
    # None when this function is configured never to talk to ECPay (ECPAY_CREDENTIALS=none).
    credentials: MerchantCredentials | None = field(default_factory=MerchantCredentials.stage_test_merchant)
    cross_check: bool = False
    store_url: str = DEFAULT_STORE_URL
    api_token: str | None = field(default=None, repr=False)
    auth_mode: AuthMode = "token"
    jwt_user_claim: str = "sub"
    jwt_groups_claim: str = "cognito:groups"
    jwt_operator_group: str | None = "operators"
    jwt_operator_scope: str | None = None
    events_outbox: str | None = None  # local mode: the JSON-lines file wallet events are appended to
    frontend_url: str | None = None
    public_base_url: str | None = None
    cors_origins: tuple[str, ...] = ()
    on_lambda: bool = False
    credit_check_code: int | None = None
    amount_limits: AmountLimits = DEFAULT_AMOUNT_LIMITS
    reconcile_deadline: float = DEFAULT_RECONCILE_DEADLINE  # seconds
    cross_check_timeout: float = DEFAULT_CROSS_CHECK_TIMEOUT  # seconds
    ecpay_timeout: float = DEFAULT_ECPAY_TIMEOUT  # seconds
    invoicing: InvoiceSettings | None = None  # None: no e-invoices (issue 13)

    @property
    def ecpay_enabled(self) -> bool:
        """True when this function has ECPay credentials (checkout, callbacks, refund, sync)."""
        return self.credentials is not None

    @property
    def auth_required(self) -> bool:
        """True when management routes must present credentials (a token, or a JWT checked upstream)."""
        return self.auth_mode == "jwt" or self.api_token is not None or self.on_lambda


def _clean(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _parse_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = _clean(env, name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false")


def _parse_url(env: Mapping[str, str], name: str) -> str | None:
    value = _clean(env, name)
    if value is None:
        return None
    if not value.startswith(("http://", "https://")) or any(c.isspace() for c in value):
        raise ConfigError(f"{name} must be an http(s) URL")
    return value.rstrip("/")


def _parse_seconds(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    value = _clean(env, name)
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds") from None
    if not low <= seconds <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g} seconds")
    return seconds


def _parse_check_code(env: Mapping[str, str], ecpay_env: EcpayEnvironment) -> int | None:
    value = _clean(env, "ECPAY_CREDIT_CHECK_CODE")
    if value is None:
        return SANDBOX_CREDIT_CHECK_CODE if ecpay_env == "sandbox" else None
    if not value.isdigit() or len(value) > 10:
        raise ConfigError("ECPAY_CREDIT_CHECK_CODE must be the digits of the merchant's credit check code")
    return int(value)


def _parse_amount_limits(env: Mapping[str, str]) -> AmountLimits:
    value = _clean(env, "AMOUNT_LIMITS")
    if value is None:
        return DEFAULT_AMOUNT_LIMITS
    try:
        return AmountLimits.from_env_text(value)
    except ValueError as exc:
        raise ConfigError(f"AMOUNT_LIMITS: {exc}") from None


def _read_secret_with_boto3(arn: str) -> str:
    # Imported here: only functions that hold a secret ARN pay for boto3 at this point.
    import boto3  # noqa: PLC0415

    client: Any = boto3.client("secretsmanager")
    try:
        answer = client.get_secret_value(SecretId=arn)
    except Exception as exc:  # botocore's errors carry no secret; keep only the class name anyway
        raise ConfigError(f"cannot read secret {arn} ({type(exc).__name__})") from None
    secret = answer.get("SecretString")
    if not isinstance(secret, str):
        raise ConfigError(f"secret {arn} has no SecretString")
    return secret


def _credentials_from_secret(arn: str, read_secret: SecretReader) -> MerchantCredentials | None:
    try:
        data = json.loads(read_secret(arn))
    except json.JSONDecodeError:
        raise ConfigError("ECPAY_SECRET_ARN must hold JSON {MerchantID, HashKey, HashIV}") from None
    if not isinstance(data, dict):
        raise ConfigError("ECPAY_SECRET_ARN must hold JSON {MerchantID, HashKey, HashIV}")
    values = [str(data.get(key) or "").strip() for key in ("MerchantID", "HashKey", "HashIV")]
    if not any(values):
        # A freshly deployed stack holds a blank secret until the operator puts the real one.
        return None
    if not all(values):
        raise ConfigError("ECPAY_SECRET_ARN must set all of MerchantID, HashKey and HashIV")
    return MerchantCredentials(values[0], values[1], values[2])


def _resolve_credentials(
    env: Mapping[str, str], ecpay_env: EcpayEnvironment, read_secret: SecretReader
) -> MerchantCredentials | None:
    mode = (_clean(env, "ECPAY_CREDENTIALS") or "auto").lower()
    if mode == "none":
        return None
    if mode != "auto":
        raise ConfigError("ECPAY_CREDENTIALS must be 'auto' or 'none'")
    credentials: MerchantCredentials | None = None
    arn = _clean(env, "ECPAY_SECRET_ARN")
    given = [_clean(env, name) for name in ("ECPAY_MERCHANT_ID", "ECPAY_HASH_KEY", "ECPAY_HASH_IV")]
    if arn is not None:
        credentials = _credentials_from_secret(arn, read_secret)
    elif any(given):
        if not all(given):
            raise ConfigError("set all of ECPAY_MERCHANT_ID, ECPAY_HASH_KEY and ECPAY_HASH_IV")
        credentials = MerchantCredentials(cast(str, given[0]), cast(str, given[1]), cast(str, given[2]))
    if credentials is None:
        if ecpay_env == "production":
            raise ConfigError(
                "ECPAY_ENV=production needs real merchant credentials "
                "(ECPAY_SECRET_ARN, or ECPAY_MERCHANT_ID/ECPAY_HASH_KEY/ECPAY_HASH_IV)"
            )
        return MerchantCredentials.stage_test_merchant()
    if ecpay_env == "production" and credentials.is_public_test_merchant:
        raise ConfigError("ECPAY_ENV=production refuses ECPay's public test merchant")
    return credentials


def _resolve_token(env: Mapping[str, str], read_secret: SecretReader) -> str | None:
    token = _clean(env, "API_TOKEN")
    arn = _clean(env, "API_TOKEN_SECRET_ARN")
    if token is None and arn is not None:
        token = read_secret(arn).strip() or None
    return token


def _invoice_keys(env: Mapping[str, str], read_secret: SecretReader) -> tuple[str, str, str] | None:
    arn = _clean(env, "INVOICE_SECRET_ARN")
    given = [_clean(env, name) for name in ("INVOICE_MERCHANT_ID", "INVOICE_HASH_KEY", "INVOICE_HASH_IV")]
    if arn is not None:
        try:
            data = json.loads(read_secret(arn))
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise ConfigError("INVOICE_SECRET_ARN must hold JSON {MerchantID, HashKey, HashIV}")
        values = [str(data.get(key) or "").strip() for key in ("MerchantID", "HashKey", "HashIV")]
        if not any(values):
            return None  # a freshly deployed stack's blank secret: like no keys at all
        if not all(values):
            raise ConfigError("INVOICE_SECRET_ARN must set all of MerchantID, HashKey and HashIV")
        return values[0], values[1], values[2]
    if any(given):
        if not all(given):
            raise ConfigError("set all of INVOICE_MERCHANT_ID, INVOICE_HASH_KEY and INVOICE_HASH_IV")
        return cast(str, given[0]), cast(str, given[1]), cast(str, given[2])
    return None


def _parse_invoicing(
    env: Mapping[str, str], ecpay_env: EcpayEnvironment, ecpay_base: str | None, read_secret: SecretReader
) -> InvoiceSettings | None:
    if not _parse_bool(env, "INVOICING", default=False):
        return None
    keys = _invoice_keys(env, read_secret)
    if keys is None:
        if ecpay_env == "production":
            raise ConfigError(
                "INVOICING=on with ECPAY_ENV=production needs the e-invoice merchant's keys "
                "(INVOICE_SECRET_ARN, or INVOICE_MERCHANT_ID/INVOICE_HASH_KEY/INVOICE_HASH_IV)"
            )
        keys = INVOICE_TEST_MERCHANT
    elif ecpay_env == "production" and keys[0] == INVOICE_TEST_MERCHANT[0]:
        raise ConfigError("ECPAY_ENV=production refuses ECPay's public e-invoice test merchant 2000132")
    for name, value in (("INVOICE_HASH_KEY", keys[1]), ("INVOICE_HASH_IV", keys[2])):
        if len(value) != 16 or not value.isascii():
            raise ConfigError(f"{name} must be the 16 ASCII characters ECPay gives (AES-128 key/IV)")
    base = _parse_url(env, "INVOICE_BASE_URL")
    if base is None:
        base = ecpay_base if ecpay_env == "sandbox" else INVOICE_HOSTS[ecpay_env]
    if base is None:
        raise ConfigError("INVOICING=on in sandbox mode needs INVOICE_BASE_URL (or ECPAY_BASE_URL)")
    prefix = _clean(env, "INVOICE_RELATE_PREFIX") or "W"
    if (
        len(prefix) > MAX_RELATE_PREFIX
        or not prefix.isascii()
        or not prefix.replace("-", "").replace("_", "").isalnum()
    ):
        raise ConfigError(
            f"INVOICE_RELATE_PREFIX must be 1 to {MAX_RELATE_PREFIX} letters, digits, '-' or '_' "
            "(with the 12-character transaction id it makes ECPay's RelateNumber of at most 30)"
        )
    return InvoiceSettings(base, keys[0], keys[1], keys[2], prefix)


def parse_settings(env: Mapping[str, str], *, read_secret: SecretReader | None = None) -> Settings:
    """Build settings from a mapping of environment variables (raises ``ConfigError``)."""
    reader = read_secret or _read_secret_with_boto3
    ecpay_env = (_clean(env, "ECPAY_ENV") or "sandbox").lower()
    if ecpay_env not in ENVIRONMENTS:
        raise ConfigError("ECPAY_ENV must be sandbox, stage or production")
    ecpay_env_t: EcpayEnvironment = ecpay_env
    base_url = _parse_url(env, "ECPAY_BASE_URL")
    credentials = _resolve_credentials(env, ecpay_env_t, reader)
    if ecpay_env_t == "sandbox" and base_url is None and credentials is not None:
        raise ConfigError("ECPAY_ENV=sandbox needs ECPAY_BASE_URL (the offline sandbox's address)")
    auth_mode = (_clean(env, "AUTH_MODE") or "token").lower()
    if auth_mode not in AUTH_MODES:
        raise ConfigError("AUTH_MODE must be token or jwt")
    origins = tuple(o.strip().rstrip("/") for o in (env.get("CORS_ORIGINS") or "").split(",") if o.strip())
    return Settings(
        ecpay_env=ecpay_env_t,
        ecpay_base_url=base_url,
        credentials=credentials,
        cross_check=_parse_bool(env, "ECPAY_CROSS_CHECK", default=ecpay_env_t != "sandbox"),
        store_url=_clean(env, "STORE_URL") or DEFAULT_STORE_URL,
        api_token=_resolve_token(env, reader) if auth_mode == "token" else None,
        auth_mode=auth_mode,
        jwt_user_claim=_clean(env, "JWT_USER_CLAIM") or "sub",
        jwt_groups_claim=_clean(env, "JWT_GROUPS_CLAIM") or "cognito:groups",
        # An explicit empty JWT_OPERATOR_GROUP turns groups off (operators then come by scope only).
        jwt_operator_group=_clean(env, "JWT_OPERATOR_GROUP") if "JWT_OPERATOR_GROUP" in env else "operators",
        jwt_operator_scope=_clean(env, "JWT_OPERATOR_SCOPE"),
        events_outbox=_clean(env, "EVENTS_OUTBOX"),
        frontend_url=_parse_url(env, "FRONTEND_URL"),
        public_base_url=_parse_url(env, "PUBLIC_BASE_URL"),
        cors_origins=origins,
        on_lambda=_clean(env, "AWS_LAMBDA_FUNCTION_NAME") is not None,
        credit_check_code=_parse_check_code(env, ecpay_env_t),
        amount_limits=_parse_amount_limits(env),
        reconcile_deadline=_parse_seconds(
            env, "RECONCILE_DEADLINE_SECONDS", DEFAULT_RECONCILE_DEADLINE, 5.0, 900.0
        ),
        ecpay_timeout=_parse_seconds(env, "ECPAY_TIMEOUT", DEFAULT_ECPAY_TIMEOUT, 0.1, 120.0),
        cross_check_timeout=_parse_seconds(
            env, "ECPAY_CROSS_CHECK_TIMEOUT", DEFAULT_CROSS_CHECK_TIMEOUT, 0.5, 4.5
        ),
        invoicing=_parse_invoicing(env, ecpay_env_t, base_url, reader),
    )


@functools.cache
def load_settings() -> Settings:
    """The process's settings from ``os.environ``, parsed once (per Lambda cold start)."""
    return parse_settings(os.environ)
