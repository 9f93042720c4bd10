"""Rasa's socket.io channel on the HTTP server's own port, so Rasa web-chat widgets connect.

How it is served: python-socketio's `AsyncServer(async_mode="sanic")` attaches its Engine.IO
endpoint as a plain Sanic route (GET/POST for long-polling) and upgrades to WebSocket through
Sanic's own `WebSocketProtocol.websocket_handshake`. Checked with Sanic 25.12 and
python-socketio 5.18 for both transports, so no ASGI server is needed: one Sanic app serves the
HTTP API, the widget and socket.io on one port.

Events (PROTOCOLS.md): `session_request {"session_id"}` -> `session_confirm "<id>"` (a bare
string); `user_uttered {"message", "session_id", <metadata_key>}` -> one `bot_uttered` per
message, text-only objects, buttons as `quick_replies` on the last blank-line fragment.
With `session_persistence: true` the conversation id is the client's `session_id` and every
socket of that session joins its room -- `enter_room` is awaited, unlike Rasa 3.6 (#13027),
whose replies never arrive. Without persistence the socket id is the conversation id.
Replies for a session with no socket connected (the page was reloading, the network dropped)
are kept, a few per session for a few minutes, and delivered at its next `session_request`.

Abuse limits: session ids follow the one id rule of every channel (bot/limits.py; an id the API
could not name is replaced by a fresh one), messages the length limit; the rate limit counts
the session, the socket and the client address, so a new session_id per message does not
escape it; a socket has at most MAX_BACKLOG messages waiting. Whatever is refused for those
reasons is still answered with a `bot_uttered` (Rasa widgets show no `error` event): the
safety screen's reply to the message, then what to do; an `error` event follows for programs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections import OrderedDict, deque
from typing import Any, Awaitable, Callable

import socketio
from sanic import Sanic

from bot.channels.guards import ApiError, RateLimiter
from bot.limits import MAX_JSON_DEPTH, json_depth_exceeds, message_error, sender_id_error

logger = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[list[dict[str, Any]]]]
LimitedHandler = Callable[[str, str, int], Awaitable[list[dict[str, Any]]]]

_JWT_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}

# Undelivered replies: per session at most this many, kept this long, for this many sessions.
PENDING_PER_SESSION = 50
PENDING_SECONDS = 300.0
PENDING_SESSIONS = 1000
# Messages one socket may have waiting for the engine; more are answered, not processed.
MAX_BACKLOG = 8
BUSY_TEXT = ("You're sending messages faster than I can take them in, so I didn't take that one in. "
             "Please wait a moment and send it again. If your back is getting worse, contact a "
             "healthcare provider, or call {emergency_number} in an emergency.")
ERROR_TEXT = ("Sorry, something went wrong on my side. Please try again. If your back is getting "
              "worse, contact a healthcare provider, or call {emergency_number} in an emergency.")
TOO_LONG_TEXT = ("That message is too long for me ({problem}). If your back is getting worse, contact "
                 "a healthcare provider, or call {emergency_number} in an emergency.")


def socketio_messages(bot_message: dict[str, Any]) -> list[dict[str, Any]]:
    """One engine message as the `bot_uttered` payloads Rasa's SocketIOOutput emits."""
    out: list[dict[str, Any]] = []
    text, buttons = bot_message.get("text"), bot_message.get("buttons")
    if text or buttons:
        parts = [p.strip() for p in (text or "").strip().split("\n\n") if p.strip()] or [text or ""]
        out.extend({"text": part} for part in parts)
        if buttons:
            out[-1]["quick_replies"] = [
                {"content_type": "text", "title": b["title"], "payload": b.get("payload", b["title"])}
                for b in buttons
            ]
    if bot_message.get("image"):
        out.append({"attachment": {"type": "image", "payload": {"src": bot_message["image"]}}})
    if bot_message.get("attachment"):
        out.append({"attachment": bot_message["attachment"]})
    if bot_message.get("elements"):
        out.append({"attachment": {"type": "template", "payload": {
            "template_type": "generic", "elements": bot_message["elements"]}}})
    return out


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_jwt(token: str, key: str, algorithm: str = "HS256") -> dict[str, Any] | None:
    """The payload of an HMAC-signed JWT when signature and `exp` check out, else None."""
    digest = _JWT_HASHES.get(algorithm)
    if digest is None:
        raise ValueError(f"credentials.yml socketio.jwt_method {algorithm!r}: use HS256/384/512")
    try:
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = json.loads(_b64decode(header_b64))
        if header.get("alg") != algorithm:
            return None
        expected = hmac.new(key.encode(), f"{header_b64}.{payload_b64}".encode(), digest).digest()
        if not hmac.compare_digest(expected, _b64decode(signature_b64)):
            return None
        payload = json.loads(_b64decode(payload_b64))
    except (ValueError, TypeError, AttributeError):
        return None
    if not isinstance(payload, dict):
        return None
    if "exp" in payload and not (isinstance(payload["exp"], (int, float))
                                 and payload["exp"] > time.time()):
        return None
    return payload


class SocketIOChannel:
    """Rasa-compatible socket.io input/output; `handle(text, sender, metadata, channel)`."""

    def __init__(self, handle: Handler, *, user_message_evt: str = "user_uttered",
                 bot_message_evt: str = "bot_uttered", session_persistence: bool = False,
                 socketio_path: str = "/socket.io", namespace: str | None = None,
                 jwt_key: str | None = None, jwt_method: str = "HS256",
                 metadata_key: str = "metadata", cors_origins: list[str] | str | None = None,
                 max_message_bytes: int = 1_000_000,
                 rate_limiter: RateLimiter | None = None, limited: LimitedHandler | None = None,
                 emergency_number: str = "911") -> None:
        """limited(text, sender, retry_after): the screened answer to a refused message."""
        self.handle = handle
        self.limited = limited
        self.emergency_number = emergency_number
        self._clients: dict[str, str] = {}    # sid -> client address
        self._backlog: dict[str, int] = {}    # sid -> messages waiting or running
        self.user_message_evt = user_message_evt
        self.bot_message_evt = bot_message_evt
        self.session_persistence = session_persistence
        self.socketio_path = socketio_path
        self.namespace = namespace
        self.jwt_key = jwt_key
        self.jwt_method = jwt_method
        self.metadata_key = metadata_key
        self.max_message_bytes = max_message_bytes
        self.rate_limiter = rate_limiter
        self._pending: OrderedDict[str, deque[tuple[float, Any]]] = OrderedDict()
        # python-socketio: None = same origin only, "*" = any, list = those.
        if isinstance(cors_origins, list) and "*" in cors_origins:
            cors_origins = "*"
        self.sio = socketio.AsyncServer(
            async_mode="sanic", cors_allowed_origins=cors_origins or None,
            max_http_buffer_size=max_message_bytes, logger=False, engineio_logger=False)
        self._register()

    @classmethod
    def from_credentials(cls, handle: Handler, credentials: dict[str, Any] | None, *,
                         cors_origins: list[str] | None = None,
                         max_message_bytes: int = 1_000_000,
                         rate_limiter: RateLimiter | None = None,
                         limited: LimitedHandler | None = None,
                         emergency_number: str = "911") -> "SocketIOChannel":
        creds = dict(credentials or {})
        creds.pop("cors_origins", None)
        known = {"user_message_evt", "bot_message_evt", "session_persistence", "socketio_path",
                 "namespace", "jwt_key", "jwt_method", "metadata_key"}
        unknown = set(creds) - known
        if unknown:
            raise ValueError(f"credentials.yml socketio: unknown keys {sorted(unknown)}; "
                             f"known keys are {sorted(known)}")
        return cls(handle, cors_origins=cors_origins, max_message_bytes=max_message_bytes,
                   rate_limiter=rate_limiter, limited=limited, emergency_number=emergency_number,
                   **{k: v for k, v in creds.items() if v is not None})

    def attach(self, app: Sanic) -> None:
        self.sio.attach(app, socketio_path=self.socketio_path.strip("/"))

    def _register(self) -> None:
        sio, ns = self.sio, self.namespace

        @sio.on("connect", namespace=ns)
        async def connect(sid: str, environ: dict, auth: Any = None) -> bool:
            request = environ.get("sanic.request")
            self._clients[sid] = str(getattr(request, "remote_addr", "") or getattr(request, "ip", "") or "?")
            if not self.jwt_key:
                return True
            token = auth.get("token") if isinstance(auth, dict) else None
            if isinstance(token, str) and token.lower().startswith("bearer "):
                token = token[7:]
            return bool(isinstance(token, str)
                        and verify_jwt(token, self.jwt_key, self.jwt_method) is not None)

        @sio.on("disconnect", namespace=ns)
        async def disconnect(sid: str, *args: Any) -> None:
            self._clients.pop(sid, None)
            self._backlog.pop(sid, None)

        @sio.on("session_request", namespace=ns)
        async def session_request(sid: str, data: Any = None) -> None:
            data = data if isinstance(data, dict) else {}
            session_id = data.get("session_id")
            if sender_id_error(session_id):  # an id the API could never read or erase: a new one
                session_id = uuid.uuid4().hex
            if self.session_persistence:
                await sio.enter_room(sid, session_id, namespace=ns)
                async with sio.session(sid, namespace=ns) as session:
                    session["session_id"] = session_id
            await sio.emit("session_confirm", session_id, room=sid, namespace=ns)
            if self.session_persistence:
                await self._deliver_pending(session_id)

        @sio.on(self.user_message_evt, namespace=ns)
        async def user_message(sid: str, data: Any = None) -> None:
            # python-socketio runs every event in a task of its own: bound the waiting ones.
            waiting = self._backlog.get(sid, 0)
            if waiting >= MAX_BACKLOG:
                await self._refuse(sid, data, BUSY_TEXT, "too many messages waiting; slow down")
                return
            self._backlog[sid] = waiting + 1
            try:
                await self._on_user_message(sid, data)
            finally:
                if sid in self._backlog:
                    self._backlog[sid] -= 1

    async def _on_user_message(self, sid: str, data: Any) -> None:
        sio, ns = self.sio, self.namespace
        if not isinstance(data, dict):
            await self._error(sid, "user message must be an object with `message`")
            return
        if self.session_persistence:
            session_id = data.get("session_id")
            if not isinstance(session_id, str) or not session_id:
                logger.warning("socket.io message without a session_id ignored; "
                               "send `session_request` first")
                return
            problem = sender_id_error(session_id)
            if problem:
                await self._error(sid, f"`session_id` {problem}; send `session_request` for one")
                return
            async with sio.session(sid, namespace=ns) as session:
                joined = session.get("session_id")
            if joined != session_id:  # a client that skipped session_request still gets replies
                await sio.enter_room(sid, session_id, namespace=ns)
                async with sio.session(sid, namespace=ns) as session:
                    session["session_id"] = session_id
            sender, room = session_id, session_id
        else:
            sender, room = sid, sid
        text = data.get("message", "")
        if not isinstance(text, str) or not text.strip():
            await self._error(sid, "`message` must be a non-empty string")
            return
        problem = message_error(text)
        if problem:
            await self._say(sid, TOO_LONG_TEXT.replace("{problem}", problem))
            await self._error(sid, problem)
            return
        if self.rate_limiter is not None:
            try:
                self.rate_limiter.check(f"sender:{sender}", f"socket:{sid}",
                                        f"ip:{self._clients.get(sid, '?')}")
            except ApiError as error:
                retry = int(error.extra.get("retry_after") or 1)
                if self.limited is not None:
                    for bot_message in await self.limited(text, sender, retry):
                        await self.send(room, bot_message)
                await self._error(sid, error.message, retry_after=retry)
                return
        metadata = data.get(self.metadata_key) or {}
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except (ValueError, RecursionError):
                metadata = {}
        if not isinstance(metadata, dict):
            metadata = {}
        if json_depth_exceeds(metadata):
            await self._error(sid, f"`{self.metadata_key}` nests deeper than {MAX_JSON_DEPTH} levels")
            return
        try:
            bot_messages = await self.handle(text, sender, metadata, "socketio")
        except Exception:  # the client gets a reply either way; details stay in the log
            logger.exception("engine failed on a socket.io message")
            await self._say(sid, ERROR_TEXT)
            await self._error(sid, "internal error; please try again")
            return
        for bot_message in bot_messages:
            await self.send(room, bot_message)

    async def _refuse(self, sid: str, data: Any, text: str, error: str) -> None:
        """Answer a message that is not processed: the safety reply to it, then `text`."""
        message = data.get("message") if isinstance(data, dict) else None
        if isinstance(message, str) and message.strip() and not message_error(message) and self.limited:
            sender = data.get("session_id") if self.session_persistence else sid
            for bot_message in (await self.limited(message, str(sender or sid), 1))[:-1]:
                await self._say(sid, bot_message.get("text") or "")
        await self._say(sid, text)
        await self._error(sid, error)

    async def _say(self, sid: str, text: str) -> None:
        """One plain bot message to this socket (a Rasa widget shows it)."""
        if text:
            await self.sio.emit(self.bot_message_evt, {"text": text.replace("{emergency_number}", self.emergency_number)},
                                room=sid, namespace=self.namespace)

    async def send(self, room: str, bot_message: dict[str, Any]) -> None:
        for payload in socketio_messages(bot_message):
            await self._emit(room, payload)
        custom = bot_message.get("custom")
        if custom is not None:
            # Rasa emits custom JSON as-is; `{"data": ..., "room": ...}` picks payload and room.
            if isinstance(custom, dict) and "data" in custom:
                await self._emit(custom.get("room", room), custom["data"])
            else:
                await self._emit(room, custom)

    async def _emit(self, room: str, payload: Any) -> None:
        if self.session_persistence and not self._has_listeners(room):
            self._keep(room, payload)
            return
        await self.sio.emit(self.bot_message_evt, payload, room=room, namespace=self.namespace)

    def _has_listeners(self, room: str) -> bool:
        participants = self.sio.manager.get_participants(self.namespace or "/", room)
        return next(iter(participants), None) is not None

    def _keep(self, session_id: str, payload: Any) -> None:
        queue = self._pending.pop(session_id, None) or deque(maxlen=PENDING_PER_SESSION)
        queue.append((time.monotonic(), payload))
        self._pending[session_id] = queue  # most recently used last
        while len(self._pending) > PENDING_SESSIONS:
            self._pending.popitem(last=False)

    async def _deliver_pending(self, session_id: str) -> None:
        queue = self._pending.pop(session_id, None)
        now = time.monotonic()
        for kept_at, payload in queue or ():
            if now - kept_at <= PENDING_SECONDS:
                await self.sio.emit(self.bot_message_evt, payload, room=session_id,
                                    namespace=self.namespace)

    async def _error(self, sid: str, message: str, **extra: Any) -> None:
        payload = {"error": message, **{k: v for k, v in extra.items() if v is not None}}
        await self.sio.emit("error", payload, room=sid, namespace=self.namespace)
