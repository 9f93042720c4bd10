"""The HTTP app: Rasa's HTTP API, the REST and socket.io channels and the chat widget, one port.

    create_app(agent, credentials)   -> a Sanic app (tests and `serve` build it the same way)
    serve(root, host, port)          -> `bot run`

create_app only composes: the blueprints of bot/channels/ (http_api, rest, widget), socket.io,
and what every request passes -- header checks (inputs.py), CORS (cors.py), security headers
(headers.py), errors as one-line JSON (errors.py); the auth token and rate limit (access.py) are
applied by the routes. Message texts are never logged.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from bot.channels.access import RateLimiter, parse_rate_limit
from bot.channels.cors import Cors
from bot.channels.errors import JsonErrorHandler
from bot.channels.headers import add_security_headers
from bot.channels.http_api import http_api_blueprint
from bot.channels.inputs import check_headers
from bot.channels.rest import rest_blueprint
from bot.channels.socketio import Handler, LimitedHandler, SocketIOChannel
from bot.channels.widget import widget_blueprint
from bot.project import DEFAULT_CHANNELS

logger = logging.getLogger(__name__)

_app_numbers = itertools.count(1)


def cors_from_credentials(credentials: dict[str, Any], key: str = "cors_origins") -> list[str]:
    """`cors_origins` (or `frame_origins`) at the top level of credentials.yml or under `rest:` /
    `socketio:` (where real Rasa, reading the same file, ignores it)."""
    origins: list[str] = []
    for section in (credentials, credentials.get("rest") or {}, credentials.get("socketio") or {}):
        value = section.get(key) if isinstance(section, dict) else None
        if isinstance(value, str):
            value = [value]
        for origin in value or []:
            if origin not in origins:
                origins.append(str(origin).rstrip("/"))
    return origins


def create_app(agent: Any, credentials: dict[str, Any] | None = None, *, token: str | None = None,
               cors_origins: list[str] | None = None, max_request_bytes: int = 1_000_000,
               rate_limit: str | tuple[int, float] | None = None,
               frame_origins: list[str] | None = None, name: str | None = None) -> Sanic:
    """One Sanic app for `agent`. Channels come from `credentials` (credentials.yml's dict):
    `rest:` and `socketio:` keys enable them; with no credentials both are on.

    token: Rasa's `--auth-token`, required (`?token=`) on /model/parse, /conversations, /status.
    cors_origins: browser origins allowed to call the API and socket.io (added to the ones in
    credentials.yml); `["*"]` allows any. rate_limit: `"COUNT/SECONDS"` of messages per sender
    and per client address on the webhook and /model/parse (per session on socket.io, answered
    with an `error` event); None = unlimited.
    frame_origins: sites that may frame the widget via embed.js (added to `frame_origins` in
    credentials.yml; default: any site, so embed.js works on every page). Separate from CORS:
    the framed widget talks to its own server, so framing needs no CORS origin and a CORS
    origin does not imply framing. `/` itself can never be framed. name: the Sanic app name (unique per
    process; made up when not given -- worker processes must rebuild the same name).
    """
    handle, limited = _engine_handlers(agent)
    credentials = dict(credentials) if credentials is not None else dict(DEFAULT_CHANNELS)
    origins = _merged_origins(cors_origins, credentials, "cors_origins")
    cors = Cors(tuple(origins))
    limiter = parse_rate_limit(rate_limit)
    frames = _merged_origins(frame_origins, credentials, "frame_origins")
    frame_ancestors = "*" if not frames or "*" in frames else " ".join(frames)

    app = _new_app(agent, name, max_request_bytes)
    if "rest" in credentials:
        app.blueprint(rest_blueprint(handle, rate_limiter=limiter, limited=limited))
    if "socketio" in credentials:
        app.ctx.socketio = SocketIOChannel.from_credentials(
            handle, credentials.get("socketio"), cors_origins=origins or None,
            max_message_bytes=max_request_bytes, rate_limiter=limiter, limited=limited,
            emergency_number=str((getattr(agent, "settings", {}) or {}).get("emergency_number", "911")))
        app.ctx.socketio.attach(app)
    # The widget polls its state once after each reply: a looser limit of its own, per address.
    state_limiter = RateLimiter(limiter.limit * 4, limiter.period) if limiter is not None else None
    app.blueprint(widget_blueprint(agent.events_after, getattr(agent, "settings", {}) or {},
                                   rate_limiter=state_limiter))
    app.blueprint(http_api_blueprint(agent, token=token, rate_limiter=limiter))  # Rasa's HTTP API
    _add_request_hooks(app, cors, frame_ancestors)
    return app


def _engine_handlers(agent: Any) -> tuple[Handler, LimitedHandler]:
    """handle(text, sender, metadata, channel) and limited(text, sender, retry_after) on `agent`."""
    from bot.agent import UserMessage  # the engine; imported late so `bot.server` stays cheap

    async def handle(text: str, sender: str, metadata: dict[str, Any] | None,
                     input_channel: str) -> list[dict[str, Any]]:
        return await agent.handle_message(UserMessage(
            text=text, sender_id=sender, metadata=metadata, input_channel=input_channel))

    async def limited(text: str, sender: str, retry_after: int) -> list[dict[str, Any]]:
        return await agent.rate_limited_reply(UserMessage(text=text, sender_id=sender), retry_after)

    return handle, limited


def _merged_origins(given: list[str] | None, credentials: dict[str, Any], key: str) -> list[str]:
    """The origins given to create_app, then the ones of credentials.yml not among them."""
    return list(given or []) + [o for o in cors_from_credentials(credentials, key) if o not in (given or [])]


def _new_app(agent: Any, name: str | None, max_request_bytes: int) -> Sanic:
    # configure_logging=False: Sanic's records go to the root logger that `bot` configures,
    # instead of also printing them through handlers of its own (every line twice).
    app = Sanic(name or f"backline_{next(_app_numbers)}_{uuid.uuid4().hex[:8]}",
                error_handler=JsonErrorHandler(), configure_logging=False)
    app.config.REQUEST_MAX_SIZE = max_request_bytes
    app.config.WEBSOCKET_MAX_SIZE = max_request_bytes
    app.config.ACCESS_LOG = False
    app.config.MOTD = False
    app.config.FALLBACK_ERROR_FORMAT = "json"
    # TouchUp rewrites Sanic's class methods at startup, which fails for a second app in the
    # same process (tests); the speed it buys is not measurable next to the engine.
    app.config.TOUCHUP = False
    # A turn ends by the agent's turn_timeout (then the polite reply) and its write within
    # the lock's lifetime: Sanic must not cut the request with a bare 503 before that.
    lock_lifetime = float(getattr(agent, "lock_lifetime", 0) or 0)
    app.config.RESPONSE_TIMEOUT = max(float(app.config.RESPONSE_TIMEOUT), lock_lifetime + 5)
    app.ctx.agent = agent
    return app


def _add_request_hooks(app: Sanic, cors: Cors, frame_ancestors: str) -> None:
    """What every request passes: header checks, CORS and the security headers."""

    @app.on_request
    async def preflight(request: Request) -> HTTPResponse | None:
        check_headers(request)
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            if not request.path.startswith("/socket.io"):
                return cors.preflight(request)
        return None

    @app.on_response
    async def headers(request: Request, resp: HTTPResponse) -> None:
        if not request.path.startswith("/socket.io"):  # python-socketio answers its own CORS
            cors.apply(request, resp)
        add_security_headers(
            request, resp,
            frame_ancestors=frame_ancestors if request.path == "/widget/frame" else "'none'")


# -- running it ---------------------------------------------------------------------------------

def _app_from_root(root: Path, opts: dict[str, Any]) -> Sanic:
    from bot.agent import Agent

    agent = Agent.load(root)
    app = create_app(agent, agent.project.credentials, **opts)   # read once, by bot/project.py

    @app.after_server_start
    async def start_retention(app: Sanic) -> None:
        # `conversation_ttl_days` (endpoints.yml tracker_store): purge once an hour while serving.
        if (agent.project.endpoints.get("tracker_store") or {}).get("conversation_ttl_days"):
            app.add_task(_purge_every(agent, RETENTION_INTERVAL_SECONDS), name="retention")

    @app.after_server_stop
    async def close_agent(app: Sanic) -> None:
        await agent.close()

    return app


RETENTION_INTERVAL_SECONDS = 3600.0


async def _purge_every(agent: Any, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            erased = await agent.purge_expired()
        except Exception as error:  # a store hiccup must not stop the server or the next purge
            logger.warning("retention purge failed: %s", error)
        else:
            if erased:
                logger.info("retention purge erased %d conversation(s)", erased)


def serve(root: Path | str = ".", host: str = "127.0.0.1", port: int = 5005, workers: int = 1,
          **opts: Any) -> None:
    """`bot run`: serve the API, channels and widget until interrupted.

    opts: token (default env BACKLINE_AUTH_TOKEN), cors_origins, max_request_bytes, rate_limit
    (default env BACKLINE_RATE_LIMIT, e.g. "30/60"), frame_origins -- see create_app.
    With workers > 1 each process loads its own Agent; keep conversations consistent with a
    shared tracker and lock store (endpoints.yml). socket.io's long-polling transport needs one
    worker (or sticky sessions in front); its websocket transport works with several.
    """
    root = Path(root).resolve()
    opts = {k: v for k, v in opts.items() if v is not None}
    if "auth_token" in opts:  # `bot run --auth-token`
        opts["token"] = opts.pop("auth_token")
    for key in ("cors_origins", "frame_origins"):
        if isinstance(opts.get(key), str):
            opts[key] = [o.strip() for o in opts[key].split(",") if o.strip()]
    opts.setdefault("token", os.environ.get("BACKLINE_AUTH_TOKEN") or None)
    opts.setdefault("rate_limit", os.environ.get("BACKLINE_RATE_LIMIT") or None)  # e.g. "30/60"
    known = {"token", "cors_origins", "max_request_bytes", "rate_limit", "frame_origins"}  # + name
    for key in set(opts) - known:
        logger.warning("serve(): ignoring unknown option %r (known: %s)", key, sorted(known))
        opts.pop(key)
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    banner = (f"Backline: chat widget at http://{shown}:{port}/ , REST channel at "
              f"/webhooks/rest/webhook, socket.io at /socket.io (Ctrl+C stops)")
    if workers <= 1:
        app = _app_from_root(root, opts)
        print(banner, flush=True)
        app.run(host=host, port=port, single_process=True, access_log=False, motd=False)
        return
    from sanic.worker.loader import AppLoader

    from bot.agent import Agent

    Agent.load(root)  # train once here, not in every worker
    print(banner, flush=True)
    loader = AppLoader(factory=partial(_app_from_root, root, {**opts, "name": "backline"}))
    app = loader.load()
    app.prepare(host=host, port=port, workers=workers, access_log=False, motd=False)
    Sanic.serve(primary=app, app_loader=loader)
