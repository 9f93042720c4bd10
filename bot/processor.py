"""The path of one message: parse -> safety screen -> slot filling -> policies pick actions until
action_listen -> actions run -> output guard on every bot text. Reads top to bottom in `handle`."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

from bot.actions.runner import ActionFailed, ActionRejected, ActionResult, HttpRunner, InProcessRunner
from bot.dialogue import tracker as ev
from bot.dialogue.domain import Domain, fill
from bot.dialogue.policies import MemoizationPolicy, Prediction, RulePolicy
from bot.dialogue.slots import extract_slots
from bot.dialogue.tracker import ACTION_LISTEN, Tracker
from bot.nlu.pipeline import NLUModel, clean_text
from bot.safety.decide import Decision, SafetyLayer
from bot.safety.guard import OutputGuard

log = logging.getLogger(__name__)
MAX_ACTIONS_PER_TURN = 10
RESTART_PAYLOADS = {"/restart"}
SAFETY_ACTION = "action_safety_alert"
ANSWER_BUTTONS = [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"},
                  {"title": "Not sure", "payload": "/skip"}]
SESSION_START_PAYLOAD = "/session_start"
MESSAGE_KEYS = ("text", "buttons", "image", "custom", "attachment", "elements")


@dataclass
class UserMessage:
    text: str
    sender_id: str = "default"
    metadata: dict[str, Any] | None = None
    input_channel: str = "rest"
    message_id: str | None = None


class Processor:
    def __init__(self, domain: Domain, nlu: NLUModel, policies: list[RulePolicy | MemoizationPolicy],
                 runner: InProcessRunner | HttpRunner | None, safety: SafetyLayer, guard: OutputGuard,
                 settings: dict[str, Any]) -> None:
        self.domain = domain
        self.nlu = nlu
        self.policies = policies
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
            action = self._predict(tracker)
            if action.action == ACTION_LISTEN:
                break
            if decision.question is not None and action.action in self.domain.forms:
                # the safety question goes first; the form's own question waits for its answer
                await self._run_form(tracker, action.action, out, ask=False)
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
                result = await self._call_custom(tracker, "action_session_start")
                tracker.add(ev.action_executed("action_session_start"))
                self._apply_result(tracker, result, out)
                started = any(e.get("event") == "session_started" for e in result.events)
            except (ActionFailed, ActionRejected):
                log.warning("custom action_session_start failed; using the built-in one")
        if not started:
            tracker.add(ev.action_executed("action_session_start"))
            tracker.add(ev.session_started())
            self._utter(tracker, "utter_disclaimer", out)
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
            self._utter(tracker, alert.response, out, alert.values)
        return decision

    async def _resume(self, tracker: Tracker, decision: Decision, out: list[dict[str, Any]]) -> None:
        """After an answer to a safety question: thank, then repeat the open form question."""
        if not decision.alerts:
            self._utter(tracker, "utter_safety_thanks", out)
        slot = tracker.slots.get("requested_slot")
        if tracker.active_loop and slot:
            await self._ask(tracker, tracker.active_loop, slot, out)

    def _fill_slots(self, tracker: Tracker) -> None:
        for name, value in extract_slots(self.domain, tracker).items():
            if not self.safety.owns(name):
                tracker.add(ev.slot_set(name, value))

    def _predict(self, tracker: Tracker) -> Prediction:
        """Followup, then the active loop (Rasa's happy path), then rules/stories, else listen."""
        if tracker.followup_action:
            name = tracker.followup_action
            tracker.followup_action = None
            return Prediction(name, "followup")
        loop = tracker.active_loop
        if loop:
            if tracker.last_rejected == loop:
                return self._policy_prediction(tracker) or Prediction("action_default_fallback", "fallback")
            if self._latest_real_action(tracker) == loop:
                return Prediction(ACTION_LISTEN, "loop")
            if self._awaiting_first_action(tracker):
                return Prediction(loop, "loop")
            return self._policy_prediction(tracker) or Prediction(loop, "loop")
        prediction = self._policy_prediction(tracker)
        if prediction:
            return prediction
        if self._awaiting_first_action(tracker):
            return Prediction("action_default_fallback", "fallback")
        return Prediction(ACTION_LISTEN, "fallback")

    @staticmethod
    def _latest_real_action(tracker: Tracker) -> str | None:
        """The last action of this turn that is not the safety layer's own (or action_listen)."""
        for event in reversed(tracker.events):
            if event.get("event") == "user":
                return None
            if event.get("event") == "action" and event.get("name") not in ev.TRANSPARENT_ACTIONS:
                return event.get("name")
        return None

    @staticmethod
    def _awaiting_first_action(tracker: Tracker) -> bool:
        for event in reversed(tracker.events):
            if event.get("event") == "user":
                return True
            if event.get("event") == "action" and event.get("name") not in ev.TRANSPARENT_ACTIONS:
                return False
        return False

    def _policy_prediction(self, tracker: Tracker) -> Prediction | None:
        for policy in self.policies:
            prediction = policy.predict(tracker)
            if prediction:
                return prediction
        return None

    # -- running actions -------------------------------------------------------------------------

    async def _run(self, tracker: Tracker, name: str, out: list[dict[str, Any]],
                   prediction: Prediction | None = None) -> str | None:
        policy = prediction.policy if prediction else None
        if name in self.domain.forms:
            return await self._run_form(tracker, name, out)
        if name == "action_restart":
            tracker.add(ev.action_executed(name, policy))
            self._utter(tracker, "utter_restart", out)
            tracker.add(ev.restarted())
            return None
        if name == "action_deactivate_loop":
            tracker.add(ev.action_executed(name, policy))
            tracker.add(ev.active_loop(None))
            tracker.add(ev.slot_set("requested_slot", None))
            return None
        if name == "action_default_fallback":
            tracker.add(ev.action_executed(name, policy))
            self._utter(tracker, "utter_default", out)
            return None
        if name == SAFETY_ACTION:
            tracker.add(ev.action_executed(name, policy))
            return None
        if name == "action_session_start":
            await self._start_session(tracker, out)
            return None
        if self.domain.is_response(name):
            tracker.add(ev.action_executed(name, policy))
            self._utter(tracker, self._response_name(tracker, name), out)
            return None
        tracker.add(ev.action_executed(name, policy))
        try:
            result = await self._call_custom(tracker, name)
        except (ActionFailed, ActionRejected) as exc:
            log.warning("action %s failed: %s", name, exc)
            self._utter(tracker, "utter_action_failed", out)
            return "stop"
        self._apply_result(tracker, result, out)
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

    async def _call_custom(self, tracker: Tracker, name: str, extra_events: list[dict[str, Any]] | None = None
                           ) -> ActionResult:
        state = tracker.as_dict("ALL")
        if extra_events:
            state["events"] = state["events"] + extra_events
        return await self.runner.run(name, state, self.domain.as_dict())

    def _apply_result(self, tracker: Tracker, result: ActionResult, out: list[dict[str, Any]]) -> None:
        for response in result.responses:
            self._emit_response(tracker, response, out)
        for event in result.events:
            if event.get("event") == "slot" and self.safety.owns(event.get("name")):
                # bot/safety is the only writer of the triage level, danger signs and screening answers
                if event.get("value") != tracker.slots.get(event.get("name")):
                    log.warning("action tried to set safety slot %s; ignored", event.get("name"))
                continue
            if event.get("timestamp") is None:  # rasa-sdk events carry null timestamps
                event = {**event, "timestamp": time.time()}
            tracker.add(event)

    async def _run_form(self, tracker: Tracker, form_name: str, out: list[dict[str, Any]], ask: bool = True
                        ) -> str | None:
        """A form (Rasa's FormAction): validate what the user gave, then ask the next empty slot
        (`ask=False`: only set it as the requested slot; a safety question goes first)."""
        form = self.domain.forms[form_name]
        activating = tracker.active_loop != form_name
        validate = f"validate_{form_name}"
        came_from_user = self._awaiting_first_action(tracker) or activating
        if came_from_user:
            candidates = {k: v for k, v in tracker.slots_set_since_user().items() if k in form.required_slots}
            result = ActionResult()
            if validate in self.custom_actions:    # as Rasa: on activation too (dynamic required slots)
                # screening answers come from the safety layer: nothing for the form to validate
                extra = [ev.slot_set(k, v) for k, v in candidates.items() if not self.safety.owns(k)]
                try:
                    result = await self._call_custom(tracker, validate, extra)
                except (ActionFailed, ActionRejected) as exc:
                    log.warning("%s failed: %s", validate, exc)
            # As Rasa's FormAction: any validated slot (even one reset to None to re-ask) counts.
            filled = candidates or any(
                e.get("event") == "slot" and e.get("name") in form.required_slots for e in result.events)
            if not activating and not filled:
                tracker.add(ev.action_rejected(form_name))
                return None
            tracker.add(ev.action_executed(form_name))
            if activating:
                tracker.add(ev.active_loop(form_name))
            requested_override = next((e for e in result.events if e.get("event") == "slot"
                                       and e.get("name") == "requested_slot"), None)
            self._apply_result(tracker, ActionResult(
                [e for e in result.events if e is not requested_override], result.responses), out)
            if requested_override is not None:
                return await self._ask(tracker, form_name, requested_override.get("value"), out, ask)
        else:
            tracker.add(ev.action_executed(form_name))
        missing = next((s for s in form.required_slots if tracker.slots.get(s) is None), None)
        return await self._ask(tracker, form_name, missing, out, ask)

    async def _ask(self, tracker: Tracker, form_name: str, slot: str | None, out: list[dict[str, Any]],
                   utter: bool = True) -> None:
        """Request `slot` the way Rasa's form does: action_ask_<form>_<slot>, action_ask_<slot>,
        then the responses utter_ask_<form>_<slot>, utter_ask_<slot>."""
        if slot is None:
            tracker.add(ev.active_loop(None))
            tracker.add(ev.slot_set("requested_slot", None))
            return None
        tracker.add(ev.slot_set("requested_slot", slot))
        if not utter:
            return None
        for name in (f"action_ask_{form_name}_{slot}", f"action_ask_{slot}"):
            if name in self.custom_actions and name in self.domain.actions:
                try:       # run inside the form, as Rasa does: no ActionExecuted of its own
                    self._apply_result(tracker, await self._call_custom(tracker, name), out)
                    return None
                except (ActionFailed, ActionRejected) as exc:
                    log.warning("%s failed: %s; asking with the response", name, exc)
        self._utter(tracker, f"utter_ask_{form_name}_{slot}" if f"utter_ask_{form_name}_{slot}" in self.domain.responses
                    else f"utter_ask_{slot}", out)
        return None

    # -- bot messages ---------------------------------------------------------------------------

    def _template_values(self, tracker: Tracker, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        values = {k: v for k, v in tracker.slots.items() if v is not None}
        values["emergency_number"] = self.settings.get("emergency_number", "911")
        values["crisis_line"] = self.settings.get("crisis_line", "988")
        if extra:
            values.update({k: v for k, v in extra.items() if v is not None})
        return values

    def _utter(self, tracker: Tracker, response: str, out: list[dict[str, Any]],
               extra: dict[str, Any] | None = None) -> None:
        for message in self.domain.render(response, self._template_values(tracker, extra)):
            self._send(tracker, message, out)

    def _emit_response(self, tracker: Tracker, response: dict[str, Any], out: list[dict[str, Any]]) -> None:
        name = response.get("response") or response.get("template")
        if name:
            extra = {k: v for k, v in response.items() if k not in MESSAGE_KEYS and k not in ("response", "template")}
            self._utter(tracker, name, out, extra)
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
