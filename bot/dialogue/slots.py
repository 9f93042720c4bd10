"""Slot filling from the latest user message, by the domain's slot mappings (Rasa 3.x rules)."""

from __future__ import annotations

from typing import Any

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


def _intent_allowed(mapping: dict[str, Any], intent: str | None) -> bool:
    wanted = mapping.get("intent")
    if wanted:
        wanted = [wanted] if isinstance(wanted, str) else wanted
        if intent not in wanted:
            return False
    blocked = mapping.get("not_intent")
    if blocked:
        blocked = [blocked] if isinstance(blocked, str) else blocked
        if intent in blocked:
            return False
    return True


def _value_from_mapping(slot: Slot, mapping: dict[str, Any], tracker: Tracker) -> Any:
    message = tracker.latest_message or {}
    intent = ((message.get("intent") or {}).get("name"))
    kind = mapping.get("type")
    if kind == "custom" or not _conditions_hold(mapping, tracker) or not _intent_allowed(mapping, intent):
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
            value = _value_from_mapping(slot, mapping, tracker)
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
