"""The Agent: one loaded project (model, policies, actions, safety, stores) that channels talk to."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from bot.actions.runner import create_runner
from bot.dialogue.domain import fill
from bot.dialogue.policies import build_policies
from bot.dialogue.tracker import Tracker
from bot.model import load_or_train
from bot.processor import Processor, UserMessage
from bot.project import Project, load_project
from bot.safety.decide import SafetyLayer
from bot.safety.detector import DangerDetector
from bot.safety.guard import OutputGuard

__all__ = ["Agent", "UserMessage"]
log = logging.getLogger(__name__)

STORE_DOWN_TEXT = ("Sorry, I can't reach my conversation storage right now, so I couldn't take that in. "
                   "Please try again in a moment. If your back is getting worse, contact a healthcare provider, "
                   "or call {emergency_number} in an emergency.")


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
        """Process one user message under the conversation's lock; returns the bot's messages."""
        from bot.stores import StoreUnavailable

        try:
            async with self.lock_store.lock(message.sender_id):
                tracker = Tracker(message.sender_id, self.project.domain,
                                  await self.tracker_store.load(message.sender_id))
                replies = await self.processor.handle(tracker, message)
                await self.tracker_store.append(message.sender_id, tracker.new_events)  # all or nothing
                return replies
        except StoreUnavailable as exc:
            log.error("conversation store unavailable; the turn was not saved: %s", exc)
            return [{"text": self._fill(STORE_DOWN_TEXT)}]

    async def start_conversation(self, sender_id: str, input_channel: str = "rest") -> list[dict[str, Any]]:
        """The conversation's opening messages (disclaimer) when it is new; [] when it is running."""
        from bot.stores import StoreUnavailable

        try:
            async with self.lock_store.lock(sender_id):
                tracker = Tracker(sender_id, self.project.domain, await self.tracker_store.load(sender_id))
                replies = await self.processor.start(tracker)
                await self.tracker_store.append(sender_id, tracker.new_events)
                return replies
        except StoreUnavailable as exc:
            log.error("conversation store unavailable: %s", exc)
            return [{"text": self._fill(STORE_DOWN_TEXT)}]

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

    async def delete_conversation(self, sender_id: str) -> bool:
        async with self.lock_store.lock(sender_id):
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
