"""Backline's own chat widget: the page at `/`, its static files, the embed script, and the
small state endpoint the widget polls after each reply (triage level, emergency number,
transcript for a reload).

The widget talks to the REST channel. `GET /widget/state/<id>` needs no auth token, because a
page cannot hold a secret: the conversation id itself (128 random bits, made in the browser) is
what lets a reload see its own transcript, and the answer holds only that conversation's texts
and triage level. It is incremental: `?after=<seq>` (the `seq` of the previous answer) returns
only the messages since then, so the poll after each reply costs the same at turn 2,000 as at
turn 2; `reset: true` says a restart cleared what the widget showed before.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any, Awaitable, Callable

from sanic import Blueprint, Request, response
from sanic.response import HTTPResponse

from bot.channels.access import RateLimiter
from bot.channels.errors import ApiError
from bot.channels.inputs import path_id
from bot.channels.rest import rest_messages

STATIC_DIR = Path(__file__).parent / "static"
# Served files, read once; anything else under /widget/ is a 404 (no path tricks possible).
_FILES = ("index.html", "widget.js", "widget.css", "embed.js", "icon.svg")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}


def _load_files() -> dict[str, tuple[bytes, str]]:
    files = {}
    for name in _FILES:
        path = STATIC_DIR / name
        if path.is_file():
            ctype = _TYPES.get(path.suffix) or mimetypes.guess_type(name)[0] or "text/plain"
            files[name] = (path.read_bytes(), ctype)
    return files


# Payloads the widget sends by itself: shown with these words, or (None) not at all.
_WIDGET_PAYLOADS = {"/greet": None, "/restart": None, "/request_summary": "Visit summary"}


def transcript(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """User and bot texts of `events`, as the widget shows them (button payloads -> titles),
    and whether a restart among them cleared what came before."""
    out: list[dict[str, Any]] = []
    titles: dict[str, str] = {}
    reset = False
    for event in events:
        kind = event.get("event")
        if kind == "user" and event.get("text"):
            text = event["text"]
            shown = titles.get(text, _WIDGET_PAYLOADS.get(text, text))
            if shown:
                out.append({"from": "user", "text": shown})
        elif kind == "bot":
            data = event.get("data") or {}
            message = {"text": event.get("text"), "buttons": data.get("buttons"),
                       "image": data.get("image"), "custom": data.get("custom")}
            titles = {b.get("payload"): b.get("title") for b in data.get("buttons") or []
                      if isinstance(b, dict)}
            for part in rest_messages("", [message]):
                part.pop("recipient_id", None)
                part["from"] = "bot"
                out.append(part)
        elif kind == "restart":
            out.clear()
            reset = True
    return out, reset


StateFn = Callable[[str, int], Awaitable[tuple[dict[str, Any] | None, list[dict[str, Any]], int]]]


def widget_blueprint(events_after: StateFn, settings: dict[str, Any],
                     rate_limiter: RateLimiter | None = None) -> Blueprint:
    """Routes for the widget; `events_after(id, seq)` returns (slots or None when unknown,
    the events numbered above seq, the latest number) -- Agent.events_after."""
    bp = Blueprint("widget")
    files = _load_files()

    def serve_file(name: str) -> HTTPResponse:
        if name not in files:
            raise ApiError(404, f"no widget file named {name!r}", "NotFound")
        body, ctype = files[name]
        resp = response.raw(body, content_type=ctype)
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    def serve_page(static_prefix: str) -> HTTPResponse:
        # Links relative to the page's own URL (no leading "/"), so the page works under any
        # reverse-proxy sub-path: "widget/..." from "/", "..." from "/widget/frame".
        body, ctype = files["index.html"]
        resp = response.raw(body.replace(b"{static}", static_prefix.encode()), content_type=ctype)
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    @bp.route("/", methods=["GET", "HEAD"])
    async def page(request: Request) -> HTTPResponse:
        return serve_page("widget/")

    @bp.route("/widget/frame", methods=["GET", "HEAD"])
    async def frame(request: Request) -> HTTPResponse:
        return serve_page("")  # the server lets other sites frame this path only

    @bp.route("/widget/<name:str>", methods=["GET", "HEAD"])
    async def static(request: Request, name: str) -> HTTPResponse:
        if name == "index.html":
            return serve_page("")
        if name.endswith(".html"):
            raise ApiError(404, f"no widget file named {name!r}", "NotFound")
        resp = serve_file(name)
        if name == "embed.js":  # other sites load it with a plain <script src>
            resp.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
        return resp

    @bp.get("/widget/state/<conversation_id:str>")
    async def state(request: Request, conversation_id: str) -> HTTPResponse:
        conversation_id = path_id(conversation_id)
        after = _after_arg(request)
        if rate_limiter is not None:
            rate_limiter.check(f"ip:{request.remote_addr or request.ip}")
        slots, events, seq = await events_after(conversation_id, after)
        messages, reset = transcript(events)
        return response.json({
            "sender_id": conversation_id,
            "triage_level": (slots or {}).get("triage_level") or "info",
            "emergency_number": str(settings.get("emergency_number", "911")),
            "crisis_line": str(settings.get("crisis_line", "988")),
            "messages": messages,
            "seq": seq,
            "reset": reset,
        })

    return bp


def _after_arg(request: Request) -> int:
    values = request.get_args(keep_blank_values=True).getlist("after")
    if not values:
        return 0
    value = values[-1].strip()
    if not value.isdigit() or len(value) > 15 or len(set(values)) > 1:
        raise ApiError(400, "query parameter `after` must be a whole number (the `seq` of an earlier answer)",
                       "InvalidParameter", field="after")
    return int(value)
