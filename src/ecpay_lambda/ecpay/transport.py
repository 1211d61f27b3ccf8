"""Injectable HTTP transport for ECPay's server-to-server APIs (the httpx transport idea)."""

# Annotations evaluated, not postponed: the cold-start rule (docs/performance.md).

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import NamedTuple, Protocol

from .errors import TransportError

# ECPay's answers are a few kilobytes; anything far larger is not ECPay and is not read into memory.
MAX_RESPONSE_BYTES = 1024 * 1024


class HttpResponse(NamedTuple):
    """What a transport returns: status and raw body bytes."""

    status: int
    body: bytes
    headers: Mapping[str, str]


class Transport(Protocol):
    """Sends one form POST. Tests and the sandbox plug in their own; the default uses urllib."""

    def post_form(self, url: str, fields: Mapping[str, str], *, timeout: float) -> HttpResponse:
        """POST ``fields`` form-encoded (UTF-8) to ``url``; raise ``TransportError`` on I/O failure.

        Any HTTP status is returned as a response (the client maps 403 and other non-200s);
        only failures to get an answer at all raise.
        """
        ...


class JsonTransport(Protocol):
    """Sends one JSON POST (ECPay's AES-JSON services, e.g. the e-invoice API).

    A separate protocol, so transports written for the form APIs alone stay valid; the default
    transport and the sandbox's implement both.
    """

    def post_json(self, url: str, body: bytes, *, timeout: float) -> HttpResponse:
        """POST ``body`` (UTF-8 JSON) to ``url``; raise ``TransportError`` on I/O failure.

        As ``post_form``: any HTTP status is an answer; only failing to get one raises.
        """
        ...


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect from ECPay's API is never expected; following it would turn the POST into a GET
    # somewhere else. Returning None makes urllib surface the 30x as an HTTPError (a response).
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def encode_form(fields: Mapping[str, str]) -> bytes:
    """``application/x-www-form-urlencoded`` UTF-8 body of ``fields`` (standard form encoding)."""
    return urllib.parse.urlencode(list(fields.items()), encoding="utf-8").encode("ascii")


def _read_limited(stream: object, limit: int) -> bytes:
    read = getattr(stream, "read", None)
    if read is None:
        return b""
    data: bytes = read(limit + 1)
    if len(data) > limit:
        raise TransportError(f"response body larger than {limit} bytes")
    return data


class UrllibTransport:
    """The default transport: stdlib urllib over HTTPS, no extra dependency."""

    def __init__(self, *, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self._opener = urllib.request.build_opener(_NoRedirect())
        self._max_response_bytes = max_response_bytes

    def post_form(self, url: str, fields: Mapping[str, str], *, timeout: float) -> HttpResponse:
        """POST ``fields`` with urllib."""
        return self._post(
            url, encode_form(fields), "application/x-www-form-urlencoded; charset=utf-8", timeout
        )

    def post_json(self, url: str, body: bytes, *, timeout: float) -> HttpResponse:
        """POST a JSON ``body`` with urllib."""
        return self._post(url, body, "application/json; charset=utf-8", timeout)

    def _post(self, url: str, data: bytes, content_type: str, timeout: float) -> HttpResponse:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("https", "http"):
            raise TransportError(f"unsupported URL scheme {scheme!r}")
        if not timeout > 0:
            raise TransportError("timeout must be positive")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url,
            data=data,
            method="POST",
            headers={
                "Content-Type": content_type,
                "Accept": "text/html, application/json, text/plain, */*",
                "User-Agent": "ecpay-lambda",
            },
        )
        try:
            with self._opener.open(request, timeout=timeout) as reply:
                body = _read_limited(reply, self._max_response_bytes)
                return HttpResponse(reply.status, body, dict(reply.headers.items()))
        except urllib.error.HTTPError as error:
            # A non-2xx status is still an answer: hand it to the client to classify.
            try:
                body = _read_limited(error, self._max_response_bytes)
            finally:
                error.close()
            headers = dict(error.headers.items()) if error.headers is not None else {}
            return HttpResponse(error.code, body, headers)
        except TransportError:
            raise
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as error:
            # The field values (which may include a CheckMacValue) never go into the message.
            reason = getattr(error, "reason", None) or error.__class__.__name__
            raise TransportError(f"POST {url} failed: {reason}") from error
