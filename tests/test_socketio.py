"""The socket.io channel (bot/channels/socketio.py): python-socketio clients against a real
server on loopback and the real engine, events as Rasa's socketio channel (PROTOCOLS.md)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import socketio
import websockets

from bot.channels.socketio import socketio_messages, verify_jwt
from bot.server import create_app
from tests.servers import ServerLoop

ROOT = Path(__file__).resolve().parents[1]
JWT_KEY = "jwt-test-key"
OTHER_SITE = "https://clinic.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    from bot.agent import Agent
    from bot.stores import create_tracker_store

    tmp = tmp_path_factory.mktemp("socketio")
    store = create_tracker_store({"type": "sql", "dialect": "sqlite",
                                  "db": str(tmp / "conversations.db")}, tmp)
    agent = Agent.load(ROOT, tracker_store=store)
    project_creds = agent.project.credentials  # the repository's credentials.yml, as `bot run` uses
    webchat = {**project_creds, "socketio": {**(project_creds.get("socketio") or {}),
                                             "session_persistence": True,
                                             "metadata_key": "customData"}}
    loop = ServerLoop()
    webchat_app = create_app(agent, webchat)
    # engine.io notices a vanished client only at a missed ping: 1 s + 1 s here, 25 + 20 s default
    fast_ping_app = create_app(agent, {"socketio": {"session_persistence": True}})
    fast_ping_app.ctx.socketio.sio.eio.ping_interval = 1
    fast_ping_app.ctx.socketio.sio.eio.ping_timeout = 1
    try:
        yield SimpleNamespace(
            loop=loop,
            channel=webchat_app.ctx.socketio,
            url=loop.start(webchat_app),
            per_socket=loop.start(create_app(agent, {"socketio": {"session_persistence": False}})),
            jwt=loop.start(create_app(agent, {"socketio": {"session_persistence": True,
                                                           "jwt_key": JWT_KEY}})),
            limited=loop.start(create_app(agent, {"socketio": {"session_persistence": True}},
                                          rate_limit="2/60")),
            cors=loop.start(create_app(agent, {"socketio": {"session_persistence": True}},
                                       cors_origins=[OTHER_SITE])),
            fast_ping=loop.start(fast_ping_app),
        )
    finally:
        try:
            loop.run(agent.close())
        finally:
            loop.stop()


class Chat:
    """A socket.io client that collects what the server sends."""

    def __init__(self, url: str, transports: list[str] | None = None) -> None:
        self.url = url
        self.transports = transports or ["websocket"]
        self.sio = socketio.AsyncClient(reconnection=False)
        self.confirms: asyncio.Queue = asyncio.Queue()
        self.bot: asyncio.Queue = asyncio.Queue()
        self.sio.on("session_confirm", self.confirms.put_nowait)
        self.sio.on("bot_uttered", self.bot.put_nowait)

    async def connect(self, **kwargs) -> "Chat":
        await self.sio.connect(self.url, transports=self.transports, socketio_path="/socket.io",
                               wait_timeout=10, **kwargs)
        return self

    async def session(self, session_id: str | None) -> str:
        await self.sio.emit("session_request", {"session_id": session_id})
        return await asyncio.wait_for(self.confirms.get(), 10)

    async def say(self, message: str, session_id: str | None, **extra) -> list:
        await self.sio.emit("user_uttered", {"message": message, "session_id": session_id, **extra})
        replies = [await asyncio.wait_for(self.bot.get(), 30)]
        while True:  # the rest of the turn follows at once
            try:
                replies.append(await asyncio.wait_for(self.bot.get(), 0.5))
            except asyncio.TimeoutError:
                return replies

    async def close(self) -> None:
        if self.sio.transport() == "polling":
            # engine.io's graceful close waits for the pending long-poll, which the server
            # only answers at the next ping (25 s); the close packet has been sent either way
            await self.sio.eio.disconnect(abort=True)
        else:
            await self.sio.disconnect()


def tracker(url: str, sender: str) -> dict:
    r = httpx.get(f"{url}/conversations/{sender}/tracker", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def assert_rasa_bot_uttered(replies: list) -> None:
    for reply in replies:
        assert "recipient_id" not in reply
        if "text" in reply:
            assert set(reply) <= {"text", "quick_replies"}, reply
            assert "\n\n" not in reply["text"]
        for qr in reply.get("quick_replies", []):
            assert set(qr) == {"content_type", "title", "payload"} and qr["content_type"] == "text"


def test_session_confirm_is_a_bare_string(server):
    async def run() -> None:
        chat = await Chat(server.url).connect()
        assert await chat.session("abc123") == "abc123"
        made = await chat.session(None)
        assert isinstance(made, str) and re.fullmatch(r"[0-9a-f]{32}", made)
        await chat.close()

    asyncio.run(run())


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_conversation_with_quick_replies(server, transport):
    session_id = f"sio-conversation-{transport}"

    async def run() -> list:
        chat = await Chat(server.url, [transport]).connect()
        await chat.session(session_id)
        replies = await chat.say("hello", session_id)
        await chat.close()
        return replies

    replies = asyncio.run(run())
    assert_rasa_bot_uttered(replies)
    assert any("not a doctor" in r.get("text", "") for r in replies), "disclaimer first"
    assert any(r.get("quick_replies") for r in replies), "greeting buttons as quick_replies"
    assert "hello" in [e["text"] for e in tracker(server.url, session_id)["events"]
                       if e["event"] == "user"]


def test_session_persists_across_reconnect(server):
    session_id = "sio-persist-1"

    async def run() -> tuple[list, list]:
        first = await Chat(server.url).connect()
        await first.session(session_id)
        before = await first.say("hello", session_id)
        await first.close()
        second = await Chat(server.url).connect()
        assert await second.session(session_id) == session_id
        after = await second.say("my lower back hurts", session_id)
        await second.close()
        return before, after

    before, after = asyncio.run(run())
    assert before and after, "replies reach the reconnected socket (Rasa #13027 fixed)"
    users = [e["text"] for e in tracker(server.url, session_id)["events"] if e["event"] == "user"]
    assert users == ["hello", "my lower back hurts"]
    assert not any("not a doctor" in r.get("text", "") for r in after), "same conversation"


def test_custom_data_reaches_tracker_metadata(server):
    session_id = "sio-custom-data"

    async def run() -> None:
        chat = await Chat(server.url).connect()
        await chat.session(session_id)
        await chat.say("hello", session_id, customData={"language": "en", "page": "/back"})
        await chat.close()

    asyncio.run(run())
    user = [e for e in tracker(server.url, session_id)["events"] if e["event"] == "user"][-1]
    assert user["metadata"] == {"language": "en", "page": "/back"}
    assert user["input_channel"] == "socketio"


def test_without_persistence_the_socket_is_the_conversation(server):
    async def run() -> tuple[str, list]:
        chat = await Chat(server.per_socket).connect()
        await chat.session("ignored-id")
        sid = chat.sio.get_sid()
        replies = await chat.say("hello", None)
        await chat.close()
        return sid, replies

    sid, replies = asyncio.run(run())
    assert replies
    assert tracker(server.per_socket, sid)["sender_id"] == sid


def test_bad_user_messages_get_an_error_event_not_a_crash(server):
    async def run() -> list:
        chat = await Chat(server.url).connect()
        errors: asyncio.Queue = asyncio.Queue()
        chat.sio.on("error", errors.put_nowait)
        await chat.session("sio-bad-1")
        await chat.sio.emit("user_uttered", {"message": "", "session_id": "sio-bad-1"})
        await chat.sio.emit("user_uttered", "not an object")
        got = [await asyncio.wait_for(errors.get(), 10) for _ in range(2)]
        replies = await chat.say("hello", "sio-bad-1")  # the socket still works
        await chat.close()
        return [got, replies]

    errors, replies = asyncio.run(run())
    assert all(isinstance(e, dict) and e["error"] for e in errors)
    assert replies


def _jwt(payload: dict, key: str = JWT_KEY) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(payload).encode())
    sig = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def test_jwt_key_requires_a_signed_token(server):
    async def run() -> None:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await Chat(server.jwt).connect()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await Chat(server.jwt).connect(auth={"token": _jwt({"sub": "u"}, "wrong-key")})
        chat = await Chat(server.jwt).connect(auth={"token": _jwt({"sub": "u",
                                                                    "exp": time.time() + 60})})
        await chat.session("sio-jwt-1")
        assert await chat.say("hello", "sio-jwt-1")
        await chat.close()

    asyncio.run(run())


def test_verify_jwt_rejects_expired_and_tampered_tokens():
    good = _jwt({"sub": "u"})
    assert verify_jwt(good, JWT_KEY) == {"sub": "u"}
    assert verify_jwt(_jwt({"sub": "u", "exp": time.time() - 1}), JWT_KEY) is None
    assert verify_jwt(good[:-2] + "xx", JWT_KEY) is None
    assert verify_jwt("not-a-jwt", JWT_KEY) is None


def test_buttons_attach_to_the_last_fragment():
    assert socketio_messages({"text": "One.\n\nTwo?", "buttons": [
        {"title": "Yes", "payload": "/affirm"}]}) == [
        {"text": "One."},
        {"text": "Two?", "quick_replies": [{"content_type": "text", "title": "Yes",
                                            "payload": "/affirm"}]}]
    assert socketio_messages({"image": "https://example.org/x.png"}) == [
        {"attachment": {"type": "image", "payload": {"src": "https://example.org/x.png"}}}]


def test_rate_limit_answers_with_an_error_event(server):
    async def run() -> tuple[list, dict]:
        chat = await Chat(server.limited).connect()
        errors: asyncio.Queue = asyncio.Queue()
        chat.sio.on("error", errors.put_nowait)
        await chat.session("sio-limited-1")
        replies = [await chat.say("hello", "sio-limited-1") for _ in range(2)]
        await chat.sio.emit("user_uttered", {"message": "hello", "session_id": "sio-limited-1"})
        error = await asyncio.wait_for(errors.get(), 10)
        await chat.close()
        return replies, error

    replies, error = asyncio.run(run())
    assert all(replies)
    assert error["error"] and error["retry_after"] >= 1


def test_replies_for_a_disconnected_session_arrive_at_its_next_session_request(server):
    # As if the turn ended while the page was reloading: nobody is in the session's room.
    server.loop.run(server.channel.send("sio-offline-1", {
        "text": "Kept for you.", "buttons": [{"title": "Yes", "payload": "/affirm"}]}))

    async def run() -> list:
        chat = await Chat(server.url).connect()
        await chat.session("sio-offline-1")
        got = [await asyncio.wait_for(chat.bot.get(), 10)]
        await chat.close()
        return got

    assert asyncio.run(run()) == [{"text": "Kept for you.", "quick_replies": [
        {"content_type": "text", "title": "Yes", "payload": "/affirm"}]}]

    async def again() -> bool:  # delivered once, not again
        chat = await Chat(server.url).connect()
        await chat.session("sio-offline-1")
        try:
            await asyncio.wait_for(chat.bot.get(), 1)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            await chat.close()

    assert not asyncio.run(again())


# -- delivery when sockets close (graceful and abrupt), CORS, null messages --------------------

class RawPollingClient:
    """engine.io v4 long-polling spoken by hand, so a test can vanish without a close packet
    (a killed tab, a dropped network) -- python-socketio's client always closes politely."""

    def __init__(self, url: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=30)
        self.sid = ""

    async def open(self) -> None:
        r = await self.http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
        self.sid = json.loads(r.text[1:])["sid"]
        await self.send("40")
        r = await self.poll()
        assert r.startswith("40"), r

    async def send(self, *packets: str) -> None:
        r = await self.http.post("/socket.io/", params={"EIO": "4", "transport": "polling",
                                                        "sid": self.sid},
                                 content="\x1e".join(packets))
        assert r.status_code == 200, r.text

    async def emit(self, event: str, data: dict) -> None:
        await self.send("42" + json.dumps([event, data]))

    async def poll(self) -> str:
        r = await self.http.get("/socket.io/", params={"EIO": "4", "transport": "polling",
                                                       "sid": self.sid})
        return r.text

    async def vanish(self) -> None:
        await self.http.aclose()  # no close packet, no more polls


async def _replies_after_session_request(url: str, session_id: str, wait: float) -> list:
    chat = await Chat(url).connect()
    await chat.session(session_id)
    got = []
    try:
        while True:
            got.append(await asyncio.wait_for(chat.bot.get(), wait))
            wait = 1.0  # the rest follows at once
    except asyncio.TimeoutError:
        pass
    await chat.close()
    return got


def _events(url: str, sender: str) -> list:
    found = httpx.get(f"{url}/conversations/{sender}/tracker", timeout=30)
    return found.json()["events"] if found.status_code == 200 else []


@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_a_message_sent_just_before_a_close_is_answered_and_its_reply_kept(server, transport):
    """Send, then close at once (over long-polling: the message and the close packet in one
    request): the message is processed -- no 'Session not found' -- and its reply waits for
    the session's next socket."""
    session_id = f"sio-send-and-close-{transport}"
    message = {"message": "what does the longissimus do?", "session_id": session_id}

    async def run() -> list:
        if transport == "polling":
            raw = RawPollingClient(server.url)
            await raw.open()
            await raw.emit("session_request", {"session_id": session_id})
            assert session_id in await raw.poll()
            await raw.send("42" + json.dumps(["user_uttered", message]), "41", "1")
            await raw.vanish()
        else:
            url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
            async with websockets.connect(url) as ws:
                assert (await ws.recv()).startswith("0")
                await ws.send("40")
                assert (await ws.recv()).startswith("40")
                await ws.send("42" + json.dumps(["session_request", {"session_id": session_id}]))
                assert session_id in await ws.recv()
                await ws.send("42" + json.dumps(["user_uttered", message]))
                await ws.send("41")
        for _ in range(150):  # the turn finishes in the background
            if any(e["event"] == "bot" for e in _events(server.url, session_id)):
                break
            await asyncio.sleep(0.1)
        return await _replies_after_session_request(server.url, session_id, 10)

    replies = asyncio.run(run())
    users = [e["text"] for e in _events(server.url, session_id) if e["event"] == "user"]
    assert users == ["what does the longissimus do?"], "the message was processed"
    assert any("longissimus" in r.get("text", "").lower() for r in replies), replies


def test_replies_sent_to_a_socket_that_vanished_unnoticed_arrive_on_the_next_one(server):
    """The client disappears mid-turn without a close packet: the server emits into the dead
    socket (it has not noticed yet); once a ping goes unanswered the replies are delivered to
    the session's next socket instead of being lost."""
    session_id = "sio-vanished-1"

    async def run() -> list:
        raw = RawPollingClient(server.fast_ping)
        await raw.open()
        await raw.emit("session_request", {"session_id": session_id})
        assert session_id in await raw.poll()
        await raw.emit("user_uttered", {"message": "my lower back hurts", "session_id": session_id})
        await raw.vanish()
        await asyncio.sleep(4)  # past ping interval + timeout: the server has noticed
        return await _replies_after_session_request(server.fast_ping, session_id, 10)

    replies = asyncio.run(run())
    texts = [r.get("text", "") for r in replies]
    assert any("sorry your back" in t for t in texts), texts
    assert len(texts) == len(set(texts)), "each reply once"


def test_replies_reach_a_reload_that_came_before_the_server_noticed_the_old_socket(server):
    """A reload: the new socket joins while the old one is still thought alive and the turn's
    replies go to the old one only; when its ping times out, the new socket gets them."""
    session_id = "sio-reload-1"

    async def run() -> list:
        raw = RawPollingClient(server.fast_ping)
        await raw.open()
        await raw.emit("session_request", {"session_id": session_id})
        assert session_id in await raw.poll()
        await raw.emit("user_uttered", {"message": "hello", "session_id": session_id})
        await asyncio.sleep(1.0)  # the replies are emitted to the old socket, never collected
        await raw.vanish()
        chat = await Chat(server.fast_ping).connect()
        await chat.session(session_id)
        got = []
        try:
            while True:
                got.append(await asyncio.wait_for(chat.bot.get(), 15))
        except asyncio.TimeoutError:
            pass
        await chat.close()
        return got

    texts = [r.get("text", "") for r in asyncio.run(run())]
    assert any("not a doctor" in t for t in texts), texts
    assert len(texts) == len(set(texts)), "each reply once"


def test_replies_to_a_socket_that_closed_gracefully_after_reading_are_not_repeated(server):
    session_id = "sio-no-repeat-1"

    async def run() -> list:
        first = await Chat(server.url, ["polling"]).connect()
        await first.session(session_id)
        assert await first.say("hello", session_id)
        await first.close()
        return await _replies_after_session_request(server.url, session_id, 2)

    assert asyncio.run(run()) == []


@pytest.mark.parametrize("origin, allowed", [
    ("own", True), (OTHER_SITE, True), ("https://elsewhere.example", False)])
def test_cors_origins_add_sites_without_locking_out_the_own_origin(server, origin, allowed):
    headers = {"Origin": server.cors if origin == "own" else origin}

    async def run() -> bool:
        chat = Chat(server.cors, ["polling"])
        try:
            await chat.connect(headers=headers)
        except socketio.exceptions.ConnectionError:
            return False
        confirmed = await chat.session("sio-cors-1") == "sio-cors-1"
        await chat.close()
        return confirmed

    assert asyncio.run(run()) is allowed


def test_the_own_origin_behind_a_reverse_proxy_is_allowed(server):
    """A proxy at https://clinic.example/backline/ forwards with X-Forwarded-Host/-Proto: the
    page's origin is then the proxy's, and counts as the server's own."""
    headers = {"Origin": "https://clinic-proxy.example", "X-Forwarded-Host": "clinic-proxy.example",
               "X-Forwarded-Proto": "https"}

    async def run() -> str:
        chat = await Chat(server.cors, ["polling"]).connect(headers=headers)
        confirmed = await chat.session("sio-proxy-1")
        await chat.close()
        return confirmed

    assert asyncio.run(run()) == "sio-proxy-1"


def test_a_null_message_is_ignored_like_rasa_does(server):
    """rasa-webchat without initPayload sends `message: null`: no error event, no turn."""
    session_id = "sio-null-1"

    async def run() -> tuple[list, list]:
        chat = await Chat(server.url).connect()
        errors: list = []
        chat.sio.on("error", errors.append)
        await chat.session(session_id)
        await chat.sio.emit("user_uttered", {"message": None, "session_id": session_id})
        await chat.sio.emit("user_uttered", {"session_id": session_id})
        await asyncio.sleep(1.0)
        replies = await chat.say("hello", session_id)
        await chat.close()
        return errors, replies

    errors, replies = asyncio.run(run())
    assert errors == [] and replies
    users = [e["text"] for e in tracker(server.url, session_id)["events"] if e["event"] == "user"]
    assert users == ["hello"]
