"""Custom actions run the same in process (rasa-sdk ActionExecutor) and over HTTP against the
real rasa-sdk action server (`python -m rasa_sdk`), with Rasa's webhook payload."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import pytest

from bot.actions.runner import ActionFailed, HttpRunner, InProcessRunner, action_call
from bot.agent import Agent, UserMessage
from bot.dialogue import tracker as ev
from bot.dialogue.tracker import Tracker
from bot.stores import InMemoryLockStore, InMemoryTrackerStore
from tests.helpers import ROOT
from tests.servers import free_port


@pytest.fixture(scope="module")
def action_server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()[-2000:])
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("action server did not start")
    yield f"http://127.0.0.1:{port}/webhook"
    proc.terminate()
    proc.wait(10)


def _tracker(project) -> dict:
    t = Tracker("runner-test", project.domain)
    parse = {"intent": {"name": "report_symptom", "confidence": 1.0}, "entities": [], "text": "my back hurts"}
    for event in (ev.action_executed("action_listen"), ev.user_uttered("my back hurts after lifting", parse),
                  ev.slot_set("body_part", "lower back"), ev.slot_set("duration", "3 days"),
                  ev.slot_set("severity", "5"), ev.slot_set("trigger", "lifting a box"),
                  ev.slot_set("triage_level", "routine")):
        t.add(event)
    return t.as_dict("ALL")


def test_action_call_payload_keys(project):
    call = action_call("action_x", _tracker(project), project.domain.as_dict())
    assert set(call) == {"next_action", "sender_id", "tracker", "version", "domain"}
    assert set(call["tracker"]) >= {"sender_id", "slots", "latest_message", "events", "active_loop",
                                    "latest_action_name", "followup_action", "paused"}


def test_in_process_and_http_give_the_same_result(project, action_server, loop):
    tracker, domain = _tracker(project), project.domain.as_dict()
    local = loop.run_until_complete(InProcessRunner(ROOT).run("action_triage_result", tracker, domain))
    http_runner = HttpRunner(action_server, timeout=10)
    try:
        remote = loop.run_until_complete(http_runner.run("action_triage_result", tracker, domain))
    finally:
        loop.run_until_complete(http_runner.close())
    assert [e for e in local.events if e["event"] == "slot"] == [e for e in remote.events if e["event"] == "slot"]
    assert [r.get("text") for r in local.responses] == [r.get("text") for r in remote.responses]
    assert any(e.get("name") == "conditions" for e in local.events)


def test_unknown_action_over_http_fails_cleanly(project, action_server, loop):
    runner = HttpRunner(action_server, timeout=5)
    try:
        with pytest.raises(ActionFailed):
            loop.run_until_complete(runner.run("action_does_not_exist", _tracker(project), project.domain.as_dict()))
    finally:
        loop.run_until_complete(runner.close())


def _http_agent(project, url: str, timeout: float = 5.0) -> Agent:
    project.endpoints = {**project.endpoints, "action_endpoint": {"url": url, "timeout": timeout}}
    return Agent.load(ROOT, project=project, tracker_store=InMemoryTrackerStore(), lock_store=InMemoryLockStore())


def _symptom_conversation(agent: Agent, loop) -> list[str]:
    texts = []
    for text in ["hi", "my lower back seized up after lifting a box", "none of these", "3 days", "5", "none of these",
                 "/request_summary"]:
        replies = loop.run_until_complete(agent.handle_message(UserMessage(text, "conv", input_channel="test")))
        texts += [r.get("text", "") for r in replies]
    return texts


def test_full_conversation_over_the_action_server(action_server, loop):
    from bot.project import load_project

    local = Agent.load(ROOT, tracker_store=InMemoryTrackerStore(), lock_store=InMemoryLockStore())
    remote = _http_agent(load_project(ROOT), action_server)
    try:
        local_texts = _symptom_conversation(local, loop)
        remote_texts = _symptom_conversation(remote, loop)
    finally:
        loop.run_until_complete(remote.close())
    assert remote_texts == local_texts
    assert any("reference article links" in t for t in remote_texts)


def test_action_server_down_gives_a_polite_reply_and_records_the_turn(loop):
    from bot.project import load_project

    agent = _http_agent(load_project(ROOT), f"http://127.0.0.1:{free_port()}/webhook", timeout=2)
    try:
        start = time.perf_counter()
        replies = loop.run_until_complete(agent.handle_message(UserMessage("what can I do for my sore back", "down")))
        assert time.perf_counter() - start < 10
        assert any("went wrong on my side" in r.get("text", "") for r in replies)
        tracker = loop.run_until_complete(agent.tracker("down"))
        assert any(e["event"] == "user" for e in tracker.events)
    finally:
        loop.run_until_complete(agent.close())
