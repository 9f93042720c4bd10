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
So are replies sent to a socket shortly before the server noticed it had gone (an abrupt close
is only noticed at the next missed ping): they may never have arrived, so they are delivered
again at the next `session_request` -- a possible repeat rather than a lost reply.
A message whose socket closed straight after sending it is still answered (Rasa does the same);
the reply waits for the session's next socket.

Abuse limits: session ids follow the one id rule of every channel (bot/limits.py; an id the API
could not name is replaced by a fresh one), messages the length limit; the rate limit counts
the session, the socket and the client address, so a new session_id per message does not
escape it; a socket has at most MAX_BACKLOG messages waiting. Whatever is refused for those
reasons is still answered with a `bot_uttered` (Rasa widgets show no `error` event): the
safety screen's reply to the message, then what to do; an `error` event follows for programs.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import jwt
import socketio
from sanic import Sanic

from bot.channels.access import RateLimiter
from bot.channels.errors import ApiError
from bot.limits import MAX_JSON_DEPTH, json_depth_exceeds, message_error, sender_id_error

logger = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[list[dict[str, Any]]]]
LimitedHandler = Callable[[str, str, int], Awaitable[list[dict[str, Any]]]]

JWT_METHODS = ("HS256", "HS384", "HS512")  # credentials.yml socketio.jwt_method

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


@dataclass(frozen=True)
class _Sent:
    """A reply emitted to a session's sockets `to` at monotonic time `at`."""

    at: float
    payload: Any
    to: frozenset[str]


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


def verify_jwt(token: str, key: str, algorithm: str = "HS256") -> dict[str, Any] | None:
    """The payload of an HMAC-signed JWT (PyJWT) when its signature, its `alg` (exactly
    `algorithm`, so never `none`) and `exp`/`nbf`/`iat` when present check out, else None.
    No audience is configured, so an `aud` claim is not checked."""
    check_jwt_method(algorithm)
    try:
        return jwt.decode(token, key, algorithms=[algorithm], options={"verify_aud": False})
    except jwt.PyJWTError:
        return None


def check_jwt_method(algorithm: str) -> None:
    if algorithm not in JWT_METHODS:
        raise ValueError(f"credentials.yml socketio.jwt_method {algorithm!r}: use HS256/384/512")


def _metadata(raw: Any) -> dict[str, Any]:
    """A message's metadata: an object, or a JSON string of one; anything else is none."""
    metadata = raw or {}
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except (ValueError, RecursionError):
            metadata = {}
    if not isinstance(metadata, dict):
        metadata = {}
    return metadata


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
        if jwt_key:
            check_jwt_method(jwt_method)  # a wrong method fails at start, not at each connect
        self.jwt_key = jwt_key
        self.jwt_method = jwt_method
        self.metadata_key = metadata_key
        self.max_message_bytes = max_message_bytes
        self.rate_limiter = rate_limiter
        self._pending: OrderedDict[str, deque[tuple[float, Any]]] = OrderedDict()
        # Which session each socket joined, and what was sent to it lately (for re-delivery).
        # Kept here, not in python-socketio's per-socket session, which is gone at disconnect.
        self._joined: dict[str, str] = {}
        self._recent: OrderedDict[str, deque[_Sent]] = OrderedDict()
        if isinstance(cors_origins, str):
            cors_origins = [cors_origins]
        self.cors_origins = list(cors_origins or [])
        self.sio = socketio.AsyncServer(
            async_mode="sanic", cors_allowed_origins=self._origin_allowed,
            max_http_buffer_size=max_message_bytes, logger=False, engineio_logger=False)
        self._register()

    @property
    def _keep_window(self) -> float:
        """How long a sent reply is remembered: engine.io notices a client that vanished
        without a word after ping interval + timeout, checked on a cycle of its own -- twice
        that covers both."""
        return 2 * (float(self.sio.eio.ping_interval) + float(self.sio.eio.ping_timeout))

    def _origin_allowed(self, origin: str | None, environ: dict[str, Any]) -> bool:
        """The page's own origin always (the built-in widget, same-origin widgets), plus the
        configured CORS origins (`*` = any). python-socketio alone would drop the own origin
        as soon as a list is given."""
        if not origin or "*" in self.cors_origins or origin.rstrip("/") in self.cors_origins:
            return True
        hosts = {environ.get("HTTP_HOST", "")}
        hosts.update(h.split(",")[0].strip() for h in [environ.get("HTTP_X_FORWARDED_HOST", "")] if h)
        schemes = {environ.get("wsgi.url_scheme", "http")}
        schemes.update(p.split(",")[0].strip() for p in [environ.get("HTTP_X_FORWARDED_PROTO", "")] if p)
        return origin in {f"{scheme}://{host}" for scheme in schemes for host in hosts if host}

    @classmethod
    def from_credentials(cls, handle: Handler, credentials: dict[str, Any] | None, *,
                         cors_origins: list[str] | None = None,
                         max_message_bytes: int = 1_000_000,
                         rate_limiter: RateLimiter | None = None,
                         limited: LimitedHandler | None = None,
                         emergency_number: str = "911") -> "SocketIOChannel":
        creds = dict(credentials or {})
        creds.pop("cors_origins", None)
        creds.pop("frame_origins", None)
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

        @sio.on("session_request", namespace=ns)
        async def session_request(sid: str, data: Any = None) -> None:
            data = data if isinstance(data, dict) else {}
            session_id = data.get("session_id")
            if sender_id_error(session_id):  # an id the API could never read or erase: a new one
                session_id = uuid.uuid4().hex
            if self.session_persistence:
                await self._join(sid, session_id)
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
            except Exception:  # never an unretrieved task exception; the log says what failed
                logger.exception("socket.io message handling failed")
            finally:
                if sid in self._backlog:
                    self._backlog[sid] -= 1

        @sio.on("disconnect", namespace=ns)
        async def disconnect(sid: str, reason: Any = None) -> None:
            self._clients.pop(sid, None)
            self._backlog.pop(sid, None)
            await self._forget_socket(sid, reason)

    async def _join(self, sid: str, session_id: str) -> None:
        if self._joined.get(sid) == session_id or not self.sio.manager.is_connected(
                sid, self.namespace or "/"):
            return  # already in, or already gone (its replies wait for the next socket)
        self._joined[sid] = session_id
        await self.sio.enter_room(sid, session_id, namespace=self.namespace)

    async def _forget_socket(self, sid: str, reason: Any) -> None:
        """A socket went away: replies sent only to it just before may not have arrived; they
        go to the session's other sockets, or wait for its next one."""
        session_id = self._joined.pop(sid, None)
        recent = self._recent.get(session_id or "")
        if not recent:
            return
        count, window = self._maybe_lost(sid, reason, recent)
        again = self._lost_replies(sid, recent, count, window) if count else []
        for item in again:
            recent.remove(item)
        if not recent:
            self._recent.pop(session_id, None)
        for item in again:
            await self._emit(session_id, item.payload, kept_at=item.at)

    def _maybe_lost(self, sid: str, reason: Any, recent: deque[_Sent]) -> tuple[int, float]:
        """How many of the latest replies to a socket that went away may not have arrived, and
        how far back to look for them."""
        eio_socket = self._eio_socket(sid, self.namespace or "/")
        if eio_socket is not None and not getattr(eio_socket, "upgraded", False):
            # long-polling: what sat in the queue was never collected; the rest was
            return eio_socket.queue.qsize(), self._keep_window
        if reason == self.sio.reason.PING_TIMEOUT:
            # a websocket gone silent: anything since its last pong may be lost
            return len(recent), self._keep_window
        return 0, 0.0  # a websocket closed and noticed at once: what it was sent, it got

    def _lost_replies(self, sid: str, recent: deque[_Sent], count: int, window: float) -> list[_Sent]:
        """The last `count` replies of the `window` sent to `sid` that no other socket of the
        session still connected received."""
        ns = self.namespace or "/"
        now = time.monotonic()
        return [item for item in recent if sid in item.to and now - item.at <= window
                and not any(other != sid and self.sio.manager.is_connected(other, ns)
                            for other in item.to)][-count:]

    def _eio_socket(self, sid: str, ns: str) -> Any:
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, ns)
        return self.sio.eio.sockets.get(eio_sid) if eio_sid else None

    async def _on_user_message(self, sid: str, data: Any) -> None:
        if not isinstance(data, dict):
            await self._error(sid, "user message must be an object with `message`")
            return
        text = data.get("message")
        if text is None:
            # Rasa ignores a missing or null message (rasa-webchat without initPayload sends
            # `message: null`); an error event here would be the only thing such a client shows.
            return
        conversation = await self._conversation(sid, data)
        if conversation is None:
            return
        sender, room = conversation
        if not isinstance(text, str) or not text.strip():
            await self._error(sid, "`message` must be a non-empty string")
            return
        problem = message_error(text)
        if problem:
            await self._say(sid, TOO_LONG_TEXT.replace("{problem}", problem))
            await self._error(sid, problem)
            return
        if await self._rate_limited(sid, text, sender, room):
            return
        metadata = _metadata(data.get(self.metadata_key))
        if json_depth_exceeds(metadata):
            await self._error(sid, f"`{self.metadata_key}` nests deeper than {MAX_JSON_DEPTH} levels")
            return
        await self._answer(sid, text, sender, metadata, room)

    async def _conversation(self, sid: str, data: dict[str, Any]) -> tuple[str, str] | None:
        """(sender, room) of a message; None when it is not answered (said why, when a client
        could act on it)."""
        if not self.session_persistence:
            return sid, sid
        session_id = data.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            logger.warning("socket.io message without a session_id ignored; "
                           "send `session_request` first")
            return None
        problem = sender_id_error(session_id)
        if problem:
            await self._error(sid, f"`session_id` {problem}; send `session_request` for one")
            return None
        # a client that skipped session_request still gets replies; a socket that closed
        # right after sending still gets its message answered (kept for the next socket)
        await self._join(sid, session_id)
        return session_id, session_id

    async def _rate_limited(self, sid: str, text: str, sender: str, room: str) -> bool:
        """Over the rate limit: answered with the screened reply and an `error` event."""
        if self.rate_limiter is None:
            return False
        try:
            self.rate_limiter.check(f"sender:{sender}", f"socket:{sid}",
                                    f"ip:{self._clients.get(sid, '?')}")
        except ApiError as error:
            retry = int(error.extra.get("retry_after") or 1)
            if self.limited is not None:
                for bot_message in await self.limited(text, sender, retry):
                    await self.send(room, bot_message)
            await self._error(sid, error.message, retry_after=retry)
            return True
        return False

    async def _answer(self, sid: str, text: str, sender: str, metadata: dict[str, Any], room: str) -> None:
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

    async def _emit(self, room: str, payload: Any, kept_at: float | None = None) -> None:
        if not self.session_persistence:
            await self.sio.emit(self.bot_message_evt, payload, room=room, namespace=self.namespace)
            return
        listeners = self._listeners(room)
        if not listeners:
            self._keep(room, payload, kept_at)
            return
        now = time.monotonic()
        recent = self._recent.pop(room, None) or deque(maxlen=PENDING_PER_SESSION)
        while recent and now - recent[0].at > self._keep_window:
            recent.popleft()
        recent.append(_Sent(now, payload, frozenset(listeners)))
        self._recent[room] = recent  # most recently used last
        while len(self._recent) > PENDING_SESSIONS:
            self._recent.popitem(last=False)
        await self.sio.emit(self.bot_message_evt, payload, room=room, namespace=self.namespace)

    def _listeners(self, room: str) -> list[str]:
        ns = self.namespace or "/"
        return [sid for sid, _ in self.sio.manager.get_participants(ns, room)
                if self.sio.manager.is_connected(sid, ns)]

    def _keep(self, session_id: str, payload: Any, at: float | None = None) -> None:
        queue = self._pending.pop(session_id, None) or deque(maxlen=PENDING_PER_SESSION)
        queue.append((time.monotonic() if at is None else at, payload))
        self._pending[session_id] = deque(sorted(queue, key=lambda item: item[0]),
                                          maxlen=PENDING_PER_SESSION)  # in the order sent
        while len(self._pending) > PENDING_SESSIONS:
            self._pending.popitem(last=False)

    async def _deliver_pending(self, session_id: str) -> None:
        queue = self._pending.pop(session_id, None)
        now = time.monotonic()
        for kept_at, payload in queue or ():
            if now - kept_at <= PENDING_SECONDS:
                await self._emit(session_id, payload)

    async def _error(self, sid: str, message: str, **extra: Any) -> None:
        payload = {"error": message, **{k: v for k, v in extra.items() if v is not None}}
        await self.sio.emit("error", payload, room=sid, namespace=self.namespace)
