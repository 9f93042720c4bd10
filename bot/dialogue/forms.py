"""A form, the way Rasa's FormAction runs it: on activation and on every answer, let
`validate_<form>` check what the user gave, then ask for the next empty required slot (or the slot
the validation asked for), through `action_ask_<form>_<slot>`, `action_ask_<slot>`,
`utter_ask_<form>_<slot>` or `utter_ask_<slot>`. A message that fills nothing is rejected, so the
rules can answer it.

The form runs actions and sends replies through its host (the processor), which owns the output
guard and the rule that only the safety layer writes safety slots."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from bot.actions.runner import ActionFailed, ActionRejected, ActionResult
from bot.dialogue import tracker as ev
from bot.dialogue.domain import Domain, Form
from bot.dialogue.loop import awaiting_first_action
from bot.dialogue.tracker import Tracker

log = logging.getLogger(__name__)
Out = list[dict[str, Any]]


class FormHost(Protocol):
    """What a form needs from the processor."""

    custom_actions: set[str]

    async def call_custom(self, tracker: Tracker, name: str,
                          extra_events: list[dict[str, Any]] | None = None) -> ActionResult: ...

    def apply_result(self, tracker: Tracker, result: ActionResult, out: Out) -> None: ...

    def utter(self, tracker: Tracker, response: str, out: Out, extra: dict[str, Any] | None = None) -> None: ...

    def owns_slot(self, name: str) -> bool:
        """True for the safety layer's slots: nothing for the form to validate."""
        ...


class FormLoop:
    def __init__(self, domain: Domain, host: FormHost) -> None:
        self.domain = domain
        self.host = host

    async def run(self, tracker: Tracker, form_name: str, out: Out, ask: bool = True) -> None:
        """Validate what the user gave, then ask the next empty slot (`ask=False`: only set it
        as the requested slot; a safety question goes first)."""
        form = self.domain.forms[form_name]
        activating = tracker.active_loop != form_name
        if not (awaiting_first_action(tracker) or activating):
            tracker.add(ev.action_executed(form_name))
            return await self.ask(tracker, form_name, self._next_slot(tracker, form), out, ask)
        candidates = {k: v for k, v in tracker.slots_set_since_user().items() if k in form.required_slots}
        result = await self._validate(tracker, form_name, candidates)
        if not activating and not self._filled(form, candidates, result):
            tracker.add(ev.action_rejected(form_name))
            return None
        tracker.add(ev.action_executed(form_name))
        if activating:
            tracker.add(ev.active_loop(form_name))
        requested = next((e for e in result.events if e.get("event") == "slot"
                          and e.get("name") == "requested_slot"), None)
        self.host.apply_result(tracker, ActionResult(
            [e for e in result.events if e is not requested], result.responses), out)
        slot = requested.get("value") if requested is not None else self._next_slot(tracker, form)
        return await self.ask(tracker, form_name, slot, out, ask)

    @staticmethod
    def _filled(form: Form, candidates: dict[str, Any], result: ActionResult) -> bool:
        """As Rasa's FormAction: any validated slot (even one reset to None to re-ask) counts."""
        return bool(candidates) or any(
            e.get("event") == "slot" and e.get("name") in form.required_slots for e in result.events)

    async def _validate(self, tracker: Tracker, form_name: str, candidates: dict[str, Any]) -> ActionResult:
        """`validate_<form>` on the slots this message set (as Rasa: on activation too, for
        dynamic required slots); nothing when the project has no such action or it fails."""
        validate = f"validate_{form_name}"
        if validate not in self.host.custom_actions:
            return ActionResult()
        # screening answers come from the safety layer: nothing for the form to validate
        extra = [ev.slot_set(k, v) for k, v in candidates.items() if not self.host.owns_slot(k)]
        try:
            return await self.host.call_custom(tracker, validate, extra)
        except (ActionFailed, ActionRejected) as exc:
            log.warning("%s failed: %s", validate, exc)
            return ActionResult()

    @staticmethod
    def _next_slot(tracker: Tracker, form: Form) -> str | None:
        return next((s for s in form.required_slots if tracker.slots.get(s) is None), None)

    async def ask(self, tracker: Tracker, form_name: str, slot: str | None, out: Out, utter: bool = True) -> None:
        """Request `slot` the way Rasa's form does: action_ask_<form>_<slot>, action_ask_<slot>,
        then the responses utter_ask_<form>_<slot>, utter_ask_<slot>. No slot left: the form ends."""
        if slot is None:
            tracker.add(ev.active_loop(None))
            tracker.add(ev.slot_set("requested_slot", None))
            return None
        tracker.add(ev.slot_set("requested_slot", slot))
        if not utter:
            return None
        for name in (f"action_ask_{form_name}_{slot}", f"action_ask_{slot}"):
            if name in self.host.custom_actions and name in self.domain.actions:
                try:       # run inside the form, as Rasa does: no ActionExecuted of its own
                    self.host.apply_result(tracker, await self.host.call_custom(tracker, name), out)
                    return None
                except (ActionFailed, ActionRejected) as exc:
                    log.warning("%s failed: %s; asking with the response", name, exc)
        specific = f"utter_ask_{form_name}_{slot}"
        self.host.utter(tracker, specific if specific in self.domain.responses else f"utter_ask_{slot}", out)
        return None
