"""Write docs/widget.png: the chat widget mid-conversation, for the README.

    .venv/bin/python tests/browser/screenshot.py [--out docs/widget.png]

Starts the real server on a loopback port (throwaway SQLite store), holds a short symptom
conversation in Debian chromium and saves a screenshot.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from bot.server import create_app  # noqa: E402
from tests.servers import ServerLoop  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]


def wait_reply(page, before: int) -> None:
    page.wait_for_function("n => document.querySelectorAll('.message.bot').length > n"
                           " && document.getElementById('typing').hidden", arg=before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "widget.png"))
    parser.add_argument("--width", type=int, default=420)
    parser.add_argument("--height", type=int, default=820)
    args = parser.parse_args()

    from bot.agent import Agent
    from bot.stores import create_tracker_store

    with tempfile.TemporaryDirectory() as tmp:
        store = create_tracker_store({"type": "sql", "dialect": "sqlite",
                                      "db": str(Path(tmp) / "conversations.db")}, Path(tmp))
        agent = Agent.load(ROOT, tracker_store=store)
        loop = ServerLoop()
        try:
            url = loop.start(create_app(agent, {"rest": None}))
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": args.width, "height": args.height},
                                        device_scale_factor=1)
                page.goto(url + "/")
                wait_reply(page, 0)
                for step in ("My back hurts", "Lower back", "since last week", "6", "lifting"):
                    before = page.locator(".message.bot").count()
                    buttons = page.locator(".choices").last.get_by_role("button", name=step)
                    if page.locator(".choices").count() and buttons.count():
                        buttons.first.click()
                    else:
                        page.fill("#message", step)
                        page.press("#message", "Enter")
                    wait_reply(page, before)
                page.locator("#message").focus()
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.out)
                browser.close()
        finally:
            try:
                loop.run(agent.close())
            finally:
                loop.stop()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
