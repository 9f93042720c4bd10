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


def _entity_matches(entity: dict[str, Any], mapping: dict[str, Any]) -> bool:
    """The entity a from_entity mapping names, with its `role:` and `group:` when it gives them."""
    if entity.get("entity") != mapping["entity"]:
        return False
    if "role" in mapping and entity.get("role") != mapping["role"]:
        return False
    return "group" not in mapping or entity.get("group") == mapping["group"]


def _from_entity(slot: Slot, mapping: dict[str, Any], tracker: Tracker, message: dict[str, Any],
                 intent: str | None) -> Any:
    values = [e.get("value") for e in message.get("entities") or [] if _entity_matches(e, mapping)]
    if not values:
        return None
    return list(dict.fromkeys(values)) if slot.type == "list" else values[0]


def _from_intent(slot: Slot, mapping: dict[str, Any], tracker: Tracker, message: dict[str, Any],
                 intent: str | None) -> Any:
    if intent and _intent_allowed({"intent": mapping.get("intent")}, intent):
        return mapping.get("value")
    return None


def _from_text(slot: Slot, mapping: dict[str, Any], tracker: Tracker, message: dict[str, Any],
               intent: str | None) -> Any:
    return message.get("text")


def _from_trigger_intent(slot: Slot, mapping: dict[str, Any], tracker: Tracker, message: dict[str, Any],
                         intent: str | None) -> Any:
    return mapping.get("value") if tracker.active_loop is None else None


# Mapping type -> the value it takes from the latest message (`custom`: set by an action instead).
_EXTRACTORS = {
    "from_entity": _from_entity,
    "from_intent": _from_intent,
    "from_text": _from_text,
    "from_trigger_intent": _from_trigger_intent,
}


def _value_from_mapping(slot: Slot, mapping: dict[str, Any], tracker: Tracker, ignored: Sequence[str]) -> Any:
    message = tracker.latest_message or {}
    intent = ((message.get("intent") or {}).get("name"))
    extractor = _EXTRACTORS.get(mapping.get("type"))
    if extractor is None or not _conditions_hold(mapping, tracker) or not _intent_allowed(mapping, intent, ignored):
        return None
    return extractor(slot, mapping, tracker, message, intent)


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
