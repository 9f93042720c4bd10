"""CORS: which browser origins may call the API, on answers and preflights."""

from __future__ import annotations

from dataclasses import dataclass

from sanic import Request, response
from sanic.response import HTTPResponse


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
