"""Drive the Lambda handlers the way API Gateway does: payload-2.0 events routed by template.yaml.

``Api.request`` finds the route in template.yaml (most specific path first, as API Gateway matches),
builds the event AWS would send (stage in ``rawPath``, lower-case headers, optional base64 body) and
calls the handler the template names. So every test also checks the template's routing.
"""

from __future__ import annotations

import base64
import importlib
import json
import re
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ecpay_lambda.ecpay.checkmac import check_mac_value
from ecpay_lambda.ecpay.credentials import MerchantCredentials

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "template.yaml"
STAGE = "Prod"
DOMAIN = "abc123.execute-api.ap-northeast-1.amazonaws.com"
TOKEN = "unit-test-token-not-a-secret"
MERCHANT = MerchantCredentials.stage_test_merchant()
_DEFAULT = object()


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags as plain data."""


def _any_tag(loader: _CfnLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _any_tag)


def load_template() -> dict[str, Any]:
    """template.yaml as data (intrinsic tags kept as one-key dicts)."""
    data = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)
    assert isinstance(data, dict)
    return data


@dataclass(frozen=True)
class Route:
    """One HttpApi event of the template."""

    method: str
    path: str
    handler: str
    function: str

    @property
    def route_key(self) -> str:
        """API Gateway's routeKey."""
        return f"{self.method} {self.path}"


@cache
def routes() -> tuple[Route, ...]:
    """Every HttpApi route of template.yaml."""
    template = load_template()
    found = []
    for name, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        for event in (props.get("Events") or {}).values():
            if event.get("Type") == "HttpApi":
                p = event["Properties"]
                found.append(Route(p["Method"].upper(), p["Path"], props["Handler"], name))
    return tuple(found)


def match(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The template route API Gateway would pick, with its path parameters."""
    best: tuple[tuple[int, ...], Route, dict[str, str]] | None = None
    segments = path.strip("/").split("/")
    for route in routes():
        if route.method != method.upper():
            continue
        pattern = route.path.strip("/").split("/")
        if len(pattern) != len(segments):
            continue
        params: dict[str, str] = {}
        rank: list[int] = []
        for want, got in zip(pattern, segments, strict=True):
            m = re.fullmatch(r"\{(\w+)\}", want)
            if m and got:
                params[m.group(1)] = urllib.parse.unquote(got)
                rank.append(1)
            elif want == got:
                rank.append(0)
            else:
                break
        else:
            if best is None or tuple(rank) < best[0]:
                best = (tuple(rank), route, params)
    return None if best is None else (best[1], best[2])


def handler_of(route: Route) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Import the handler a route names (``module.function``)."""
    module_name, _, function = route.handler.rpartition(".")
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = getattr(
        importlib.import_module(module_name), function
    )
    return handler


class LambdaContext:
    """The attributes Powertools' Logger reads from a Lambda context."""

    function_name = "unit-test"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:ap-northeast-1:123456789012:function:unit-test"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        """A fresh invocation of the scheduled function (its timeout is 300 s)."""
        return 300_000


def make_event(
    method: str,
    path: str,
    *,
    body: str | bytes | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    base64_body: bool = False,
    route: Route | None = None,
    path_parameters: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A payload-2.0 event as API Gateway HTTP API sends it (stage in rawPath)."""
    raw_path = f"/{STAGE}{path}"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key if route else "$default",
        "rawPath": raw_path,
        "rawQueryString": urllib.parse.urlencode(query or {}),
        "headers": {k.lower(): v for k, v in (headers or {}).items()},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": DOMAIN,
            "domainPrefix": "abc123",
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "unit-test",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route.route_key if route else "$default",
            "stage": STAGE,
            "time": "27/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1795521600000,
        },
        "isBase64Encoded": base64_body,
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body is not None:
        raw = body.encode("utf-8") if isinstance(body, str) else body
        event["body"] = base64.b64encode(raw).decode("ascii") if base64_body else raw.decode("utf-8")
    return event


@dataclass
class Resp:
    """A handler's answer."""

    status: int
    headers: dict[str, str]
    body: str
    raw: dict[str, Any] = field(repr=False)

    def header(self, name: str) -> str | None:
        """A response header by case-insensitive name."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        """The body as JSON (asserting the content type says so)."""
        assert (self.header("content-type") or "").startswith("application/json"), self.headers
        return json.loads(self.body)

    @property
    def error_code(self) -> str:
        """``error.code`` of a JSON error answer."""
        data = self.json()
        assert set(data) == {"error"}, data
        assert isinstance(data["error"]["message"], str)
        return str(data["error"]["code"])


class Api:
    """Calls the handlers template.yaml routes requests to, as API Gateway would."""

    def __init__(self, token: str | None = TOKEN, claims: Mapping[str, Any] | None = None) -> None:
        self.token = token
        # The claims API Gateway's JWT authorizer would pass on (AUTH_MODE=jwt): as if it verified a token.
        self.claims = dict(claims) if claims is not None else None

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = _DEFAULT,
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        base64_body: bool = False,
        token: Any = _DEFAULT,
    ) -> Resp:
        """Send one request; 404 like API Gateway when no template route matches."""
        all_headers = dict(headers or {})
        bearer = self.token if token is _DEFAULT else token
        if bearer is not None:
            all_headers.setdefault("Authorization", f"Bearer {bearer}")
        if json_body is not _DEFAULT:
            body = json.dumps(json_body)
            all_headers.setdefault("Content-Type", "application/json")
        found = match(method, path)
        if found is None:
            return Resp(404, {"Content-Type": "application/json"}, '{"message":"Not Found"}', {})
        route, params = found
        event = make_event(
            method,
            path,
            body=body,
            headers=all_headers,
            query=query,
            base64_body=base64_body,
            route=route,
            path_parameters=params,
        )
        if self.claims is not None:
            event["requestContext"]["authorizer"] = {"jwt": {"claims": dict(self.claims), "scopes": None}}
        raw = handler_of(route)(event, LambdaContext())
        return to_resp(raw)


def to_resp(raw: dict[str, Any]) -> Resp:
    """Check a handler result's shape and wrap it."""
    assert isinstance(raw.get("statusCode"), int), raw
    body = raw.get("body") or ""
    if raw.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8")
    return Resp(int(raw["statusCode"]), dict(raw.get("headers") or {}), body, raw)


# --- ECPay notifications ------------------------------------------------------------------------


def sign(fields: Mapping[str, str], credentials: MerchantCredentials = MERCHANT) -> dict[str, str]:
    """``fields`` plus the CheckMacValue ECPay would send."""
    signed = dict(fields)
    signed["CheckMacValue"] = check_mac_value(signed, credentials.hash_key, credentials.hash_iv)
    return signed


def form(fields: Mapping[str, str]) -> str:
    """Form-encode as ECPay posts (blank values kept)."""
    return urllib.parse.urlencode(fields)


def return_fields(mtn: str, amount: int, *, rtn_code: str = "1", simulate_paid: str = "0") -> dict[str, str]:
    """A ReturnURL notification's fields, with blank ones (which are signed too)."""
    return {
        "CustomField1": "",
        "CustomField2": "",
        "CustomField3": "",
        "CustomField4": "",
        "MerchantID": MERCHANT.merchant_id,
        "MerchantTradeNo": mtn,
        "PaymentDate": "2026/11/27 12:01:02" if rtn_code == "1" else "",
        "PaymentType": "Credit_CreditCard",
        "PaymentTypeChargeFee": "3",
        "RtnCode": rtn_code,
        "RtnMsg": "交易成功" if rtn_code == "1" else "交易失敗",
        "SimulatePaid": simulate_paid,
        "StoreID": "",
        "TradeAmt": str(amount),
        "TradeDate": "2026/11/27 12:00:00",
        "TradeNo": "2611271200000001",
        "gwsr": "11304112",  # NeedExtraPaidInfo=Y: the card authorisation serial refunds need
    }


def atm_info_fields(mtn: str, amount: int) -> dict[str, str]:
    """A PaymentInfoURL notification: an ATM virtual account was issued."""
    return {
        "BankCode": "812",
        "CustomField1": "",
        "CustomField2": "",
        "CustomField3": "",
        "CustomField4": "",
        "ExpireDate": "2026/11/30",
        "MerchantID": MERCHANT.merchant_id,
        "MerchantTradeNo": mtn,
        "PaymentType": "ATM_TAISHIN",
        "RtnCode": "2",
        "RtnMsg": "Get VirtualAccount Succeeded",
        "StoreID": "",
        "TradeAmt": str(amount),
        "TradeDate": "2026/11/27 12:00:00",
        "TradeNo": "2611271200000002",
        "vAccount": "9103522175887271",
    }
