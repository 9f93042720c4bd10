"""Rasa's HTTP API: `/health`, `/status`, `/model/parse`, `/conversations/<id>/tracker`,
`DELETE /conversations/<id>` (Backline's: erases one conversation) and `/openapi.json`.

`token` is Rasa's `--auth-token`: with one, every route but /health and /openapi.json needs it
(bot/channels/access.py). The agent is bot/agent.py's `Agent` (or anything with its methods).
"""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request, response
from sanic.response import HTTPResponse

from bot.channels.access import RateLimiter, check_token
from bot.channels.errors import ApiError
from bot.channels.inputs import json_body, message_text, optional_str, path_id
from bot.channels.openapi import openapi_document

INCLUDE_EVENTS = ("ALL", "AFTER_RESTART", "APPLIED", "NONE")


def http_api_blueprint(agent: Any, *, token: str | None = None,
                       rate_limiter: RateLimiter | None = None) -> Blueprint:
    """The routes above for `agent`; `rate_limiter` counts /model/parse per client address."""
    bp = Blueprint("http_api")

    @bp.route("/health", methods=["GET", "HEAD"])
    async def health(request: Request) -> HTTPResponse:
        """200 only when the conversation stores answer (503 StoreUnavailable otherwise)."""
        ping = getattr(agent, "ping_stores", None)
        if ping is not None:
            await ping()
        return response.json({"status": "ok"})

    @bp.get("/status")
    async def status(request: Request) -> HTTPResponse:
        check_token(request, token)
        return response.json(agent.status())

    @bp.post("/model/parse")
    async def parse(request: Request) -> HTTPResponse:
        check_token(request, token)
        if request.args.get("emulation_mode"):
            raise ApiError(400, "emulation_mode is not supported; omit it for Rasa's format",
                           "UnsupportedEmulation")
        data = json_body(request)
        text = message_text(data, "text")
        message_id = optional_str(data, "message_id")
        if rate_limiter is not None:
            rate_limiter.check(f"ip:{request.remote_addr or request.ip}")
        return response.json(await agent.parse(text, message_id=message_id))

    @bp.get("/conversations/<conversation_id:str>/tracker")
    async def tracker(request: Request, conversation_id: str) -> HTTPResponse:
        check_token(request, token)
        conversation_id = path_id(conversation_id)
        include = request.get_args(keep_blank_values=True).get("include_events", "AFTER_RESTART")
        if include.upper() not in INCLUDE_EVENTS or include not in (include.upper(),
                                                                      include.lower()):
            raise ApiError(400, f"include_events must be one of {', '.join(INCLUDE_EVENTS)}",
                           "InvalidParameter", field="include_events")
        found = await agent.tracker_dict(conversation_id, include_events=include.upper())
        if found is None:
            raise ApiError(404, f"no conversation with id {conversation_id!r}",
                           "ConversationNotFound")
        return response.json(found)

    @bp.delete("/conversations/<conversation_id:str>")
    async def delete(request: Request, conversation_id: str) -> HTTPResponse:
        check_token(request, token)
        conversation_id = path_id(conversation_id)
        if not await agent.delete_conversation(conversation_id):
            raise ApiError(404, f"no conversation with id {conversation_id!r}",
                           "ConversationNotFound")
        return response.json({"deleted": conversation_id})

    @bp.get("/openapi.json")
    async def openapi(request: Request) -> HTTPResponse:
        return response.json(openapi_document(auth=bool(token)))

    return bp
