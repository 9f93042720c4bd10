"""What every HTTP request passes, module by module (bot/channels/inputs.py, access.py, cors.py,
headers.py, errors.py), on a small Sanic app of its own served on loopback -- no engine, so
each check is seen without the HTTP API around it. The socket.io JWT check (verify_jwt) is
tested with tokens PyJWT makes."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace

import httpx
import jwt
import pytest
import socketio
from sanic import Request, Sanic, response
from sanic.response import HTTPResponse

from bot.channels.access import RateLimiter, check_token, parse_rate_limit
from bot.channels.cors import Cors
from bot.channels.errors import ApiError, JsonErrorHandler
from bot.channels.headers import add_security_headers
from bot.channels.inputs import (
    bool_arg,
    json_body,
    message_text,
    optional_object,
    optional_str,
    path_id,
    sender_id,
)
from bot.channels.socketio import SocketIOChannel, verify_jwt
from bot.limits import MAX_JSON_DEPTH, MAX_MESSAGE_CHARS, MAX_SENDER_ID_CHARS
from tests.servers import ServerLoop

TOKEN = "guard-token"
ALLOWED = "https://clinic.example"
FRAMER = "https://practice.example"
JWT_KEY = "k" * 64  # long enough for HS512 (RFC 7518 3.2): PyJWT warns below that


def guarded_app(name: str, *, token: str | None = None, limit: str | None = None,
                origins: tuple[str, ...] = ()) -> Sanic:
    """The guards composed as bot/server.py composes them, around three tiny routes."""
    app = Sanic(name, error_handler=JsonErrorHandler(), configure_logging=False)
    app.config.TOUCHUP = False
    app.config.ACCESS_LOG = False
    limiter = parse_rate_limit(limit)
    cors = Cors(origins)

    @app.post("/echo")
    async def echo(request: Request) -> HTTPResponse:
        data = json_body(request)
        text = message_text(data, "text")
        sender = sender_id(data["sender"]) if "sender" in data else "default"
        optional_object(data, "metadata")
        optional_str(data, "channel")
        return response.json({"text": text, "sender": sender, "loud": bool_arg(request, "loud")})

    @app.get("/private/<conversation_id:str>")
    async def private(request: Request, conversation_id: str) -> HTTPResponse:
        check_token(request, token)
        conversation_id = path_id(conversation_id)
        if limiter is not None:
            limiter.check(f"sender:{conversation_id}")
        return response.json({"id": conversation_id})

    @app.get("/page")
    async def page(request: Request) -> HTTPResponse:
        return response.html("<p>hi</p>")

    @app.on_request
    async def preflight(request: Request) -> HTTPResponse | None:
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            return cors.preflight(request)
        return None

    @app.on_response
    async def headers(request: Request, resp: HTTPResponse) -> None:
        cors.apply(request, resp)
        add_security_headers(request, resp,
                             frame_ancestors=FRAMER if request.path == "/page" else "'none'")

    return app


@pytest.fixture(scope="module")
def urls():
    loop = ServerLoop()
    try:
        yield SimpleNamespace(
            open=loop.start(guarded_app("guards_open", origins=(ALLOWED,))),
            secured=loop.start(guarded_app("guards_secured", token=TOKEN)),
            limited=loop.start(guarded_app("guards_limited", limit="2/60")),
            anyone=loop.start(guarded_app("guards_any", origins=("*",))),
        )
    finally:
        loop.stop()


def error_of(r: httpx.Response, status: int) -> dict:
    """The one-line JSON error (errors.py) with `status`."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["code"] == status and body["error"] and "Traceback" not in r.text
    return body


def post_raw(url: str, body: str | bytes, content_type: str = "application/json") -> httpx.Response:
    return httpx.post(f"{url}/echo", content=body, headers={"Content-Type": content_type}, timeout=30)


def nested(levels: int) -> object:
    value: object = []
    for _ in range(levels - 1):
        value = [value]
    return value


# -- inputs.py ----------------------------------------------------------------------------------

def test_a_good_body_is_read(urls):
    r = httpx.post(f"{urls.open}/echo?loud=true", timeout=30, json={
        "text": "my back hurts", "sender": "u-1", "metadata": {"a": 1}, "channel": "web"})
    assert r.status_code == 200, r.text
    assert r.json() == {"text": "my back hurts", "sender": "u-1", "loud": True}


@pytest.mark.parametrize("body, content_type, status, reason", [
    ('{"text": "hi"}', "text/plain", 415, "UnsupportedMediaType"),
    ("text=hi", "application/x-www-form-urlencoded", 415, "UnsupportedMediaType"),
    ("", "application/json", 400, "EmptyBody"),
    (b'{"text": "\xff"}', "application/json", 400, "InvalidEncoding"),
    ('{"text": "hi"', "application/json", 400, "MalformedJson"),
    ('{"text": "hi", "n": NaN}', "application/json", 400, "MalformedJson"),
    ('{"text": "hi", "n": Infinity}', "application/json", 400, "MalformedJson"),
    ('{"text": "hi", "n": -Infinity}', "application/json", 400, "MalformedJson"),
    ('{"text": "hi", "n": 1e999}', "application/json", 400, "MalformedJson"),
    ('["text", "hi"]', "application/json", 400, "WrongType"),
    ('{"text": 5}', "application/json", 400, "WrongType"),
    ('{"text": ["hi"]}', "application/json", 400, "WrongType"),
    ('{}', "application/json", 400, "MissingField"),
    ('{"text": null}', "application/json", 400, "MissingField"),
    ('{"text": "   "}', "application/json", 400, "EmptyMessage"),
    ('{"text": "hi", "sender": 7}', "application/json", 400, "WrongType"),
    ('{"text": "hi", "metadata": [1]}', "application/json", 400, "WrongType"),
    ('{"text": "hi", "channel": {}}', "application/json", 400, "WrongType"),
    ('{"text": "hi", "sender": ""}', "application/json", 400, "InvalidSenderId"),
    ('{"text": "hi", "sender": "a\\u0000b"}', "application/json", 400, "InvalidSenderId"),
])
def test_bad_bodies_are_refused_with_what_is_wrong(urls, body, content_type, status, reason):
    assert error_of(post_raw(urls.open, body, content_type), status)["reason"] == reason


def test_json_with_a_vendor_type_is_read(urls):
    assert post_raw(urls.open, '{"text": "hi"}', "application/vnd.api+json; charset=utf-8").status_code == 200


def test_nesting_is_allowed_up_to_the_limit_and_not_beyond(urls):
    # the body object is level 1, so MAX_JSON_DEPTH - 1 arrays inside it reach the limit exactly
    at_limit = json.dumps({"text": "hi", "m": nested(MAX_JSON_DEPTH - 1)})
    beyond = json.dumps({"text": "hi", "m": nested(MAX_JSON_DEPTH)})
    assert post_raw(urls.open, at_limit).status_code == 200
    assert error_of(post_raw(urls.open, beyond), 400)["reason"] == "TooDeep"
    # far deeper than the parser's recursion limit: still one JSON error, not a crash
    hostile = '{"text": "hi", "m": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert error_of(post_raw(urls.open, hostile), 400)["reason"] in {"MalformedJson", "TooDeep"}


def test_message_length_limit(urls):
    assert post_raw(urls.open, json.dumps({"text": "a" * MAX_MESSAGE_CHARS})).status_code == 200
    body = error_of(post_raw(urls.open, json.dumps({"text": "a" * (MAX_MESSAGE_CHARS + 1)})), 413)
    assert body["reason"] == "MessageTooLong" and body["field"] == "text"


def test_sender_id_length_limit(urls):
    ok = {"text": "hi", "sender": "s" * MAX_SENDER_ID_CHARS}
    assert post_raw(urls.open, json.dumps(ok)).json()["sender"] == ok["sender"]
    long = {"text": "hi", "sender": "s" * (MAX_SENDER_ID_CHARS + 1)}
    body = error_of(post_raw(urls.open, json.dumps(long)), 400)
    assert body["reason"] == "InvalidSenderId" and body["field"] == "sender"


@pytest.mark.parametrize("query", ["loud=yes", "loud=", "loud=true&loud=false"])
def test_a_flag_must_be_true_or_false(urls, query):
    assert post_raw(urls.open, json.dumps({"text": "hi"})).json()["loud"] is False  # absent
    r = httpx.post(f"{urls.open}/echo?{query}", json={"text": "hi"}, timeout=30)
    assert error_of(r, 400)["reason"] == "InvalidParameter"


def test_path_ids_are_percent_decoded_then_checked(urls):
    assert httpx.get(f"{urls.open}/private/user%40x.com", timeout=30).json() == {"id": "user@x.com"}
    assert error_of(httpx.get(f"{urls.open}/private/a%00b", timeout=30), 400)["reason"] == "InvalidSenderId"
    assert error_of(httpx.get(f"{urls.open}/private/%ff", timeout=30), 400)["reason"] == "InvalidSenderId"
    too_long = "i" * (MAX_SENDER_ID_CHARS + 1)
    assert error_of(httpx.get(f"{urls.open}/private/{too_long}", timeout=30), 400)["reason"] == "InvalidSenderId"


# -- access.py: auth token ----------------------------------------------------------------------

def test_without_a_configured_token_nothing_is_asked(urls):
    assert httpx.get(f"{urls.open}/private/c1", timeout=30).status_code == 200


def test_a_missing_token_is_401(urls):
    body = error_of(httpx.get(f"{urls.secured}/private/c1", timeout=30), 401)
    assert body["reason"] == "NotAuthenticated"
    r = httpx.get(f"{urls.secured}/private/c1", params={"token": ""}, timeout=30)
    assert error_of(r, 401)["reason"] == "NotAuthenticated"


@pytest.mark.parametrize("how", ["query", "bearer", "token-header"])
def test_a_wrong_token_is_403_and_the_right_one_passes(urls, how):
    def get(token: str) -> httpx.Response:
        if how == "query":  # Rasa's ?token=
            return httpx.get(f"{urls.secured}/private/c1", params={"token": token}, timeout=30)
        scheme = "Bearer" if how == "bearer" else "Token"
        return httpx.get(f"{urls.secured}/private/c1", headers={"Authorization": f"{scheme} {token}"},
                         timeout=30)

    assert error_of(get("not-" + TOKEN), 403)["reason"] == "NotAuthorized"
    assert error_of(get(TOKEN[:-1]), 403)["reason"] == "NotAuthorized"
    r = get(TOKEN)
    assert r.status_code == 200 and r.json() == {"id": "c1"}


def test_an_unknown_authorization_scheme_counts_as_no_token(urls):
    r = httpx.get(f"{urls.secured}/private/c1", headers={"Authorization": f"Basic {TOKEN}"}, timeout=30)
    assert error_of(r, 401)["reason"] == "NotAuthenticated"


# -- access.py: rate limit ----------------------------------------------------------------------

def test_the_limit_gives_429_with_retry_after_and_other_senders_are_not_limited(urls):
    statuses = [httpx.get(f"{urls.limited}/private/busy", timeout=30).status_code for _ in range(2)]
    assert statuses == [200, 200]
    r = httpx.get(f"{urls.limited}/private/busy", timeout=30)
    body = error_of(r, 429)
    assert body["reason"] == "RateLimited"
    assert 1 <= int(r.headers["retry-after"]) <= 60 and body["retry_after"] == int(r.headers["retry-after"])
    assert httpx.get(f"{urls.limited}/private/calm", timeout=30).status_code == 200


def test_the_window_slides():
    limiter = RateLimiter(2, 0.3)
    limiter.check("k")
    limiter.check("k")
    with pytest.raises(ApiError) as refused:
        limiter.check("k")
    assert refused.value.status == 429
    time.sleep(0.35)
    limiter.check("k")  # the old hits have left the window


def test_a_refused_request_does_not_count_for_its_other_keys():
    limiter = RateLimiter(1, 60)
    limiter.check("ip:a")
    with pytest.raises(ApiError):
        limiter.check("sender:s", "ip:a")
    limiter.check("sender:s")  # the refused request was not counted for sender:s


@pytest.mark.parametrize("value", ["0/60", "5/0", "-1/60", "x/60"])
def test_bad_rate_limits_are_refused(value):
    with pytest.raises(ValueError):
        parse_rate_limit(value)


def test_rate_limit_spellings():
    assert parse_rate_limit(None) is None and parse_rate_limit("") is None
    limiter = parse_rate_limit("30/90")
    assert (limiter.limit, limiter.period) == (30, 90.0)
    assert parse_rate_limit("7").period == 60.0


# -- cors.py ------------------------------------------------------------------------------------

def test_an_allowed_origin_is_echoed_and_another_is_not(urls):
    r = httpx.get(f"{urls.open}/private/c1", headers={"Origin": ALLOWED}, timeout=30)
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert r.headers["vary"] == "Origin"
    r = httpx.get(f"{urls.open}/private/c1", headers={"Origin": "https://evil.example"}, timeout=30)
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    r = httpx.get(f"{urls.secured}/private/c1", headers={"Origin": ALLOWED}, timeout=30)
    assert "access-control-allow-origin" not in r.headers  # no origins configured: none allowed


def test_preflight(urls):
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    r = httpx.options(f"{urls.open}/echo", headers={"Origin": ALLOWED, **ask}, timeout=30)
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "content-type" in r.headers["access-control-allow-headers"].lower()
    r = httpx.options(f"{urls.open}/echo", headers={"Origin": "https://evil.example", **ask}, timeout=30)
    assert r.status_code == 204
    assert not any(h.startswith("access-control-") for h in r.headers)


def test_a_star_allows_any_origin_without_vary(urls):
    r = httpx.get(f"{urls.anyone}/private/c1", headers={"Origin": "https://any.example"}, timeout=30)
    assert r.headers["access-control-allow-origin"] == "*" and "vary" not in r.headers


# -- headers.py ---------------------------------------------------------------------------------

def test_security_headers_on_answers_errors_and_pages(urls):
    answers = {"json": httpx.get(f"{urls.open}/private/c1", timeout=30),
               "error": httpx.get(f"{urls.open}/no/such/route", timeout=30),
               "page": httpx.get(f"{urls.open}/page", timeout=30)}
    for kind, r in answers.items():
        assert r.headers["x-content-type-options"] == "nosniff", kind
        assert r.headers["referrer-policy"] == "no-referrer", kind
    for kind in ("json", "error"):
        csp = answers[kind].headers["content-security-policy"]
        assert csp == "default-src 'none'; frame-ancestors 'none'", (kind, csp)
    page_csp = answers["page"].headers["content-security-policy"]
    assert "script-src 'self'" in page_csp and "unsafe-inline" not in page_csp
    assert page_csp.endswith(f"frame-ancestors {FRAMER}")
    assert "x-frame-options" not in answers["page"].headers  # framing by FRAMER is allowed


def test_a_page_that_may_not_be_framed_says_so_twice():
    loop = ServerLoop()
    app = Sanic("guards_noframe", configure_logging=False)
    app.config.TOUCHUP = False

    @app.get("/")
    async def page(request: Request) -> HTTPResponse:
        return response.html("<p>hi</p>")

    @app.on_response
    async def headers(request: Request, resp: HTTPResponse) -> None:
        add_security_headers(request, resp, frame_ancestors="'none'")

    try:
        r = httpx.get(loop.start(app), timeout=30)
    finally:
        loop.stop()
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["content-security-policy"].endswith("frame-ancestors 'none'")


# -- socket.io's JWT check (PyJWT) -------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_a_valid_jwt_is_accepted(algorithm):
    token = jwt.encode({"sub": "u", "exp": int(time.time()) + 60}, JWT_KEY, algorithm=algorithm)
    assert verify_jwt(token, JWT_KEY, algorithm)["sub"] == "u"


def test_an_expired_jwt_is_refused():
    token = jwt.encode({"sub": "u", "exp": int(time.time()) - 5}, JWT_KEY, algorithm="HS256")
    assert verify_jwt(token, JWT_KEY) is None


def test_a_jwt_signed_with_another_key_is_refused():
    token = jwt.encode({"sub": "u"}, "x" * 64, algorithm="HS256")
    assert verify_jwt(token, JWT_KEY) is None


def test_alg_none_and_another_algorithm_are_refused():
    unsigned = jwt.encode({"sub": "u"}, None, algorithm="none")
    assert verify_jwt(unsigned, JWT_KEY) is None
    # a valid signature, but with HS512 where HS256 is configured
    assert verify_jwt(jwt.encode({"sub": "u"}, JWT_KEY, algorithm="HS512"), JWT_KEY, "HS256") is None
    assert verify_jwt("not-a-jwt", JWT_KEY) is None


def test_an_unsupported_jwt_method_is_a_configuration_error():
    async def handle(*args):
        return []

    with pytest.raises(ValueError, match=r"socketio\.jwt_method 'RS256': use HS256/384/512"):
        SocketIOChannel(handle, jwt_key=JWT_KEY, jwt_method="RS256")
    with pytest.raises(ValueError, match=r"jwt_method 'none'"):
        verify_jwt("a.b.c", JWT_KEY, "none")


def test_socketio_connect_takes_only_valid_tokens_of_the_configured_method():
    """The check where it runs: socket.io's connect, on a real server (HS512 configured)."""
    async def handle(text, sender, metadata, channel):
        return [{"text": f"got {text}"}]

    app = Sanic("guards_jwt", configure_logging=False)
    app.config.TOUCHUP = False
    SocketIOChannel(handle, jwt_key=JWT_KEY, jwt_method="HS512").attach(app)
    loop = ServerLoop()
    url = loop.start(app)
    now = int(time.time())

    async def connects(auth: dict | None) -> bool:
        client = socketio.AsyncClient(reconnection=False)
        try:
            await client.connect(url, transports=["websocket"], auth=auth, wait_timeout=10)
        except socketio.exceptions.ConnectionError:
            return False
        confirmed: asyncio.Queue = asyncio.Queue()
        client.on("session_confirm", confirmed.put_nowait)
        await client.emit("session_request", {"session_id": "jwt-1"})
        assert await asyncio.wait_for(confirmed.get(), 10) == "jwt-1"
        await client.disconnect()
        return True

    def token(algorithm: str = "HS512", key: str | None = JWT_KEY, **claims) -> str:
        return jwt.encode({"sub": "u", **claims}, key, algorithm=algorithm)

    async def run() -> dict[str, bool]:
        return {
            "none given": await connects(None),
            "alg none": await connects({"token": token("none", None)}),
            "HS256": await connects({"token": token("HS256")}),
            "wrong key": await connects({"token": token(key="y" * 64)}),
            "expired": await connects({"token": token(exp=now - 5)}),
            "valid": await connects({"token": token(exp=now + 60)}),
            "valid, Bearer": await connects({"token": "Bearer " + token()}),
        }

    try:
        results = asyncio.run(run())
    finally:
        loop.stop()
    assert results == {"none given": False, "alg none": False, "HS256": False, "wrong key": False,
                       "expired": False, "valid": True, "valid, Bearer": True}
