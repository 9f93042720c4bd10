"""What every HTTP request passes through: JSON body checks, auth token, CORS, rate limit,
security headers, and errors as one-line JSON (`{"error": ..., "code": ...}`), never a traceback."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import re
import time
from collections import deque
from urllib.parse import unquote
from dataclasses import dataclass, field
from typing import Any

from sanic import Request, response
from sanic.exceptions import PayloadTooLarge, SanicException
from sanic.handlers import ErrorHandler
from sanic.response import HTTPResponse

from bot.limits import MAX_JSON_DEPTH, json_depth_exceeds, message_error, sender_id_error
from bot.stores.base import StoreUnavailable

logger = logging.getLogger(__name__)

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")   # RFC 9110 token
_HEADER_VALUE_BAD = re.compile(r"[\r\n\x00]")
_JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json$")

# Pages may load scripts, styles and data only from this server: no inline code at all.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'"
)


class ApiError(Exception):
    """A client error answered as `{"error": message, "reason": reason, "code": status}`."""

    def __init__(self, status: int, message: str, reason: str = "BadRequest", **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.extra = extra
        self.headers: dict[str, str] = {}


def error_response(status: int, message: str, reason: str, **extra: Any) -> HTTPResponse:
    body = {"error": message, "reason": reason, "code": status, **extra}
    return response.json(body, status=status)


class JsonErrorHandler(ErrorHandler):
    """Turns every exception into a one-line JSON error; unexpected ones are logged, not shown."""

    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        if isinstance(exception, ApiError):
            resp = error_response(exception.status, exception.message, exception.reason,
                                  **exception.extra)
            resp.headers.update(exception.headers)
            return resp
        if isinstance(exception, StoreUnavailable):
            logger.error("%s", exception)  # names the store, masks passwords, no message text
            resp = error_response(503, "the conversation store is unavailable; try again soon",
                                  "StoreUnavailable")
            resp.headers["Retry-After"] = "5"
            return resp
        if isinstance(exception, (asyncio.CancelledError, ConnectionError)):
            # the client went away (e.g. a socket.io websocket closed): nobody to answer
            logger.debug("request cancelled: %s", _route(request))
            return response.empty(status=499)
        if isinstance(exception, SanicException):
            status = int(getattr(exception, "status_code", 500) or 500)
            reason = type(exception).__name__
            message = str(exception.message if hasattr(exception, "message") else exception)
            if isinstance(exception, PayloadTooLarge):
                config = getattr(getattr(request, "app", None), "config", {})
                if "header" in message.lower():  # the request line (URL) and headers
                    status, reason = 431, "HeadersTooLarge"
                    message = (f"the URL and headers are larger than the limit of "
                               f"{config.get('REQUEST_MAX_HEADER_SIZE')} bytes")
                else:
                    message = f"request is larger than the limit of {config.get('REQUEST_MAX_SIZE')} bytes"
            if status >= 500:
                logger.error("%s on %s", reason, _route(request))
                message = "internal server error"
            resp = error_response(status, message or reason, reason)
            if status == 405 and getattr(exception, "allowed_methods", None):
                resp.headers["Allow"] = ", ".join(sorted(exception.allowed_methods))
            return resp
        logger.exception("unhandled error on %s", _route(request))
        return error_response(500, "internal server error", "InternalError")


def _route(request: Request) -> str:
    """The route pattern (`/conversations/<conversation_id>/tracker`), never the raw path:
    paths hold conversation ids, which stay out of the logs."""
    route = getattr(request, "route", None)
    return getattr(route, "path", None) or "(unrouted request)"


def check_headers(request: Request) -> None:
    """Refuse headers a proxy in front could read differently (request smuggling): names that
    are not tokens (`Transfer-Encoding :`), CR/LF/NUL in values, more than one Host."""
    for name, value in request.headers.items():
        if not _HEADER_NAME.match(name) or _HEADER_VALUE_BAD.search(value):
            raise ApiError(400, "malformed request header", "BadHeader")
    if len(request.headers.getall("host", [])) > 1:
        raise ApiError(400, "more than one Host header", "BadHeader")


def json_body(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or an ApiError saying what is wrong with it.

    Only `Content-Type: application/json` is read: a cross-site HTML form or a no-preflight
    `fetch` can post text/plain, form or typeless bodies, never JSON."""
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if not _JSON_TYPE.match(content_type):
        raise ApiError(415, "send the body as JSON with `Content-Type: application/json`",
                       "UnsupportedMediaType")
    raw = request.body or b""
    if not raw.strip():
        raise ApiError(400, "request body is empty; send a JSON object", "EmptyBody")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "request body is not valid UTF-8", "InvalidEncoding") from None
    try:
        data = json.loads(text, parse_constant=_not_json, parse_float=_finite_float)
    except (ValueError, RecursionError):
        raise ApiError(400, "request body is not valid JSON (RFC 8259: no NaN or Infinity)",
                       "MalformedJson") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object", "WrongType")
    if json_depth_exceeds(data):
        raise ApiError(400, f"request body nests deeper than {MAX_JSON_DEPTH} levels", "TooDeep")
    return data


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if value in (float("inf"), float("-inf")):  # 1e999: would be served back as Infinity
        raise ValueError(f"{literal} is out of range")
    return value


def optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"`{key}` must be a string", "WrongType", field=key)
    return value


def required_text(data: dict[str, Any], key: str) -> str:
    if key not in data or data[key] is None:
        raise ApiError(400, f"`{key}` is missing", "MissingField", field=key)
    value = data[key]
    if not isinstance(value, str):
        raise ApiError(400, f"`{key}` must be a string", "WrongType", field=key)
    if not value.strip():
        raise ApiError(400, f"`{key}` is empty", "EmptyMessage", field=key)
    return value


def message_text(data: dict[str, Any], key: str) -> str:
    """A user message (required_text) within the length limit (bot/limits.py), else 413."""
    value = required_text(data, key)
    problem = message_error(value)
    if problem:
        raise ApiError(413, f"`{key}`: {problem}", "MessageTooLong", field=key)
    return value


def sender_id(value: Any, key: str = "sender") -> str:
    """A conversation id by the one rule every channel uses (bot/limits.py)."""
    if not isinstance(value, str):
        raise ApiError(400, f"`{key}` must be a string", "WrongType", field=key)
    problem = sender_id_error(value)
    if problem:
        raise ApiError(400, f"`{key}` {problem}", "InvalidSenderId", field=key)
    return value


def path_id(raw: str, key: str = "conversation_id") -> str:
    """A conversation id taken from a URL path: percent-decoded (Sanic hands path parameters
    over raw, so `user%40x.com` is `user@x.com`), then checked like any other id."""
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise ApiError(400, f"`{key}` is not valid percent-encoded UTF-8", "InvalidSenderId",
                       field=key) from None
    return sender_id(decoded, key)


def optional_object(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(400, f"`{key}` must be a JSON object", "WrongType", field=key)
    return value


_TRUE, _FALSE = {"true"}, {"false"}


def bool_arg(request: Request, name: str, default: bool = False) -> bool:
    values = request.get_args(keep_blank_values=True).getlist(name)  # `?stream=` is not "absent"
    if not values:
        return default
    value = values[-1].strip().lower()
    if value not in _TRUE | _FALSE or len(set(values)) > 1:
        raise ApiError(400, f"query parameter `{name}` must be true or false", "InvalidParameter",
                       field=name)
    return value in _TRUE


def check_token(request: Request, token: str | None) -> None:
    """Rasa's `--auth-token`: `?token=...` (or `Authorization: Bearer ...`) must match."""
    if not token:
        return
    given = request.args.get("token")
    if given is None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith(("bearer ", "token ")):
            given = header.split(None, 1)[1].strip()
    if not given:
        raise ApiError(401, "authentication required: add ?token=<auth token>",
                       "NotAuthenticated")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise ApiError(403, "the auth token is not valid", "NotAuthorized")


@dataclass
class RateLimiter:
    """Sliding window: at most `limit` requests per `period` seconds for each key."""

    limit: int
    period: float
    _hits: dict[str, deque[float]] = field(default_factory=dict)

    def check(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            hits = self._hits.setdefault(key, deque())
            while hits and now - hits[0] >= self.period:
                hits.popleft()
            if len(hits) >= self.limit:
                retry = max(1, math.ceil(self.period - (now - hits[0])))
                err = ApiError(429, "too many messages; slow down", "RateLimited",
                               retry_after=retry)
                err.headers["Retry-After"] = str(retry)
                raise err
        for key in keys:
            self._hits[key].append(now)
        if len(self._hits) > 10_000:  # forget idle keys so memory stays bounded
            for key in [k for k, v in self._hits.items() if not v or now - v[-1] >= self.period]:
                del self._hits[key]


def parse_rate_limit(value: str | tuple[int, float] | None) -> RateLimiter | None:
    """`"30/60"` (30 messages per 60 s) or `(30, 60.0)` -> RateLimiter; None/"" -> no limit."""
    if not value:
        return None
    if isinstance(value, str):
        count, _, period = value.partition("/")
        limit, seconds = int(count), float(period or 60)
    else:
        limit, seconds = int(value[0]), float(value[1])
    if limit < 1 or seconds <= 0:
        raise ValueError(f"rate limit {value!r}: use COUNT/SECONDS with both above 0")
    return RateLimiter(limit, seconds)


@dataclass(frozen=True)
class Cors:
    """Which browser origins may call the API (`*` allows any)."""

    origins: tuple[str, ...] = ()

    def allow(self, origin: str | None) -> str | None:
        if not origin or not self.origins:
            return None
        if "*" in self.origins:
            return "*"
        return origin if origin in self.origins else None

    def apply(self, request: Request, resp: HTTPResponse) -> None:
        allowed = self.allow(request.headers.get("origin"))
        if allowed:
            resp.headers["Access-Control-Allow-Origin"] = allowed
            if allowed != "*":
                resp.headers["Vary"] = "Origin"

    def preflight(self, request: Request) -> HTTPResponse:
        resp = response.empty(status=204)
        allowed = self.allow(request.headers.get("origin"))
        if allowed:
            self.apply(request, resp)
            resp.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
            resp.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
            resp.headers["Access-Control-Max-Age"] = "600"
        return resp


def add_security_headers(request: Request, resp: HTTPResponse, *, frame_ancestors: str) -> None:
    """Headers on every answer; pages also get a strict CSP (`frame_ancestors` for framing)."""
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    content_type = resp.content_type or resp.headers.get("content-type", "")
    if content_type.startswith("text/html"):
        resp.headers.setdefault("Content-Security-Policy",
                                f"{PAGE_CSP}; frame-ancestors {frame_ancestors}")
        if frame_ancestors == "'none'":
            resp.headers.setdefault("X-Frame-Options", "DENY")
    elif "Content-Security-Policy" not in resp.headers:
        resp.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
