"""Terminal chat (`bot shell`): colours on a terminal, plain text when piped, buttons as numbers."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import textwrap
import uuid
from typing import Any, TextIO

RESET, BOT, USER, DIM, ALERT = "\033[0m", "\033[1;36m", "\033[1;32m", "\033[2m", "\033[1;31m"
CHOICES = re.compile(r"\d+(?:\s*(?:,|and|&|\s)\s*\d+)*")      # "2", "1,3", "1 and 4"
HELP = "Type a message. A number picks a button. /restart starts over, Ctrl-D (or /quit) quits."


class Console:
    def __init__(self, agent: Any, sender: str, out: TextIO, color: bool) -> None:
        self.agent = agent
        self.sender = sender
        self.out = out
        self.color = color
        self.buttons: list[dict[str, Any]] = []
        self.multiselect = False        # the latest choices allow several ("1,3")

    def _paint(self, code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if self.color else text

    def show(self, replies: list[dict[str, Any]]) -> None:
        self.buttons = []
        self.multiselect = False
        for reply in replies:
            text = reply.get("text")
            if text:
                alert = any(w in text for w in ("emergency department", "Crisis", "crisis", "right now"))
                prefix = self._paint(ALERT if alert else BOT, "Backline:")
                self.out.write(f"{prefix} {self._wrap(text)}\n")
            summary = (reply.get("custom") or {}).get("visit_summary")
            if summary and not text:
                self.out.write(self._paint(DIM, "(visit summary data attached)") + "\n")
            for button in reply.get("buttons") or []:
                self.buttons.append(button)
                self.out.write(self._paint(DIM, f"  {len(self.buttons)}. {button.get('title')}") + "\n")
            if (reply.get("custom") or {}).get("multiselect") and reply.get("buttons"):
                self.multiselect = True
                self.out.write(self._paint(DIM, "  (choose all that apply: type the numbers, like 1,3)") + "\n")
        self.out.flush()

    def _wrap(self, text: str) -> str:
        """Wrap at word boundaries on a terminal (indented under the name); as is when piped."""
        if not self.color:
            return text
        width = max(40, shutil.get_terminal_size((100, 24)).columns - 1)
        return "\n".join(textwrap.fill(part, width, initial_indent=" " * 10, subsequent_indent=" " * 10)[10:]
                         for part in text.split("\n"))

    def resolve(self, line: str) -> str:
        """A number picks a button's payload (several, like "1,3", where the choices allow it:
        their payloads joined with "; "); anything else is sent as typed."""
        stripped = line.strip()
        numbers = [int(n) for n in re.findall(r"\d+", stripped)] if CHOICES.fullmatch(stripped) else []
        if numbers and all(1 <= n <= len(self.buttons) for n in numbers) and (len(numbers) == 1 or self.multiselect):
            picked = [self.buttons[n - 1].get("payload") or self.buttons[n - 1].get("title") for n in dict.fromkeys(numbers)]
            return "; ".join(picked)
        return stripped

    async def send(self, text: str) -> None:
        from bot.agent import UserMessage
        from bot.limits import message_error

        problem = message_error(text)
        if problem:
            self.out.write(self._paint(ALERT, f"Backline: {problem}.") + "\n")
            self.out.flush()
            return
        replies = await self.agent.handle_message(UserMessage(text, self.sender, input_channel="cmdline"))
        self.show(replies)


def run_console(project: str, *, sender: str | None = None, color: bool = True,
                stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    from bot.agent import Agent

    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    interactive = stdin.isatty() and stdout.isatty()
    agent = Agent.load(project, progress=sys.stderr.isatty())
    console = Console(agent, sender or f"shell-{uuid.uuid4().hex[:8]}", stdout, color and stdout.isatty())

    async def loop() -> None:
        if interactive:
            stdout.write(console._paint(DIM, HELP) + "\n")
        console.show(await agent.start_conversation(console.sender, input_channel="cmdline"))
        while True:
            if interactive:
                stdout.write(console._paint(USER, "You: "))
                stdout.flush()
            line = await asyncio.get_running_loop().run_in_executor(None, stdin.readline)
            if not line:
                break
            text = console.resolve(line)
            if not text:
                continue
            if text in ("/quit", "/exit"):
                break
            if not interactive:
                stdout.write(f"You: {text}\n")
            await console.send(text)
        await agent.close()

    try:
        asyncio.run(loop())
    except KeyboardInterrupt:
        pass
    if interactive:
        stdout.write("\nBye. Take care of your back.\n")
    return 0
