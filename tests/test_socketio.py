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

from bot.channels.socketio import socketio_messages, verify_jwt
from bot.server import ServerLoop, create_app, load_credentials

ROOT = Path(__file__).resolve().parents[1]
JWT_KEY = "jwt-test-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    from bot.agent import Agent
    from bot.stores import create_tracker_store

    tmp = tmp_path_factory.mktemp("socketio")
    store = create_tracker_store({"type": "sql", "dialect": "sqlite",
                                  "db": str(tmp / "conversations.db")}, tmp)
    agent = Agent.load(ROOT, tracker_store=store)
    project_creds = load_credentials(ROOT)  # the repository's credentials.yml, as `bot run` uses
    webchat = {**project_creds, "socketio": {**(project_creds.get("socketio") or {}),
                                             "session_persistence": True,
                                             "metadata_key": "customData"}}
    loop = ServerLoop()
    webchat_app = create_app(agent, webchat)
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
