"""The HTTP API and REST channel (bot/server.py, bot/channels/): a real server on loopback
driving the real engine; shapes as PROTOCOLS.md, bad input answered with one-line JSON."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from bot.channels.rest import rest_messages
from tests.helpers import served_agent
from bot.server import create_app

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token"
ALLOWED_ORIGIN = "http://clinic.example"
FRAMING_SITE = "https://practice.example"
MESSAGE_KEYS = {"recipient_id", "text", "buttons", "image", "attachment", "custom"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with served_agent(tmp_path_factory.mktemp("http")) as (agent, loop):
        yield SimpleNamespace(
            agent=agent,
            url=loop.start(create_app(agent, {"rest": None}, max_request_bytes=200_000)),
            secured=loop.start(create_app(agent, {"rest": None, "cors_origins": [ALLOWED_ORIGIN]},
                                          token=TOKEN, rate_limit="4/60")),
            framed=loop.start(create_app(agent, {"rest": {"frame_origins": [FRAMING_SITE]}},
                                         frame_origins=["https://second.example"])),
        )


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture
def secured(server):
    with httpx.Client(base_url=server.secured, timeout=30) as c:
        yield c


def say(client: httpx.Client, sender: str, message: str, **extra) -> list[dict]:
    r = client.post("/webhooks/rest/webhook", json={"sender": sender, "message": message, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def tracker(client: httpx.Client, sender: str, include: str = "AFTER_RESTART") -> dict:
    r = client.get(f"/conversations/{sender}/tracker", params={"include_events": include})
    assert r.status_code == 200, r.text
    return r.json()


def user_texts(tracker_json: dict) -> list[str]:
    return [e["text"] for e in tracker_json["events"] or [] if e["event"] == "user"]


def assert_json_error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    assert "\n" not in r.text.strip() and "Traceback" not in r.text
    body = r.json()
    assert isinstance(body["error"], str) and body["error"]
    assert body["code"] == status
    return body


# -- REST channel -------------------------------------------------------------------------------

def test_rest_channel_health(client):
    r = client.get("/webhooks/rest/")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_webhook_replies_in_rasa_shape(client):
    messages = say(client, "shape-1", "hello")
    assert messages, "the bot answers a greeting"
    for m in messages:
        assert set(m) <= MESSAGE_KEYS and m["recipient_id"] == "shape-1"
        assert None not in m.values()
        assert "\n\n" not in m.get("text", "")
        for button in m.get("buttons", []):
            assert set(button) == {"title", "payload"}
    assert any("not a doctor" in m.get("text", "") for m in messages), "disclaimer at start"
    assert any(m.get("buttons") for m in messages), "the greeting offers buttons"


def test_missing_sender_is_default(client):
    messages = say_without_sender = client.post("/webhooks/rest/webhook", json={"message": "hi"})
    assert say_without_sender.status_code == 200
    assert {m["recipient_id"] for m in messages.json()} == {"default"}
    assert "hi" in user_texts(tracker(client, "default"))
    client.delete("/conversations/default")


def test_metadata_and_input_channel_reach_the_tracker(client):
    say(client, "meta-1", "hello", metadata={"lang": "en", "page": "faq"},
        input_channel="clinic_site")
    t = tracker(client, "meta-1")
    user = [e for e in t["events"] if e["event"] == "user"][-1]
    assert user["metadata"] == {"lang": "en", "page": "faq"}
    assert user["input_channel"] == "clinic_site"
    assert t["latest_input_channel"] == "clinic_site"


def test_stream_returns_newline_delimited_json(client):
    plain = say(client, "stream-a", "hello")
    r = client.post("/webhooks/rest/webhook?stream=true", json={"sender": "stream-b", "message": "hello"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    lines = [json.loads(line) for line in r.text.splitlines() if line.strip()]
    assert [{k: v for k, v in m.items() if k != "recipient_id"} for m in lines] == \
           [{k: v for k, v in m.items() if k != "recipient_id"} for m in plain]
    assert {m["recipient_id"] for m in lines} == {"stream-b"}


@pytest.mark.parametrize("engine_message, expected", [
    ({"text": "One.\n\nTwo.\n\n\n\nThree."},
     [{"text": "One."}, {"text": "Two."}, {"text": "Three."}]),
    ({"text": "Pick:", "buttons": [{"title": "Yes", "payload": "/affirm"}]},
     [{"text": "Pick:", "buttons": [{"title": "Yes", "payload": "/affirm"}]}]),
    ({"text": "Look", "image": "https://example.org/a.png"},
     [{"text": "Look"}, {"image": "https://example.org/a.png"}]),
    ({"custom": {"visit_summary": {"triage_level": "routine"}}},
     [{"custom": {"visit_summary": {"triage_level": "routine"}}}]),
])
def test_rest_messages_follow_rasa_collecting_output(engine_message, expected):
    assert rest_messages("u", [engine_message]) == [{"recipient_id": "u", **e} for e in expected]


# -- HTTP API -----------------------------------------------------------------------------------

def test_model_parse_shape(client):
    r = client.post("/model/parse", json={"text": "hello there", "message_id": "m-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["text"] == "hello there"
    assert set(body["intent"]) >= {"name", "confidence"} and body["intent"]["name"] == "greet"
    assert isinstance(body["entities"], list) and isinstance(body["intent_ranking"], list)
    assert all(set(i) >= {"name", "confidence"} for i in body["intent_ranking"])


def test_model_parse_entities_shape(client):
    body = client.post("/model/parse", json={"text": "my lower back hurts"}).json()
    for entity in body["entities"]:
        assert set(entity) >= {"entity", "value", "start", "end", "extractor"}
        assert body["text"][entity["start"]:entity["end"]]


def test_tracker_shape_and_include_events(client):
    say(client, "tracker-1", "hello")
    t = tracker(client, "tracker-1")
    assert set(t) >= {"sender_id", "slots", "latest_message", "latest_event_time",
                      "followup_action", "paused", "events", "latest_input_channel",
                      "active_loop", "latest_action", "latest_action_name"}
    assert t["sender_id"] == "tracker-1" and t["slots"]["triage_level"] == "info"
    assert t["latest_message"]["text"] == "hello"
    assert {"user", "bot", "action"} <= {e["event"] for e in t["events"]}
    assert all("timestamp" in e for e in t["events"])
    full = tracker(client, "tracker-1", "all")
    assert len(full["events"]) >= len(t["events"])
    assert not tracker(client, "tracker-1", "NONE")["events"]
    assert tracker(client, "tracker-1", "APPLIED")["events"]


def test_delete_conversation_erases_it(client):
    say(client, "forget-1", "hello")
    r = client.delete("/conversations/forget-1")
    assert r.status_code == 200 and r.json() == {"deleted": "forget-1"}
    assert_json_error(client.get("/conversations/forget-1/tracker"), 404)
    assert_json_error(client.delete("/conversations/forget-1"), 404)


def test_status_and_health(client):
    status = client.get("/status").json()
    assert set(status) >= {"model_file", "model_id", "num_active_training_jobs"}
    assert client.get("/health").json() == {"status": "ok"}


def test_openapi_document_covers_every_route(client):
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) >= {"/webhooks/rest/webhook", "/webhooks/rest/", "/model/parse",
                                 "/conversations/{conversation_id}/tracker",
                                 "/conversations/{conversation_id}", "/status", "/health"}
    for path, operations in doc["paths"].items():
        for method in operations:
            concrete = path.replace("{conversation_id}", "openapi-probe")
            r = client.request(method.upper(), concrete, json={"message": "hi", "text": "hi"})
            assert r.status_code not in (405, 500), (method, path, r.text)
            assert str(r.status_code) in operations[method]["responses"], (method, path, r.text)


# -- bad input ----------------------------------------------------------------------------------

BAD_WEBHOOK_BODIES = [
    pytest.param(b"{not json", 400, "MalformedJson", id="malformed-json"),
    pytest.param(b"", 400, "EmptyBody", id="empty-body"),
    pytest.param(b'["a list"]', 400, "WrongType", id="not-an-object"),
    pytest.param(b'{"sender": "keeper"}', 400, "MissingField", id="missing-message"),
    pytest.param(b'{"sender": "keeper", "message": null}', 400, "MissingField", id="null-message"),
    pytest.param(b'{"sender": "keeper", "message": 42}', 400, "WrongType", id="number-message"),
    pytest.param(b'{"sender": "keeper", "message": ["hi"]}', 400, "WrongType", id="list-message"),
    pytest.param(b'{"sender": "keeper", "message": ""}', 400, "EmptyMessage", id="empty-message"),
    pytest.param(b'{"sender": "keeper", "message": " \\n\\t"}', 400, "EmptyMessage", id="blank"),
    pytest.param(b'{"sender": ["keeper"], "message": "hi"}', 400, "WrongType", id="list-sender"),
    pytest.param(b'{"sender": true, "message": "hi"}', 400, "WrongType", id="bool-sender"),
    pytest.param(b'{"sender": 7, "message": "hi"}', 400, "WrongType", id="number-sender"),
    pytest.param(b'{"sender": "", "message": "hi"}', 400, "InvalidSenderId", id="empty-sender"),
    pytest.param(b'{"sender": "a\\u0000b", "message": "hi"}', 400, "InvalidSenderId", id="nul"),
    pytest.param(b'{"sender": "keeper", "message": "hi", "metadata": "x"}', 400, "WrongType",
                 id="string-metadata"),
    pytest.param(b'{"sender": "keeper", "message": "hi", "input_channel": 3}', 400, "WrongType",
                 id="number-input-channel"),
    pytest.param(b'{"sender": "keeper", "message": "\xff\xfe hi"}', 400, "InvalidEncoding",
                 id="invalid-utf8"),
    pytest.param(b'{"sender": "keeper", "message": "' + b"a" * 10_000_000 + b'"}', 413,
                 "PayloadTooLarge", id="10MB-message"),
    pytest.param(b'{"sender": "keeper", "message": "' + b"a" * 200_001 + b'"}', 413,
                 "PayloadTooLarge", id="just-over-limit"),
    pytest.param(b"[" * 100_000, 400, "MalformedJson", id="deep-nesting"),
]


@pytest.fixture(scope="module")
def keeper(server):
    """A conversation with stored turns that the bad requests below must not disturb."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        say(c, "keeper", "hello")
        say(c, "keeper", "my lower back hurts")
        return user_texts(tracker(c, "keeper"))


@pytest.mark.parametrize("body, status, reason", BAD_WEBHOOK_BODIES)
def test_bad_webhook_input_is_a_one_line_json_4xx(client, keeper, body, status, reason):
    r = client.post("/webhooks/rest/webhook", content=body,
                    headers={"Content-Type": "application/json"})
    assert assert_json_error(r, status)["reason"] == reason
    assert user_texts(tracker(client, "keeper")) == keeper, "stored turns are untouched"


@pytest.mark.parametrize("method, path, body, status", [
    ("POST", "/model/parse", b"{}", 400),
    ("POST", "/model/parse", b'{"text": 5}', 400),
    ("POST", "/model/parse", b'{"text": ""}', 400),
    ("POST", "/model/parse", b"nope", 400),
    ("POST", "/model/parse?emulation_mode=wit", b'{"text": "hi"}', 400),
    ("GET", "/conversations/keeper/tracker?include_events=SOME", None, 400),
    ("POST", "/webhooks/rest/webhook?stream=maybe", b'{"sender": "keeper", "message": "hi"}', 400),
    ("GET", "/conversations/" + "x" * 300 + "/tracker", None, 400),
    ("GET", "/conversations/never-seen/tracker", None, 404),
    ("DELETE", "/conversations/never-seen", None, 404),
    ("GET", "/no/such/route", None, 404),
    ("PUT", "/webhooks/rest/webhook", b"{}", 405),
    ("GET", "/widget/../../bot/server.py", None, 404),
    ("GET", "/widget/secrets.txt", None, 404),
])
def test_bad_api_input_is_a_one_line_json_4xx(client, keeper, method, path, body, status):
    headers = {"Content-Type": "application/json"} if method == "POST" else {}
    r = client.request(method, path, content=body, headers=headers)
    assert_json_error(r, status)
    assert user_texts(tracker(client, "keeper")) == keeper


# -- security -----------------------------------------------------------------------------------

def test_token_protects_the_api_but_not_the_channel(secured):
    assert_json_error(secured.get("/status"), 401)
    assert_json_error(secured.get("/status", params={"token": "wrong"}), 403)
    assert secured.get("/status", params={"token": TOKEN}).status_code == 200
    assert secured.get("/status", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert_json_error(secured.post("/model/parse", json={"text": "hi"}), 401)
    assert secured.post(f"/model/parse?token={TOKEN}", json={"text": "hi"}).status_code == 200
    assert_json_error(secured.get("/conversations/token-1/tracker"), 401)
    assert_json_error(secured.delete("/conversations/token-1"), 401)
    r = secured.post("/webhooks/rest/webhook", json={"sender": "token-1", "message": "hello"})
    assert r.status_code == 200, "channels stay open, as in Rasa"
    assert secured.get(f"/conversations/token-1/tracker?token={TOKEN}").status_code == 200
    assert secured.get("/health").status_code == 200
    assert secured.get("/openapi.json").json()["components"]["securitySchemes"]


def test_cors_allows_only_configured_origins(secured, client):
    r = secured.get("/health", headers={"Origin": ALLOWED_ORIGIN})
    assert r.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "origin" in r.headers["vary"].lower()
    r = secured.get("/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    r = secured.options("/webhooks/rest/webhook", headers={
        "Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in r.headers["access-control-allow-methods"]
    r = client.get("/health", headers={"Origin": ALLOWED_ORIGIN})
    assert "access-control-allow-origin" not in r.headers, "no CORS unless configured"


def test_pages_carry_security_headers(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe" not in csp
    assert "frame-ancestors 'none'" in csp and page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text), "no inline scripts"
    assert "<style" not in page.text and " style=" not in page.text, "no inline styles"
    assert not re.search(r"\son[a-z]+=", page.text), "no inline event handlers"
    frame = client.get("/widget/frame")
    assert "x-frame-options" not in frame.headers, "the embed frame may be framed"
    assert "frame-ancestors" in frame.headers["content-security-policy"]
    api = client.get("/health")
    assert api.headers["x-content-type-options"] == "nosniff"


def test_framing_is_set_apart_from_cors(server):
    def frame_csp(url: str) -> str:
        response = httpx.get(f"{url}/widget/frame", timeout=30)
        assert response.status_code == 200
        return response.headers["content-security-policy"]

    # a CORS origin neither limits nor grants framing: embed.js works on any page by default
    assert "frame-ancestors *" in frame_csp(server.secured)
    # `frame_origins` (credentials.yml, here under `rest:`) plus --frame-origins: exactly those
    assert "frame-ancestors https://second.example https://practice.example" in frame_csp(server.framed)
    page = httpx.get(f"{server.framed}/", timeout=30).headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page, "the page itself is never framed"


def test_widget_files_and_embed_script(client):
    for name, ctype in [("widget.js", "text/javascript"), ("widget.css", "text/css"),
                        ("embed.js", "text/javascript")]:
        r = client.get(f"/widget/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(ctype)
    assert "innerHTML" not in client.get("/widget/widget.js").text
    assert "/widget/frame" in client.get("/widget/embed.js").text


def test_widget_state_reports_triage_and_transcript(client):
    say(client, "state-1", "hello")
    state = client.get("/widget/state/state-1").json()
    assert state["triage_level"] == "info" and state["emergency_number"]
    assert [m["text"] for m in state["messages"] if m["from"] == "user"] == ["hello"]
    assert any("not a doctor" in m.get("text", "") for m in state["messages"] if m["from"] == "bot")
    unknown = client.get("/widget/state/never-seen").json()
    assert unknown["messages"] == [] and unknown["triage_level"] == "info"


def test_rate_limit_answers_429_with_retry_after(secured):
    statuses = []
    for _ in range(5):
        r = secured.post("/webhooks/rest/webhook", json={"sender": "rate-1", "message": "hello"})
        statuses.append(r.status_code)
    assert statuses[-1] == 429 and 200 in statuses
    assert int(r.headers["retry-after"]) >= 1
    # Answered like any reply (Rasa REST shape) so clients show it: the wait and the number.
    body = r.json()
    assert isinstance(body, list) and body and all(m["recipient_id"] == "rate-1" for m in body)
    assert f"wait {r.headers['retry-after']} seconds" in body[-1]["text"] and "911" in body[-1]["text"]


# -- concurrency --------------------------------------------------------------------------------

def test_concurrent_messages_to_one_conversation_run_in_arrival_order(server):
    texts = [f"hello number {i}" for i in range(10)]

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
            async def send(i: int) -> httpx.Response:
                await asyncio.sleep(0.02 * i)  # staggered so that arrival order is known
                return await c.post("/webhooks/rest/webhook",
                                    json={"sender": "same-1", "message": texts[i]})
            return await asyncio.gather(*(send(i) for i in range(10)))

    responses = asyncio.run(send_all())
    assert all(r.status_code == 200 and r.json() for r in responses)
    with httpx.Client(base_url=server.url) as c:
        events = [e for e in tracker(c, "same-1")["events"] if e["event"] in ("user", "bot")]
    assert [e["text"] for e in events if e["event"] == "user"] == texts
    kinds = "".join("u" if e["event"] == "user" else "b" for e in events)
    assert re.fullmatch(r"b*(ub+)+", kinds), f"each message answered before the next: {kinds}"


def test_different_conversations_run_concurrently(server):
    senders = [f"parallel-{i}" for i in range(10)]

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
            return await asyncio.gather(*(
                c.post("/webhooks/rest/webhook", json={"sender": s, "message": f"hello from {s}"})
                for s in senders))

    responses = asyncio.run(send_all())
    for sender, r in zip(senders, responses):
        assert r.status_code == 200
        assert {m["recipient_id"] for m in r.json()} == {sender}
    with httpx.Client(base_url=server.url) as c:
        for sender in senders:
            assert user_texts(tracker(c, sender)) == [f"hello from {sender}"]
