"""Existing Rasa chat clients against `bot run`, in a real browser (Debian chromium via
Playwright), installed from the npm registry by .ci/browser.sh (tests/browser/package.json):

- rasa-webchat 1.x over socket.io, with the settings the README gives a site owner
  (initPayload "/greet", customData + `metadata_key: customData`, an exact CORS origin):
  greeting, a quick-reply click, an emergency message, a reload that keeps the conversation.
- @scalableminds/chatroom 0.12 over the REST channel: greeting, a button, an emergency message.

Each widget runs on its own host page, served from another origin than Backline (as on a
clinic's site), so CORS is what a real deployment needs. Skipped without chromium or the npm
packages, unless CI is set: then that is a failure.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.servers import free_port
from tests.helpers import copy_project
from tests.test_widget_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, _require

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
MODULES = ROOT / "tests" / "browser" / "node_modules"
WEBCHAT = MODULES / "rasa-webchat" / "lib" / "index.js"
CHATROOM = MODULES / "@scalableminds" / "chatroom" / "dist" / "Chatroom.js"
EMERGENCY = "I suddenly can't control my bladder and my back hurts"

WEBCHAT_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Clinic</title></head>
<body><h1>Clinic page</h1><div id="webchat"></div>
<script src="/rasa-webchat/lib/index.js"></script>
<script>
  WebChat.default({
    selector: "#webchat", initPayload: "/greet", customData: {language: "en", page: "clinic"},
    socketUrl: "%(backline)s", socketPath: "/socket.io/", title: "Backline",
    embedded: true, params: {storage: "local"}
  }, null);
</script></body></html>"""

CHATROOM_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Clinic</title>
<link rel="stylesheet" href="/@scalableminds/chatroom/dist/Chatroom.css"></head>
<body><div class="chat-container"></div>
<script src="/@scalableminds/chatroom/dist/Chatroom.js"></script>
<script>
  var chatroom = new window.Chatroom({host: "%(backline)s", title: "Backline",
    container: document.querySelector(".chat-container"), welcomeMessage: "Welcome"});
  chatroom.openChat();
</script></body></html>"""


@pytest.fixture(scope="module")
def browser():
    _require(Path(CHROMIUM).exists() or bool(shutil.which(CHROMIUM)), f"no chromium at {CHROMIUM}")
    _require(WEBCHAT.exists() and CHATROOM.exists(),
             "rasa-webchat / @scalableminds/chatroom are not in tests/browser/node_modules")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def host_site(tmp_path_factory: pytest.TempPathFactory):
    """The clinic's site: the host pages and the widgets' files, on its own origin."""
    site = tmp_path_factory.mktemp("clinic-site")
    (site / "rasa-webchat").symlink_to(MODULES / "rasa-webchat")
    (site / "@scalableminds").symlink_to(MODULES / "@scalableminds")
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield site, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def backline(tmp_path_factory: pytest.TempPathFactory, host_site):
    """`bot run` on a copy of the project, configured as the README tells a site owner:
    socketio `metadata_key: customData`, the clinic's exact origin in `cors_origins`."""
    _, site_url = host_site
    project = copy_project(tmp_path_factory.mktemp("backline-project"))
    credentials = yaml.safe_load((project / "credentials.yml").read_text()) or {}
    credentials["socketio"] = {**(credentials.get("socketio") or {}), "session_persistence": True,
                               "metadata_key": "customData"}
    credentials["rest"] = {"cors_origins": [site_url]}
    (project / "credentials.yml").write_text(yaml.safe_dump(credentials))
    (project / "endpoints.yml").write_text("tracker_store:\n  type: sql\n  dialect: sqlite\n"
                                           "  db: .bot/conversations.db\n")
    port = free_port()
    log = (project / "bot-run.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run", "--project", str(project),
                             "--port", str(port)], cwd=project, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"bot run did not start:\n{(project / 'bot-run.log').read_text()[-3000:]}")
        time.sleep(0.3)
    yield url
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _page(browser, site, site_url: str, name: str, html: str, backline: str):
    (site / name).write_text(html % {"backline": backline})
    context = browser.new_context(viewport={"width": 400, "height": 800})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.problems = []
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.goto(f"{site_url}/{name}")
    return context, page


def _wait_text(page, selector: str, fragment: str) -> None:
    page.wait_for_function(
        "([sel, frag]) => Array.from(document.querySelectorAll(sel))"
        ".some(e => e.innerText.toLowerCase().includes(frag.toLowerCase()))",
        arg=[selector, fragment])


def _tracker(backline: str, sender: str) -> dict:
    return httpx.get(f"{backline}/conversations/{sender}/tracker", timeout=30).json()


def test_rasa_webchat_over_socketio(browser, host_site, backline):
    site, site_url = host_site
    context, page = _page(browser, site, site_url, "webchat.html", WEBCHAT_PAGE, backline)
    try:
        bot = ".rw-response"
        _wait_text(page, bot, "not a doctor")            # initPayload /greet: disclaimer
        _wait_text(page, bot, "Tell me what your back is doing")
        page.locator(".rw-reply", has_text="My back hurts").first.click()
        _wait_text(page, bot, "sorry your back")          # the quick reply reached the engine
        _wait_text(page, ".rw-reply", "None of these")     # the form's first question: the checklist
        page.fill(".rw-new-message", EMERGENCY)
        page.press(".rw-new-message", "Enter")
        _wait_text(page, bot, "emergency department")    # the danger sign preempts the form
        shown_before = page.locator(bot).count()

        session_id = page.evaluate(
            "() => JSON.parse(localStorage.getItem('chat_session')).session_id")
        tracker = _tracker(backline, session_id)
        assert tracker["slots"]["triage_level"] == "emergency"
        users = [e for e in tracker["events"] if e["event"] == "user"]
        assert users[0]["metadata"] == {"language": "en", "page": "clinic"}, \
            "customData reaches the tracker (metadata_key: customData)"

        page.reload()                                     # same session, same conversation
        _wait_text(page, bot, "emergency department")
        assert page.locator(bot).count() >= shown_before
        page.fill(".rw-new-message", "thank you")
        page.press(".rw-new-message", "Enter")
        _wait_text(page, bot, "You're welcome")
        texts = [e["text"] for e in _tracker(backline, session_id)["events"] if e["event"] == "user"]
        assert texts[-1] == "thank you" and texts.count("/greet") == 1, texts
        assert not page.problems, page.problems
    finally:
        context.close()


def test_chatroom_over_rest(browser, host_site, backline):
    site, site_url = host_site
    context, page = _page(browser, site, site_url, "chatroom.html", CHATROOM_PAGE, backline)
    try:
        page.fill(".chat-container input[type=text]", "hello")
        page.press(".chat-container input[type=text]", "Enter")
        _wait_text(page, ".chats", "not a doctor")
        _wait_text(page, ".chats", "Tell me what your back is doing")
        page.locator(".chat-buttons button, .chat-buttons li, .chat-buttons span",
                     has_text="My back hurts").first.click()
        _wait_text(page, ".chats", "sorry your back")
        page.fill(".chat-container input[type=text]", EMERGENCY)
        page.press(".chat-container input[type=text]", "Enter")
        _wait_text(page, ".chats", "emergency department")
        assert not page.problems, page.problems
    finally:
        context.close()
