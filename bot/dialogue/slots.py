"""Slot filling from the latest user message, by the domain's slot mappings (Rasa 3.x rules)."""

from __future__ import annotations

from typing import Any, Sequence

from bot.dialogue.domain import Domain, Slot
from bot.dialogue.tracker import Tracker


def _conditions_hold(mapping: dict[str, Any], tracker: Tracker) -> bool:
    conditions = mapping.get("conditions")
    if not conditions:
        return True
    for cond in conditions:
        loop = cond.get("active_loop")
        if loop != tracker.active_loop:
            continue
        if "requested_slot" in cond and cond["requested_slot"] != tracker.requested_slot:
            continue
        return True
    return False


def _intent_allowed(mapping: dict[str, Any], intent: str | None, ignored: Sequence[str] = ()) -> bool:
    """`intent:` / `not_intent:` of the mapping; `ignored`: the active form's `ignored_intents`,
    which block the mapping unless it names the intent itself (as in Rasa)."""
    wanted = mapping.get("intent")
    if wanted:
        wanted = [wanted] if isinstance(wanted, str) else wanted
        if intent not in wanted:
            return False
    elif intent in ignored:
        return False
    blocked = mapping.get("not_intent")
    if blocked:
        blocked = [blocked] if isinstance(blocked, str) else blocked
        if intent in blocked:
            return False
    return True


def _ignored_intents(mapping: dict[str, Any], domain: Domain, tracker: Tracker) -> list[str]:
    """The active form's `ignored_intents`, for a mapping without conditions or with one for
    that form (Rasa's SlotMapping._get_active_loop_ignored_intents)."""
    form = domain.forms.get(tracker.active_loop or "")
    if form is None:
        return []
    conditions = mapping.get("conditions")
    if conditions and not any(c.get("active_loop") == form.name for c in conditions):
        return []
    return form.ignored_intents


def _value_from_mapping(slot: Slot, mapping: dict[str, Any], tracker: Tracker, ignored: Sequence[str]) -> Any:
    message = tracker.latest_message or {}
    intent = ((message.get("intent") or {}).get("name"))
    kind = mapping.get("type")
    if kind == "custom" or not _conditions_hold(mapping, tracker) or not _intent_allowed(mapping, intent, ignored):
        return None
    if kind == "from_entity":
        values = [e.get("value") for e in message.get("entities") or []
                  if e.get("entity") == mapping["entity"]
                  and ("role" not in mapping or e.get("role") == mapping["role"])
                  and ("group" not in mapping or e.get("group") == mapping["group"])]
        if not values:
            return None
        return list(dict.fromkeys(values)) if slot.type == "list" else values[0]
    if kind == "from_intent":
        return mapping.get("value") if intent and _intent_allowed({"intent": mapping.get("intent")}, intent) else None
    if kind == "from_text":
        return message.get("text")
    if kind == "from_trigger_intent":
        return mapping.get("value") if tracker.active_loop is None else None
    return None


def extract_slots(domain: Domain, tracker: Tracker) -> dict[str, Any]:
    """New slot values the latest message gives (only those that change something)."""
    updates: dict[str, Any] = {}
    for name, slot in domain.slots.items():
        for mapping in slot.mappings:
            value = _value_from_mapping(slot, mapping, tracker, _ignored_intents(mapping, domain, tracker))
            if value is None:
                continue
            value = slot.coerce(value)
            if slot.type == "list" and isinstance(tracker.slots.get(name), list):
                merged = list(dict.fromkeys([*tracker.slots[name], *value]))
                if merged != tracker.slots[name]:
                    updates[name] = merged
            elif value != tracker.slots.get(name):
                updates[name] = value
            break
    return updates
