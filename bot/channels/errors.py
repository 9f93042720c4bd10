"""API errors: `ApiError` for a client mistake, and the error handler that answers every
exception as one-line JSON (`{"error": ..., "reason": ..., "code": ...}`), never a traceback."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sanic import Request, response
from sanic.exceptions import PayloadTooLarge, SanicException
from sanic.handlers import ErrorHandler
from sanic.response import HTTPResponse

from bot.stores.base import StoreUnavailable

logger = logging.getLogger(__name__)


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
