"""Schema-based fuzzing of the HTTP API (schemathesis 4.x) against a real server on loopback.

The schema is the one the server publishes at /openapi.json. For every operation schemathesis
generates valid and invalid requests (its positive and negative modes, plus its coverage phase);
every response must be no 5xx, a documented status code, a documented content type and a body
that matches the documented schema. Bounded: 25 generated cases per operation by default, 400
with BACKLINE_SOAK=1.

Also here: the guards the fuzzing does not reach (rate limit on /model/parse, security headers
on error answers, `bot run` exposing the rate limit).
"""

from __future__ import annotations

import re

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from bot.channels.openapi import openapi_document
from tests.hardening_support import agent_with_stores, scaled, served
from tests.stores_fixtures import BotServer, make_project, project_template  # noqa: F401  (fixture)

MAX_EXAMPLES = scaled(25, 400)

# The document the server serves is built by bot.channels.openapi.openapi_document(); it is loaded
# at import (schemathesis 4.32's lazy `from_fixture` loader crashes on pytest 9: it sets
# `request.node._nodeid`, which pytest 9 no longer has), and `test_fuzzed_schema_is_the_served_one`
# checks that it is byte for byte what GET /openapi.json returns.
# A message over the length limit (the documented maxLength) is refused with 413 Content Too
# Large, which schemathesis does not count as a rejection by default.
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
schema = schemathesis.openapi.from_dict(openapi_document(), config=SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}}}))


@pytest.fixture(scope="module")
def api_server(agent, tmp_path_factory):
    """The real app (REST + HTTP API + widget) on an SQLite store, no token, no rate limit."""
    from bot.stores import create_tracker_store

    tmp = tmp_path_factory.mktemp("fuzz")
    store = create_tracker_store({"type": "sql", "dialect": "sqlite", "db": str(tmp / "fuzz.db")}, tmp)
    fuzz_agent = agent_with_stores(agent, store)
    with served(fuzz_agent, {"rest": None}, max_request_bytes=200_000) as url:
        with httpx.Client(base_url=url, timeout=30) as c:  # one stored conversation to find
            assert c.post("/webhooks/rest/webhook", json={"sender": "fuzz-known", "message": "hello"}).status_code == 200
        yield url


def test_fuzzed_schema_is_the_served_one(api_server):
    served_doc = httpx.get(f"{api_server}/openapi.json", timeout=30).json()
    assert served_doc == openapi_document()
    loaded = schemathesis.openapi.from_url(f"{api_server}/openapi.json", timeout=30)
    assert {op.ok().label for op in loaded.get_all_operations()} == \
           {op.ok().label for op in schema.get_all_operations()}


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_api_conforms_to_its_openapi_document(case, api_server):
    case.call_and_validate(base_url=api_server, timeout=60)


@pytest.mark.parametrize("method, path", [
    ("POST", "/webhooks/rest/webhook?stream="),
    ("GET", "/conversations/fuzz-known/tracker?include_events="),
])
def test_blank_query_flags_are_rejected(api_server, method, path):
    r = httpx.request(method, f"{api_server}{path}", json={"sender": "fuzz-known", "message": "hello"}, timeout=60)
    assert r.status_code == 400, (r.status_code, r.text[:200])


# -- guards the fuzzer does not reach -------------------------------------------------------------

@pytest.fixture(scope="module")
def limited_server(agent):
    from bot.stores import InMemoryTrackerStore

    with served(agent_with_stores(agent, InMemoryTrackerStore()), {"rest": None},
                rate_limit="3/60", token="t0ken") as url:
        yield url


def test_model_parse_is_rate_limited_per_client_with_retry_after(limited_server):
    with httpx.Client(base_url=limited_server, timeout=30) as c:
        statuses = [c.post("/model/parse?token=t0ken", json={"text": "back pain"}).status_code for _ in range(4)]
        r = c.post("/model/parse?token=t0ken", json={"text": "back pain"})
    assert statuses[:3] == [200, 200, 200] and statuses[3] == 429
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
    assert r.json()["reason"] == "RateLimited" and r.json()["retry_after"] >= 1


def test_rate_limit_counts_the_client_address_not_only_the_sender_id(limited_server):
    """Rotating sender ids does not escape the limit (the per-address key still counts)."""
    with httpx.Client(base_url=limited_server, timeout=30) as c:
        statuses = [c.post("/webhooks/rest/webhook", json={"sender": f"rot-{i}", "message": "hello"}).status_code
                    for i in range(5)]
    assert 429 in statuses


def test_error_answers_and_pages_carry_security_headers(limited_server):
    with httpx.Client(base_url=limited_server, timeout=30) as c:
        answers = [c.get("/no/such/page"), c.get("/status"), c.post("/model/parse?token=t0ken", content=b"{"),
                   c.get("/"), c.get("/widget/frame"), c.get("/openapi.json")]
    for r in answers:
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["referrer-policy"] == "no-referrer", r.url
        csp = r.headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, (r.url, csp)
        if r.headers.get("content-type", "").startswith("text/html"):
            assert "script-src 'self'" in csp and "default-src 'none'" in csp
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text), f"inline script on {r.url}"
        else:
            assert "default-src 'none'" in csp


def test_bot_run_enables_the_rate_limit(project_template, tmp_path, monkeypatch):  # noqa: F811
    """`bot run --rate-limit COUNT/SECONDS` (or BACKLINE_RATE_LIMIT) turns the limiter on in a
    real deployment; it is off by default."""
    from bot.cli import build_parser

    run = build_parser()._subparsers._group_actions[0].choices["run"]  # noqa: SLF001
    assert "--rate-limit" in {opt for action in run._actions for opt in action.option_strings}  # noqa: SLF001
    monkeypatch.setenv("BACKLINE_RATE_LIMIT", "3/60")
    server = BotServer(make_project(project_template, tmp_path, {"tracker_store": {"type": "memory"}}),
                       tmp_path, "ratelimit").start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            statuses = [c.post("/webhooks/rest/webhook", json={"sender": f"r-{i}", "message": "hello"}).status_code
                        for i in range(4)]
            last = c.post("/model/parse", json={"text": "hello"})
    finally:
        server.stop()
    assert statuses[:3] == [200, 200, 200] and statuses[3] == 429, statuses
    assert last.status_code == 429 and int(last.headers["retry-after"]) >= 1


@pytest.mark.parametrize("path, body", [
    ("/model/parse", b'{"text": "\\ud800 back pain"}'),
    ("/webhooks/rest/webhook", b'{"sender": "sur-1", "message": "my back \\udfff hurts"}'),
])
def test_lone_surrogate_escapes_are_a_4xx_or_answered_not_a_500(api_server, path, body):
    r = httpx.post(f"{api_server}{path}", content=body, headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code < 500, r.text


def _strict_json(text: str):
    def reject(constant: str):
        raise ValueError(f"{constant} is not JSON (RFC 8259)")
    return __import__("json").loads(text, parse_constant=reject)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_json_numbers_are_rejected_or_never_served_back(api_server, value):
    sender = f"nan-{value.strip('-')}"
    body = f'{{"sender": "{sender}", "message": "hello", "metadata": {{"x": {value}}}}}'.encode()
    r = httpx.post(f"{api_server}/webhooks/rest/webhook", content=body,
                   headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code < 500, r.text
    if r.status_code == 200:
        tracker = httpx.get(f"{api_server}/conversations/{sender}/tracker", timeout=60)
        _strict_json(tracker.text)  # what a browser's JSON.parse or a strict client accepts
