"""The domain: intents, entities, slots, responses, forms and actions of a Rasa 3.x domain.yml."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.yamlio import ProjectError, line_of, plain

SLOT_TYPES = {"text", "bool", "categorical", "float", "list", "any"}
BUILTIN_ACTIONS = (
    "action_listen",
    "action_restart",
    "action_session_start",
    "action_default_fallback",
    "action_deactivate_loop",
    "action_back",
    "action_two_stage_fallback",
    "action_unlikely_intent",
    "action_extract_slots",
    "action_safety_alert",
)
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Slot:
    name: str
    type: str
    initial_value: Any = None
    values: list[str] = field(default_factory=list)
    mappings: list[dict[str, Any]] = field(default_factory=list)
    influence_conversation: bool = True

    def coerce(self, value: Any) -> Any:
        """Bring a value set from outside (entity text, JSON payload) into this slot's type."""
        if value is None:
            return None
        if self.type == "list" and not isinstance(value, list):
            return [value]
        if self.type == "bool" and isinstance(value, str):
            return value.strip().lower() in {"true", "yes", "1"}
        return value


@dataclass
class Form:
    name: str
    required_slots: list[str]
    ignored_intents: list[str] = field(default_factory=list)


@dataclass
class Domain:
    path: Path
    raw: dict[str, Any]
    intents: list[str]
    entities: list[str]
    slots: dict[str, Slot]
    responses: dict[str, list[dict[str, Any]]]
    forms: dict[str, Form]
    actions: list[str]
    session_expiration_minutes: float = 60.0
    carry_over_slots: bool = False
    _as_dict: dict[str, Any] | None = None
    _extra_responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, data: Any, path: Path) -> "Domain":
        if not isinstance(data, dict):
            raise ProjectError(path, 1, "the domain must be a mapping with intents, slots, responses, ...")
        intents = [_intent_name(i) for i in data.get("intents") or []]
        entities = [_intent_name(e) for e in data.get("entities") or []]
        slots = _parse_slots(data, path)
        responses = parse_responses(data.get("responses"), path)
        forms = _parse_forms(data.get("forms"))
        actions = [_intent_name(a) for a in (data.get("actions") or [])]  # `- name` or `- name: {send_domain: ..}`
        session = data.get("session_config") or {}
        return cls(
            path=path,
            raw=data,
            intents=intents,
            entities=entities,
            slots=slots,
            responses=responses,
            forms=forms,
            actions=actions,
            session_expiration_minutes=float(session.get("session_expiration_time", 60) or 0),
            carry_over_slots=bool(session.get("carry_over_slots_to_new_session", False)),
        )

    def add_responses(self, responses: dict[str, list[dict[str, Any]]], path: Path, where: Any) -> None:
        """Responses from a data file's `responses:` (Rasa 3 allows them there, e.g. for retrieval
        intents): they join the domain's; one name defined twice is an error."""
        for name in responses:
            if name in self.responses:
                raise ProjectError(path, line_of(where, name), f"response `{name}` is also defined in "
                                   f"{self.path.name}; keep one of the two")
        self.responses.update(responses)
        self._extra_responses.update(responses)
        self._as_dict = None

    # -- names -------------------------------------------------------------------------------

    @property
    def action_names(self) -> list[str]:
        names = list(BUILTIN_ACTIONS) + self.actions + list(self.forms)
        names += [r for r in self.responses if "/" not in r]
        return list(dict.fromkeys(names))

    def is_response(self, action: str) -> bool:
        return action in self.responses or (action.startswith("utter_") and self.retrieval_responses(action))

    def retrieval_responses(self, action: str) -> list[str]:
        prefix = action + "/"
        return [r for r in self.responses if r.startswith(prefix)]

    def initial_slots(self) -> dict[str, Any]:
        return {name: _copy(slot.initial_value) for name, slot in self.slots.items()}

    # -- responses ---------------------------------------------------------------------------

    def render(self, response: str, values: dict[str, Any], rng: random.Random | None = None) -> list[dict[str, Any]]:
        """One bot message (Rasa's shape) from a response name, with {placeholders} filled in."""
        variations = applicable_variations(self.responses.get(response) or [], values)
        if not variations:
            return []
        choice = (rng or random).choice(variations) if len(variations) > 1 else variations[0]
        message: dict[str, Any] = {}
        for key in ("text", "image", "custom", "attachment", "buttons", "quick_replies"):
            if choice.get(key) is not None:
                message[key] = fill(choice[key], values)
        if "quick_replies" in message and "buttons" not in message:
            message["buttons"] = message.pop("quick_replies")
        message["response"] = response
        return [message]

    def as_dict(self) -> dict[str, Any]:
        """The domain as rasa-sdk and action servers receive it (plain data, non-empty sections)."""
        if self._as_dict is None:
            raw = plain(self.raw)
            raw.setdefault("version", "3.1")
            if self._extra_responses:
                raw["responses"] = {**(raw.get("responses") or {}), **self._extra_responses}
            self._as_dict = {k: v for k, v in raw.items() if v not in (None, [], {})}
        return self._as_dict


def parse_responses(section: Any, path: Path) -> dict[str, list[dict[str, Any]]]:
    """A `responses:` section (domain or data file): name -> its variations, each checked."""
    responses = {}
    for name, variations in (section or {}).items():
        if not isinstance(variations, list) or not all(isinstance(v, dict) for v in variations):
            raise ProjectError(path, line_of(section, name),
                               f"response `{name}` must be a list of variations like `- text: ...`")
        for variation in variations:
            condition = variation.get("condition")
            if condition is not None and not (isinstance(condition, list) and all(
                    isinstance(c, dict) and c.get("type", "slot") == "slot" and c.get("name") for c in condition)):
                raise ProjectError(path, line_of(variation, "condition"), f"response `{name}`: `condition:` must be "
                                   "a list of `- type: slot` items with `name:` and `value:`")
        responses[name] = plain(variations)
    return responses


def applicable_variations(variations: list[dict[str, Any]], values: dict[str, Any]) -> list[dict[str, Any]]:
    """The variations Rasa would choose from: those whose `condition:` (slot values) holds come
    before those without a condition, and a variation without `channel:` before one for a
    channel (Backline does not pick by channel; one is sent when nothing else applies)."""
    conditional = [v for v in variations if v.get("condition")
                   and all(values.get(c["name"]) == c.get("value") for c in v["condition"])]
    default = [v for v in variations if not v.get("condition")]
    for group in (conditional, default):
        no_channel = [v for v in group if not v.get("channel")]
        if no_channel:
            return no_channel
    return conditional or default


def fill(template: Any, values: dict[str, Any]) -> Any:
    """Replace {name} with values[name] in strings (recursively); `{{`/`}}` become literal braces."""
    if isinstance(template, str):
        def sub(match: re.Match[str]) -> str:
            token = match.group(0)
            if token == "{{":
                return "{"
            if token == "}}":
                return "}"
            name = match.group(1)
            value = values.get(name)
            if value is None:
                return token
            if isinstance(value, list):
                return ", ".join(str(v) for v in value)
            return str(value)

        return _PLACEHOLDER.sub(sub, template)
    if isinstance(template, list):
        return [fill(t, values) for t in template]
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    return template


def _intent_name(item: Any) -> str:
    if isinstance(item, dict):
        return str(next(iter(item)))
    return str(item)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _parse_slots(data: dict[str, Any], path: Path) -> dict[str, Slot]:
    """The `slots:` section, plus Rasa's `requested_slot` when the domain does not declare it."""
    slots = {name: _parse_slot(name, spec, data["slots"], path) for name, spec in (data.get("slots") or {}).items()}
    if "requested_slot" not in slots:
        slots["requested_slot"] = Slot("requested_slot", "text", influence_conversation=False)
    return slots


def _parse_forms(section: Any) -> dict[str, Form]:
    forms = {}
    for name, spec in (section or {}).items():
        spec = spec or {}
        required = spec.get("required_slots") or []
        if isinstance(required, dict):  # Rasa 2 style mapping
            required = list(required)
        forms[name] = Form(name, list(required), _as_list(spec.get("ignored_intents")))
    return forms


def _parse_slot(name: str, spec: Any, parent: Any, path: Path) -> Slot:
    line = line_of(parent, name)
    if not isinstance(spec, dict):
        raise ProjectError(path, line, f"slot `{name}` must be a mapping with `type:` and `mappings:`")
    slot_type = spec.get("type")
    if slot_type not in SLOT_TYPES:
        raise ProjectError(path, line, f"slot `{name}` has type `{slot_type}`; use one of {', '.join(sorted(SLOT_TYPES))}")
    mappings = plain(spec.get("mappings") or [])
    for mapping in mappings:
        kind = mapping.get("type")
        if kind not in {"from_entity", "from_text", "from_intent", "from_trigger_intent", "custom"}:
            raise ProjectError(path, line, f"slot `{name}` has a mapping of unknown type `{kind}`")
        if kind == "from_entity" and not mapping.get("entity"):
            raise ProjectError(path, line, f"slot `{name}`: a from_entity mapping needs `entity:`")
    initial = spec.get("initial_value")
    if slot_type == "list" and initial is None:
        initial = []
    return Slot(
        name=name,
        type=slot_type,
        initial_value=plain(initial),
        values=[str(v) for v in spec.get("values") or []],
        mappings=mappings,
        influence_conversation=bool(spec.get("influence_conversation", slot_type != "any")),
    )
