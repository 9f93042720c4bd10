"""The Agent: one loaded project (model, policies, actions, safety, stores) that channels talk to."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from bot.actions.runner import create_runner
from bot.dialogue.domain import fill
from bot.dialogue.policies import build_policies
from bot.dialogue.tracker import Tracker
from bot.limits import message_error
from bot.model import load_or_train
from bot.privacy import sender_ref
from bot.processor import Processor, UserMessage
from bot.project import Project, load_project
from bot.safety.decide import SafetyLayer
from bot.safety.detector import DangerDetector
from bot.safety.guard import OutputGuard
from bot.stores.base import CorruptConversation, StaleTurn, StoreUnavailable

__all__ = ["Agent", "MessageTooLong", "UserMessage"]
log = logging.getLogger(__name__)

_SAFETY_NET = ("If your back is getting worse, contact a healthcare provider, "
               "or call {emergency_number} in an emergency.")
STORE_DOWN_TEXT = ("Sorry, I can't reach my conversation storage right now, so I couldn't take that in. "
                   "Please try again in a moment. " + _SAFETY_NET)
SLOW_TEXT = ("Sorry, that took me too long, so I couldn't take it in. Please try again in a moment. "
             + _SAFETY_NET)
CORRUPT_TEXT = ("Sorry, I can't read the earlier part of this conversation, so I can't go on with it here. "
                "Please start a new conversation. " + _SAFETY_NET)
RATE_LIMITED_TEXT = ("You're sending messages faster than I can take them in, so I didn't take that one in. "
                     "Please wait {wait} seconds and send it again. " + _SAFETY_NET)
# The longest one store write may take (SQLite's busy timeout, PostgreSQL's command timeout).
STORE_WRITE_SECONDS = 30.0


class MessageTooLong(ValueError):
    """The user message is over the length limit (bot/limits.py); nothing was processed."""


class Agent:
    def __init__(self, project: Project, nlu: Any, processor: Processor, tracker_store: Any, lock_store: Any,
                 model_path: Path, model_meta: dict[str, Any]) -> None:
        self.project = project
        self.nlu = nlu
        self.processor = processor
        self.tracker_store = tracker_store
        self.lock_store = lock_store
        self.model_path = model_path
        self.model_meta = model_meta
        self.settings = project.settings
        self.runner = processor.runner
        # A turn (waiting for the lock included) ends by `turn_timeout`; the lock outlives the
        # longest possible turn plus its write, so it never expires under a live turn. Should
        # one still outlive it (a stalled process), its write is fenced off by the store
        # (expected_seq) and the turn runs again on what was saved.
        self.turn_timeout = float(self.settings.get("turn_timeout", 45.0))
        self.lock_lifetime = self.turn_timeout + STORE_WRITE_SECONDS

    @classmethod
    def load(cls, root: str | Path = ".", *, tracker_store: Any = None, lock_store: Any = None,
             train_if_needed: bool = True, progress: bool | None = None, project: Project | None = None) -> "Agent":
        """Load the project; train the NLU model first when the data changed (and allowed).
        A progress bar shows while training when stderr is a terminal (progress=None)."""
        import sys

        from bot.stores import create_lock_store, create_tracker_store

        if progress is None:
            progress = sys.stderr.isatty()

        project = project or load_project(root)
        nlu, model_path, meta = load_or_train(project, train_if_needed=train_if_needed, progress=progress)
        settings = project.settings
        runner = create_runner(project.root, project.endpoints, float(settings.get("action_timeout", 10)))
        processor = Processor(
            domain=project.domain,
            nlu=nlu,
            policies=build_policies(project.policies, project.rules, project.stories),
            runner=runner,
            safety=SafetyLayer.load(project.knowledge_dir, DangerDetector.load(model_path)),
            guard=OutputGuard.load(project.knowledge_dir),
            settings=settings,
        )
        if tracker_store is None:
            tracker_store = create_tracker_store(project.endpoints.get("tracker_store"), project.root)
        if lock_store is None:
            lock_store = create_lock_store(project.endpoints.get("lock_store"))
        return cls(project, nlu, processor, tracker_store, lock_store, model_path, meta)

    # -- conversation API ------------------------------------------------------------------------

    async def handle_message(self, message: UserMessage) -> list[dict[str, Any]]:
        """Process one user message under the conversation's lock; returns the bot's messages.

        A turn that cannot run normally (store down, unreadable history, over time) saves
        nothing and gets a polite reply, after the safety screen's own reply to the message:
        danger signs are answered whatever else fails."""
        problem = message_error(message.text)
        if problem:
            raise MessageTooLong(problem)
        deadline = asyncio.get_running_loop().time() + self.turn_timeout
        for attempt in range(2):
            try:
                return await self._turn(message, deadline)
            except StaleTurn:
                if attempt == 0:
                    log.warning("conversation %s changed under a turn; running it again", sender_ref(message.sender_id))
                    continue
                log.error("conversation %s kept changing under a turn; it was not saved", sender_ref(message.sender_id))
                return await self._fallback(message, SLOW_TEXT)
            except CorruptConversation as exc:
                log.error("conversation %s cannot be loaded: %s", sender_ref(message.sender_id), exc)
                return await self._fallback(message, CORRUPT_TEXT)
            except StoreUnavailable as exc:
                log.error("conversation store unavailable; the turn was not saved: %s", exc)
                return await self._fallback(message, STORE_DOWN_TEXT)
            except TimeoutError:
                log.error("a turn of conversation %s took over %.0f s; it was not saved",
                          sender_ref(message.sender_id), self.turn_timeout)
                return await self._fallback(message, SLOW_TEXT)
        raise AssertionError("unreachable")

    async def _turn(self, message: UserMessage, deadline: float) -> list[dict[str, Any]]:
        sender = message.sender_id
        async with contextlib.AsyncExitStack() as held:
            async with asyncio.timeout_at(deadline):
                await held.enter_async_context(self.lock_store.lock(sender, timeout=self.lock_lifetime))
                tracker = await self._load(sender)
                read = tracker.seq
                replies = await self.processor.handle(tracker, message)
            # Outside the deadline: a write is never cancelled half-way (all or nothing).
            await self.tracker_store.append(sender, tracker.new_events, expected_seq=read,
                                            checkpoint=tracker.checkpoint())
            return replies

    async def _load(self, sender_id: str) -> Tracker:
        """The conversation from its checkpoint and the events after it (bounded work)."""
        window = await self.tracker_store.load_window(sender_id)
        return Tracker(sender_id, self.project.domain, window.events, checkpoint=window.checkpoint)

    async def rate_limited_reply(self, message: UserMessage, retry_after: int) -> list[dict[str, Any]]:
        """The answer to a message over the rate limit: the safety screen's reply (danger signs
        are answered even then), then how long to wait. Nothing is stored."""
        return await self._fallback(message, RATE_LIMITED_TEXT.replace("{wait}", str(retry_after)))

    async def _fallback(self, message: UserMessage, text: str) -> list[dict[str, Any]]:
        try:
            replies = await self.processor.safety_reply(message.sender_id, message.text)
        except Exception:  # noqa: BLE001 - the polite reply must still go out
            log.exception("safety reply failed")
            replies = []
        return replies + [{"text": self._fill(text)}]

    async def start_conversation(self, sender_id: str, input_channel: str = "rest") -> list[dict[str, Any]]:
        """The conversation's opening messages (disclaimer) when it is new; [] when it is running."""
        try:
            async with self.lock_store.lock(sender_id, timeout=self.lock_lifetime):
                tracker = await self._load(sender_id)
                read = tracker.seq
                replies = await self.processor.start(tracker)
                await self.tracker_store.append(sender_id, tracker.new_events, expected_seq=read,
                                                checkpoint=tracker.checkpoint())
                return replies
        except StoreUnavailable as exc:
            log.error("conversation store unavailable: %s", exc)
            return [{"text": self._fill(CORRUPT_TEXT if isinstance(exc, CorruptConversation) else STORE_DOWN_TEXT)}]

    async def parse(self, text: str, message_id: str | None = None) -> dict[str, Any]:
        return self.nlu.parse(text, message_id)

    async def tracker(self, sender_id: str) -> Tracker | None:
        events = await self.tracker_store.load(sender_id)
        if not events:
            return None
        return Tracker(sender_id, self.project.domain, events)

    async def tracker_dict(self, sender_id: str, include_events: str = "AFTER_RESTART") -> dict[str, Any] | None:
        tracker = await self.tracker(sender_id)
        return tracker.as_dict(include_events) if tracker else None

    async def events_after(self, sender_id: str, seq: int) -> tuple[dict[str, Any] | None, list[dict], int]:
        """(slots, events numbered above `seq`, number of the latest event); slots None when
        the conversation is unknown. Reads only the latest window when `seq` falls in it."""
        tracker = await self._load(sender_id)
        if not tracker.events:
            return None, [], 0
        if seq >= tracker.base_seq:
            events = tracker.events[seq - tracker.base_seq:]
        else:
            events, _ = await self.tracker_store.load_after(sender_id, seq)
        return dict(tracker.slots), events, tracker.seq

    async def delete_conversation(self, sender_id: str) -> bool:
        async with self.lock_store.lock(sender_id, timeout=self.lock_lifetime):
            return await self.tracker_store.delete(sender_id)

    async def purge_expired(self) -> int:
        """Erase conversations older than `conversation_ttl_days` (endpoints.yml tracker_store)."""
        days = (self.project.endpoints.get("tracker_store") or {}).get("conversation_ttl_days")
        if not days:
            return 0
        return await self.tracker_store.purge(time.time() - float(days) * 86400)

    def status(self) -> dict[str, Any]:
        return {"model_file": str(self.model_path), "model_id": self.model_meta.get("fingerprint"),
                "num_active_training_jobs": 0,
                "fingerprint": {"nlu": self.model_meta.get("fingerprint"),
                                "trained_at": self.model_meta.get("trained_at")}}

    async def close(self) -> None:
        await self.runner.close()
        await self.tracker_store.close()
        close_locks = getattr(self.lock_store, "close", None)
        if close_locks is not None:
            await close_locks()

    async def ping_stores(self) -> None:
        """Raise StoreUnavailable (URL with password masked) when a store cannot be reached."""
        await self.tracker_store.ping()
        ping_locks = getattr(self.lock_store, "ping", None)
        if ping_locks is not None:
            await ping_locks()

    def _fill(self, text: str) -> str:
        return fill(text, self.settings)
