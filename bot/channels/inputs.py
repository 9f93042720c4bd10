"""What a request may carry: well-formed headers, a JSON object body (no NaN, not too deep),
fields of the right type, message texts and conversation ids by the rules of bot/limits.py,
query flags. Each reader returns the value or raises an ApiError saying what is wrong."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

from sanic import Request

from bot.channels.errors import ApiError
from bot.limits import MAX_JSON_DEPTH, json_depth_exceeds, message_error, sender_id_error

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")   # RFC 9110 token
_HEADER_VALUE_BAD = re.compile(r"[\r\n\x00]")
_JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json$")


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


def _optional(data: dict[str, Any], key: str, kind: type, what: str) -> Any:
    value = data.get(key)
    if value is not None and not isinstance(value, kind):
        raise ApiError(400, f"`{key}` must be {what}", "WrongType", field=key)
    return value


def optional_str(data: dict[str, Any], key: str) -> str | None:
    return _optional(data, key, str, "a string")


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
    return _optional(data, key, dict, "a JSON object")


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
