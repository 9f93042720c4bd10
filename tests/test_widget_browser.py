"""The chat widget in a real browser (Debian chromium driven by Playwright) against a real
server on loopback and the real engine: conversation by buttons, emergency banner, summary
download, XSS payloads shown as text, 360 px screens, keyboard-only use, axe-core.

Needs /usr/bin/chromium and tests/browser/node_modules/axe-core (`bash .ci/browser.sh`).
Skipped without them, unless CI is set: then missing tools are a failure.
"""

from __future__ import annotations

import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

from tests.helpers import served_agent
from bot.server import create_app

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("BACKLINE_CHROMIUM", "/usr/bin/chromium")
AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
TIMEOUT_MS = 30_000


def _require(condition: bool, why: str) -> None:
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI is set, so this is an error; run `bash .ci/browser.sh`)")
    pytest.skip(f"{why}; install with `bash .ci/browser.sh`")


@pytest.fixture(scope="module")
def browser():
    _require(Path(CHROMIUM).exists() or bool(shutil.which(CHROMIUM)),
             f"no chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the test extra brings it
        _require(False, "the playwright Python package is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory):
    with served_agent(tmp_path_factory.mktemp("widget")) as (agent, loop):
        yield loop.start(create_app(agent, {"rest": None, "socketio": None}))


@pytest.fixture
def page(browser, base_url):
    """A fresh browser context (own localStorage) at 360 x 740, CSP enforced."""
    context = browser.new_context(viewport={"width": 360, "height": 740}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.dialogs = []
    page.problems = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    page.goto(base_url + "/")
    yield page
    context.close()


def bot_texts(page) -> list[str]:
    return page.locator(".message.bot .text").all_inner_texts()


def wait_for_bot_count(page, count: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('.message.bot').length >= n"
        " && document.getElementById('typing').hidden", arg=count)


def send_text(page, text: str) -> None:
    before = page.locator(".message.bot").count()
    page.fill("#message", text)
    page.press("#message", "Enter")
    wait_for_bot_count(page, before + 1)


def click_choice(page, title: str) -> None:
    before = page.locator(".message.bot").count()
    page.locator(".choices").last.get_by_role("button", name=title, exact=True).click()
    wait_for_bot_count(page, before + 1)


def latest_choices(page) -> list[str]:
    groups = page.locator(".choices")
    return groups.last.locator("button").all_inner_texts() if groups.count() else []


def opened(page) -> None:
    page.wait_for_selector(".message.bot")
    wait_for_bot_count(page, 1)


def hold_symptom_conversation(page) -> None:
    """Report a symptom with the buttons and answer every question of the symptom form."""
    opened(page)
    click_choice(page, "My back hurts")
    answers = {"duration": "about two weeks", "severity": "5", "trigger": "lifting a heavy box"}
    for _ in range(20):
        choices = latest_choices(page)
        last = bot_texts(page)[-1].lower()
        if "Lower back" in choices:
            click_choice(page, "Lower back")
        elif "None of these" in choices:            # the danger-sign checklists
            click_choice(page, "None of these")
        elif "No" in choices:
            click_choice(page, "No")
        elif "how long" in last:
            send_text(page, answers["duration"])
        elif "0 (no pain)" in last or "how bad" in last:
            send_text(page, answers["severity"])
        elif "start it" in last or "worse" in last and "lifting" in last:
            send_text(page, answers["trigger"])
        else:
            break


def test_opens_with_the_disclaimer(page):
    opened(page)
    first = bot_texts(page)[0]
    assert "not a doctor" in first and "911" in first
    assert page.locator("#log").get_attribute("aria-live") == "polite"
    assert not page.problems, page.problems  # no CSP violations, no script errors


def test_symptom_conversation_by_buttons_and_summary_download(page):
    hold_symptom_conversation(page)
    users = page.locator(".message.user .text").all_inner_texts()
    assert users[:3] == ["My back hurts", "None of these", "Lower back"]
    assert users.count("None of these") == 2, users  # both warning-sign checklists answered by button
    texts = " ".join(bot_texts(page)).lower()
    assert "healthcare provider" in texts, "the triage result refers to a provider"
    assert page.locator("#emergency-banner").is_hidden()
    assert {"Self-care ideas", "Sources and details", "Visit summary"} <= set(latest_choices(page))
    click_choice(page, "Visit summary")
    with page.expect_download() as download_info:
        page.locator(".download").last.click()
    download = download_info.value
    assert download.suggested_filename == "backline-visit-summary.txt"
    summary = Path(download.path()).read_text(encoding="utf-8")
    assert "Where: lower back" in summary and "Pain score: 5/10" in summary
    assert "Warning-sign questions:" in summary and "not a doctor" in summary
    assert not page.problems, page.problems


def test_summary_from_the_toolbar_and_by_typing(page):
    opened(page)
    send_text(page, "my lower back hurts after lifting")
    page.click("#summary-button")
    page.wait_for_selector(".download")
    assert page.locator(".message.user .text").last.inner_text() == "Visit summary"
    send_text(page, "summary")
    page.wait_for_function("() => document.querySelectorAll('.download').length === 2")
    with page.expect_download() as download_info:
        page.locator(".download").last.click()
    assert "lower back" in Path(download_info.value.path()).read_text(encoding="utf-8")


def test_danger_sign_shows_the_emergency_banner(page):
    opened(page)
    send_text(page, "I can't control my bladder")
    banner = page.locator("#emergency-banner")
    banner.wait_for(state="visible")
    assert "911" in banner.inner_text()
    page.wait_for_timeout(100)
    assert page.evaluate("""() => { const log = document.getElementById('log');
        return log.scrollHeight - log.scrollTop - log.clientHeight < 4; }"""), \
        "the reply under the banner stays in view"
    # the banner stays in view while the conversation scrolls on
    send_text(page, "what are the paraspinal muscles?")
    assert banner.is_visible() and banner.bounding_box()["y"] < 200


def test_reload_continues_the_conversation(page):
    opened(page)
    send_text(page, "my lower back hurts")
    count = page.locator(".message").count()
    session = page.evaluate("localStorage.getItem('backline.session_id')")
    page.reload()
    page.wait_for_function("n => document.querySelectorAll('.message').length >= n", arg=count)
    assert page.evaluate("localStorage.getItem('backline.session_id')") == session
    users = page.locator(".message.user .text").all_inner_texts()
    assert users == ["my lower back hurts"], "the widget's own /greet is not shown"
    assert "not a doctor" in bot_texts(page)[0]
    assert page.locator(".choices").count() <= 1, "only the latest quick replies stay"


def test_reload_does_not_bring_back_answered_quick_replies(page):
    opened(page)
    click_choice(page, "My back hurts")
    assert "None of these" in latest_choices(page)
    send_text(page, "none of these, it's my lower back")   # answered by typing: the buttons go away
    assert latest_choices(page) == []
    count = page.locator(".message").count()
    page.reload()
    page.wait_for_function("n => document.querySelectorAll('.message').length >= n", arg=count)
    assert latest_choices(page) == [], "quick replies a user turn already answered stay gone"
    send_text(page, "about two weeks")         # and the conversation goes on from there
    assert "0 (no pain) to 10" in bot_texts(page)[-1]


def test_message_input_is_16px_on_a_phone_so_ios_does_not_zoom(page):
    opened(page)
    size = page.evaluate("() => parseFloat(getComputedStyle(document.getElementById('message')).fontSize)")
    assert size >= 16, size


def test_works_under_a_reverse_proxy_sub_path(browser, base_url):
    """Served at https://site/backline/ by a reverse proxy: every URL the page, the widget and
    embed.js use must stay under the sub-path. The browser's router plays the proxy; anything
    outside /backline/ fails."""
    context = browser.new_context(viewport={"width": 360, "height": 740})
    outside: list[str] = []

    def refuse(route) -> None:
        outside.append(route.request.url)
        route.abort()

    def proxy(route) -> None:
        upstream = route.request.url.replace("/backline/", "/", 1)
        route.fulfill(response=route.fetch(url=upstream))

    context.route(f"{base_url}/**", refuse)
    context.route(f"{base_url}/backline/**", proxy)  # the later route is matched first
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{base_url}/backline/")
        opened(page)
        send_text(page, "my lower back hurts")
        assert "sorry your back" in " ".join(bot_texts(page)).lower()
        page.goto(f"{base_url}/backline/widget/frame")
        opened(page)
        assert outside == [], outside
        embed = page.evaluate("""async (src) => {
            const s = document.createElement('script'); s.src = src;
            await new Promise(r => { s.onload = r; document.body.appendChild(s); });
            return document.getElementById('backline-chat-frame').src; }""",
            f"{base_url}/backline/widget/embed.js")
        assert embed == f"{base_url}/backline/widget/frame"
    finally:
        context.close()


def test_typing_indicator_shows_while_waiting(page):
    opened(page)
    page.evaluate("""() => {
        const typing = document.getElementById('typing');
        window.typingSeen = false;
        new MutationObserver(() => { if (!typing.hidden) window.typingSeen = true; })
            .observe(typing, {attributes: true});
    }""")
    send_text(page, "hello")
    assert page.evaluate("() => window.typingSeen")
    assert page.locator("#typing").is_hidden()


def test_restart_starts_over(page):
    opened(page)
    send_text(page, "I can't control my bladder")
    page.locator("#emergency-banner").wait_for(state="visible")
    page.click("#restart-button")
    page.wait_for_function("() => document.querySelectorAll('.message.user').length === 0"
                           " && document.querySelectorAll('.choices').length === 1"
                           " && document.getElementById('typing').hidden")
    assert page.locator("#emergency-banner").is_hidden()
    assert "not a doctor" in " ".join(bot_texts(page)), "the disclaimer opens the new conversation"
    assert "My back hurts" in latest_choices(page)


@pytest.mark.parametrize("payload", [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    "\"><svg onload=alert(3)>",
])
def test_markup_is_shown_as_text(browser, base_url, payload):
    # CSP off, so only the widget's own rendering stands between the payload and the page
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(base_url + "/")
    opened(page)
    send_text(page, payload)
    page.wait_for_timeout(300)
    assert page.locator(".message.user .text").last.text_content() == payload
    assert page.locator("#log img, #log script, #log svg").count() == 0
    assert not dialogs
    context.close()


def test_fits_a_360px_screen(page):
    hold_symptom_conversation(page)
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 360, f"page is {overflow}px wide on a 360px screen"
    for locator in (page.locator("#send-button"), page.locator("#message"),
                    page.locator("#restart-button")):
        box = locator.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 360


def test_keyboard_only(page):
    opened(page)
    page.locator("body").focus()
    for _ in range(10):  # Tab until the message box has focus
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "message":
            break
    assert page.evaluate("document.activeElement.id") == "message"
    before = page.locator(".message.bot").count()
    page.keyboard.type("my lower back hurts")
    page.keyboard.press("Enter")
    wait_for_bot_count(page, before + 1)
    assert "my lower back hurts" in page.locator(".message.user .text").all_inner_texts()
    # a quick reply can be reached with Shift+Tab and chosen with Enter
    choices = page.locator(".choices button")
    if choices.count():
        for _ in range(12):
            page.keyboard.press("Shift+Tab")
            if page.evaluate("document.activeElement.classList.contains('choice')"):
                break
        title = page.evaluate("document.activeElement.textContent")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none", "focus is visible"
        before = page.locator(".message.bot").count()
        page.keyboard.press("Enter")
        wait_for_bot_count(page, before + 1)
        assert page.locator(".message.user .text").last.inner_text() == title


@pytest.fixture
def other_site(base_url):
    """A second origin on loopback serving a plain page that embeds the widget with one tag."""
    page = (f'<!doctype html><html lang="en"><head><title>Clinic</title></head><body>'
            f'<h1>Clinic</h1><script src="{base_url}/widget/embed.js"></script></body></html>')

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}/"
    server.shutdown()


def test_embed_script_adds_the_widget_to_another_site(browser, other_site):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(other_site)
    page.get_by_role("button", name="Chat about your back").click()
    frame = page.frame_locator("#backline-chat-frame")
    frame.locator(".message.bot").first.wait_for()
    assert "not a doctor" in frame.locator(".message.bot .text").first.inner_text()
    launcher = page.locator("#backline-chat-launcher")
    assert launcher.get_attribute("aria-expanded") == "true"
    launcher.click()
    assert page.locator("#backline-chat-frame").is_hidden()
    context.close()


def test_axe_finds_no_serious_violations(browser, base_url):
    _require(AXE.exists(), f"axe-core is not installed at {AXE}")
    context = browser.new_context(viewport={"width": 360, "height": 740}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(base_url + "/")
    opened(page)
    send_text(page, "I can't control my bladder")  # banner, buttons and both bubble kinds shown
    page.locator("#emergency-banner").wait_for(state="visible")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("""() => axe.run(document, {
        runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}
    })""")
    bad = [(v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3])
           for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, bad
    context.close()
