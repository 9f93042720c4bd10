"""Who may call and how often: Rasa's auth token, and the per-key sliding-window rate limit."""

from __future__ import annotations

import hmac
import math
import time
from collections import deque
from dataclasses import dataclass, field

from sanic import Request

from bot.channels.errors import ApiError


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
