"""The path of one message: parse -> safety screen -> slot filling -> policies pick actions until
action_listen -> actions run -> output guard on every bot text. Reads top to bottom in `handle`."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.actions.runner import ActionFailed, ActionRejected, ActionResult
from bot.dialogue import tracker as ev
from bot.dialogue.domain import Domain, fill
from bot.dialogue.forms import FormLoop
from bot.dialogue.loop import LoopPolicy, Policy
from bot.dialogue.policies import Prediction
from bot.dialogue.slots import extract_slots
from bot.dialogue.tracker import ACTION_LISTEN, Tracker
from bot.nlu.pipeline import clean_text
from bot.safety.decide import Decision

log = logging.getLogger(__name__)
MAX_ACTIONS_PER_TURN = 10
RESTART_PAYLOADS = {"/restart"}
SAFETY_ACTION = "action_safety_alert"
ANSWER_BUTTONS = [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"},
                  {"title": "Not sure", "payload": "/skip"}]
SESSION_START_PAYLOAD = "/session_start"
MESSAGE_KEYS = ("text", "buttons", "image", "custom", "attachment", "elements")


# -- what the processor needs from its collaborators (the real ones: bot/nlu/pipeline.py NLUModel,
# bot/safety/decide.py SafetyLayer, bot/safety/guard.py OutputGuard, bot/actions/runner.py runners,
# bot/dialogue/policies.py policies) --------------------------------------------------------------

class Parser(Protocol):
    def parse(self, text: str, message_id: str | None = None) -> dict[str, Any]: ...


class Safety(Protocol):
    def decide(self, slots: Mapping[str, Any], text: str, intent: str | None = None,
               active_loop: str | None = None) -> Decision: ...

    def owns(self, slot: str) -> bool: ...


class Guard(Protocol):
    def check(self, text: str) -> tuple[str, list[str]]: ...


class Runner(Protocol):
    async def run(self, name: str, tracker: dict[str, Any], domain: dict[str, Any]) -> ActionResult: ...


@dataclass
class UserMessage:
    text: str
    sender_id: str = "default"
    metadata: dict[str, Any] | None = None
    input_channel: str = "rest"
    message_id: str | None = None


class Processor:
    def __init__(self, domain: Domain, nlu: Parser, policies: Sequence[Policy], runner: Runner | None,
                 safety: Safety, guard: Guard, settings: dict[str, Any]) -> None:
        self.domain = domain
        self.nlu = nlu
        self.policies = list(policies)
        self.loop = LoopPolicy(self.policies)
        self.forms = FormLoop(domain, self)
        self.runner = runner
        self.safety = safety
        self.guard = guard
        self.settings = settings
        self.custom_actions: set[str] = set(getattr(runner, "names", None) or domain.actions)
        # Bot texts repeat (domain responses): check each distinct text once.
        self._guard_check = functools.lru_cache(maxsize=4096)(guard.check)

    # -- the path of one message -----------------------------------------------------------------

    async def handle(self, tracker: Tracker, message: UserMessage) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        text = clean_text(message.text)
        if text.strip() in RESTART_PAYLOADS:
            await self._run(tracker, "action_restart", out)
            await self._start_session(tracker, out)
            tracker.add(ev.action_executed(ACTION_LISTEN))
            return out
        if self._session_expired(tracker) or text.strip() == SESSION_START_PAYLOAD:
            await self._start_session(tracker, out)
            if text.strip() == SESSION_START_PAYLOAD:
                return out
        parse_data = self.nlu.parse(text, message.message_id)
        tracker.add(ev.user_uttered(text, parse_data, input_channel=message.input_channel,
                                    message_id=message.message_id, metadata=message.metadata))
        decision = await self._safety(tracker, text, out)
        if decision.stop or decision.answered:
            if not decision.stop:
                if decision.question is not None:     # the answer raised another question
                    self._ask_safety(tracker, decision, out)
                else:
                    await self._resume(tracker, decision, out)
            tracker.add(ev.action_executed(ACTION_LISTEN))
            return out
        self._fill_slots(tracker)
        for _ in range(MAX_ACTIONS_PER_TURN):
            action = self.loop.predict(tracker)
            if action.action == ACTION_LISTEN:
                break
            if decision.question is not None and action.action in self.domain.forms:
                # the safety question goes first; the form's own question waits for its answer
                await self.forms.run(tracker, action.action, out, ask=False)
                break
            if await self._run(tracker, action.action, out, action) == "stop":
                break
        if decision.question is not None:
            self._ask_safety(tracker, decision, out)
        tracker.add(ev.action_executed(ACTION_LISTEN))
        return out

    def _ask_safety(self, tracker: Tracker, decision: Decision, out: list[dict[str, Any]]) -> None:
        text = self.domain_fill(tracker, decision.question.text)
        self._send(tracker, {"text": text, "buttons": ANSWER_BUTTONS}, out)

    async def safety_reply(self, sender_id: str, text: str) -> list[dict[str, Any]]:
        """The safety layer's reply to `text` alone (no dialogue, no custom action, nothing
        stored): for a turn that cannot run normally, so danger signs are still answered."""
        out: list[dict[str, Any]] = []
        tracker = Tracker(sender_id, self.domain)
        decision = await self._safety(tracker, clean_text(text), out)
        if decision.question is not None:
            self._ask_safety(tracker, decision, out)
        return out

    async def start(self, tracker: Tracker) -> list[dict[str, Any]]:
        """Open a conversation (disclaimer) without a user message, unless one is running."""
        out: list[dict[str, Any]] = []
        if self._session_expired(tracker):
            await self._start_session(tracker, out)
        return out

    # -- steps ---------------------------------------------------------------------------------

    def _session_expired(self, tracker: Tracker) -> bool:
        if not tracker.events:
            return True
        minutes = self.domain.session_expiration_minutes
        last = tracker.events[-1].get("timestamp") or 0
        return bool(minutes) and time.time() - last > minutes * 60

    async def _start_session(self, tracker: Tracker, out: list[dict[str, Any]]) -> None:
        """Session start with the disclaimer; built in when the custom action is missing or fails."""
        started = False
        if "action_session_start" in self.custom_actions:
            try:
                result = await self.call_custom(tracker, "action_session_start")
                tracker.add(ev.action_executed("action_session_start"))
                self.apply_result(tracker, result, out)
                started = any(e.get("event") == "session_started" for e in result.events)
            except (ActionFailed, ActionRejected):
                log.warning("custom action_session_start failed; using the built-in one")
        if not started:
            tracker.add(ev.action_executed("action_session_start"))
            tracker.add(ev.session_started())
            self.utter(tracker, "utter_disclaimer", out)
            tracker.add(ev.action_executed(ACTION_LISTEN))
        for name in ("emergency_number", "crisis_line"):  # the configured numbers, for actions too
            if name in self.domain.slots and tracker.slots.get(name) != self.settings.get(name):
                tracker.add(ev.slot_set(name, self.settings.get(name)))

    async def _safety(self, tracker: Tracker, text: str, out: list[dict[str, Any]]) -> Decision:
        """Screen every message for danger signs before any other dialogue logic (bot/safety
        decides; this only applies the decision and sends its alerts). The safety question, if
        any, is sent at the end of the turn."""
        decision = self.safety.decide(tracker.slots, text, tracker.latest_intent, tracker.active_loop)
        if decision.alerts or decision.question or decision.answered:
            tracker.add(ev.action_executed(SAFETY_ACTION, "SafetyScreen"))
        for event in decision.events:
            tracker.add({**event, "timestamp": time.time()})
        for alert in decision.alerts:
            self.utter(tracker, alert.response, out, alert.values)
        return decision

    async def _resume(self, tracker: Tracker, decision: Decision, out: list[dict[str, Any]]) -> None:
        """After an answer to a safety question: thank, then repeat the open form question."""
        if not decision.alerts:
            self.utter(tracker, "utter_safety_thanks", out)
        slot = tracker.slots.get("requested_slot")
        if tracker.active_loop and slot:
            await self.forms.ask(tracker, tracker.active_loop, slot, out)

    def _fill_slots(self, tracker: Tracker) -> None:
        for name, value in extract_slots(self.domain, tracker).items():
            if not self.safety.owns(name):
                tracker.add(ev.slot_set(name, value))

    # -- running actions -------------------------------------------------------------------------

    async def _run(self, tracker: Tracker, name: str, out: list[dict[str, Any]],
                   prediction: Prediction | None = None) -> str | None:
        policy = prediction.policy if prediction else None
        if name in self.domain.forms:
            await self.forms.run(tracker, name, out)
            return None
        if name == "action_restart":
            tracker.add(ev.action_executed(name, policy))
            self.utter(tracker, "utter_restart", out)
            tracker.add(ev.restarted())
            return None
        if name == "action_deactivate_loop":
            tracker.add(ev.action_executed(name, policy))
            tracker.add(ev.active_loop(None))
            tracker.add(ev.slot_set("requested_slot", None))
            return None
        if name == "action_default_fallback":
            tracker.add(ev.action_executed(name, policy))
            self.utter(tracker, "utter_default", out)
            return None
        if name == SAFETY_ACTION:
            tracker.add(ev.action_executed(name, policy))
            return None
        if name == "action_session_start":
            await self._start_session(tracker, out)
            return None
        if self.domain.is_response(name):
            tracker.add(ev.action_executed(name, policy))
            self.utter(tracker, self._response_name(tracker, name), out)
            return None
        tracker.add(ev.action_executed(name, policy))
        try:
            result = await self.call_custom(tracker, name)
        except (ActionFailed, ActionRejected) as exc:
            log.warning("action %s failed: %s", name, exc)
            self.utter(tracker, "utter_action_failed", out)
            return "stop"
        self.apply_result(tracker, result, out)
        return None

    def _response_name(self, tracker: Tracker, action: str) -> str:
        """`utter_faq` -> `utter_faq/<topic>` chosen by the response selector."""
        if action in self.domain.responses:
            return action
        base = action[len("utter_"):]
        selector = (tracker.latest_message or {}).get("response_selector") or {}
        key = ((selector.get(base) or {}).get("response") or {}).get("intent_response_key")
        name = f"utter_{key}" if key else ""
        return name if name in self.domain.responses else "utter_default"

    async def call_custom(self, tracker: Tracker, name: str, extra_events: list[dict[str, Any]] | None = None
                           ) -> ActionResult:
        state = tracker.as_dict("ALL")
        if extra_events:
            state["events"] = state["events"] + extra_events
        return await self.runner.run(name, state, self.domain.as_dict())

    def owns_slot(self, name: str) -> bool:
        """Only the safety layer writes its slots (the triage level, danger signs, answers)."""
        return self.safety.owns(name)

    def apply_result(self, tracker: Tracker, result: ActionResult, out: list[dict[str, Any]]) -> None:
        for response in result.responses:
            self._emit_response(tracker, response, out)
        for event in result.events:
            if event.get("event") == "slot" and self.owns_slot(event.get("name")):
                # bot/safety is the only writer of the triage level, danger signs and screening answers
                if event.get("value") != tracker.slots.get(event.get("name")):
                    log.warning("action tried to set safety slot %s; ignored", event.get("name"))
                continue
            if event.get("timestamp") is None:  # rasa-sdk events carry null timestamps
                event = {**event, "timestamp": time.time()}
            tracker.add(event)

    # -- bot messages ---------------------------------------------------------------------------

    def _template_values(self, tracker: Tracker, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        values = {k: v for k, v in tracker.slots.items() if v is not None}
        values["emergency_number"] = self.settings.get("emergency_number", "911")
        values["crisis_line"] = self.settings.get("crisis_line", "988")
        if extra:
            values.update({k: v for k, v in extra.items() if v is not None})
        return values

    def utter(self, tracker: Tracker, response: str, out: list[dict[str, Any]],
               extra: dict[str, Any] | None = None) -> None:
        for message in self.domain.render(response, self._template_values(tracker, extra)):
            self._send(tracker, message, out)

    def _emit_response(self, tracker: Tracker, response: dict[str, Any], out: list[dict[str, Any]]) -> None:
        name = response.get("response") or response.get("template")
        if name:
            extra = {k: v for k, v in response.items() if k not in MESSAGE_KEYS and k not in ("response", "template")}
            self.utter(tracker, name, out, extra)
            return
        message = {k: response[k] for k in MESSAGE_KEYS if response.get(k)}
        if "text" in message:
            message["text"] = self.domain_fill(tracker, message["text"])
        if message:
            self._send(tracker, message, out)

    def domain_fill(self, tracker: Tracker, text: str) -> str:
        return fill(text, self._template_values(tracker))

    def _send(self, tracker: Tracker, message: dict[str, Any], out: list[dict[str, Any]]) -> None:
        """Every bot text passes the output guard (never diagnose, no doses) before it leaves."""
        if message.get("text"):
            safe, violations = self._guard_check(message["text"])
            if violations:
                log.warning("output guard replaced a bot text (%s)", ", ".join(violations))
                message = {**message, "text": safe}
        tracker.add(ev.bot_uttered(message))
        out.append({k: message[k] for k in MESSAGE_KEYS if message.get(k) not in (None, [], {})})
