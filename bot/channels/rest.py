"""Rasa's REST channel: `POST /webhooks/rest/webhook` in, a JSON list of bot messages out.

Shapes follow Rasa 3.x's `CollectingOutputChannel` exactly (PROTOCOLS.md): each element carries
`recipient_id` plus `text` / `buttons` / `image` / `attachment` / `custom`, null keys dropped;
a plain text with blank lines becomes several messages; a message with text and an image or a
custom payload becomes one message per part, in Rasa's order.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

from sanic import Blueprint, Request, response
from sanic.response import HTTPResponse

from bot.channels.access import RateLimiter
from bot.channels.errors import ApiError
from bot.channels.inputs import (
    bool_arg,
    json_body,
    message_text,
    optional_object,
    optional_str,
    sender_id,
)

logger = logging.getLogger(__name__)

# The Agent's bot messages (dicts) -> the fields a REST client sees, in Rasa's send order.
_PARTS = ("image", "attachment", "custom")


def rest_messages(recipient_id: str, bot_messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Bot messages as Rasa's REST channel returns them (see the module docstring)."""
    out: list[dict[str, Any]] = []

    def emit(**fields: Any) -> None:
        msg = {"recipient_id": recipient_id}
        msg.update({k: v for k, v in fields.items() if v is not None})
        out.append(msg)

    for message in bot_messages:
        text, buttons = message.get("text"), message.get("buttons")
        if buttons:
            emit(text=text, buttons=buttons)  # Rasa sends text with buttons unsplit
        elif text:
            for part in text.strip().split("\n\n"):
                if part.strip():
                    emit(text=part.strip())
        for key in _PARTS:
            if message.get(key) is not None:
                emit(**{key: message[key]})
        if message.get("elements"):
            emit(attachment={"type": "template",
                             "payload": {"template_type": "generic",
                                         "elements": message["elements"]}})
    return out


Handler = Callable[..., Awaitable[list[dict[str, Any]]]]
LimitedHandler = Callable[[str, str, int], Awaitable[list[dict[str, Any]]]]


def rest_blueprint(handle: Handler, *, rate_limiter: RateLimiter | None = None,
                   limited: LimitedHandler | None = None, name: str = "rest") -> Blueprint:
    """The REST channel; `handle(text, sender, metadata, input_channel)` runs the engine.
    Over the rate limit, `limited(text, sender, retry_after)` gives the messages of the 429
    (screened for danger signs, nothing stored): clients show them like any reply."""
    bp = Blueprint(f"{name}_webhook", url_prefix="/webhooks/rest")

    @bp.get("/")
    async def health(request: Request) -> HTTPResponse:
        return response.json({"status": "ok"})

    @bp.post("/webhook")
    async def receive(request: Request) -> HTTPResponse | None:
        streaming = bool_arg(request, "stream")  # checked first: a bad flag runs nothing
        data = json_body(request)
        sender = sender_id(data["sender"]) if data.get("sender") is not None else "default"
        text = message_text(data, "message")
        metadata = optional_object(data, "metadata")
        input_channel = optional_str(data, "input_channel") or "rest"
        if rate_limiter is not None:
            try:
                rate_limiter.check(f"ip:{request.remote_addr or request.ip}", f"sender:{sender}")
            except ApiError as error:
                if limited is None or error.status != 429:
                    raise
                retry = int(error.extra.get("retry_after") or 1)
                resp = response.json(rest_messages(sender, await limited(text, sender, retry)), status=429)
                resp.headers.update(error.headers)
                return resp
        bot_messages = await handle(text, sender, metadata, input_channel)
        messages = rest_messages(sender, bot_messages)
        if not streaming:
            return response.json(messages)
        # Newline-delimited JSON as Rasa streams it; the engine answers a turn at once,
        # so the lines arrive together, but clients written for Rasa's stream work unchanged.
        stream = await request.respond(content_type="text/event-stream")
        for message in messages:
            await stream.send(json.dumps(message) + "\n")
        await stream.eof()
        return None

    return bp
