"""`bot validate`: domain vs data consistency, each problem as `file:line: what (fix)`."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from bot.dialogue.domain import BUILTIN_ACTIONS
from bot.dialogue.stories import Story
from bot.nlu.pipeline import NLU_FALLBACK, parse_intent_payload
from bot.project import Project, load_project
from bot.yamlio import line_of

_PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
SETTINGS_PLACEHOLDERS = {"emergency_number", "crisis_line"}


def _where(path: str | Path, line: int | None) -> str:
    return f"{path}:{line}" if line else str(path)


def validate_project(root: Path) -> tuple[list[str], list[str]]:
    """Returns (errors, warnings). A project that does not load at all raises ProjectError."""
    project = load_project(root, strict=False)
    errors: list[str] = [str(f) for f in project.findings if f.error]
    warnings: list[str] = [str(f) for f in project.findings if not f.error]
    _check_intents(project, errors, warnings)
    _check_actions_and_responses(project, errors, warnings)
    _check_slots_and_forms(project, errors)
    _check_duplicates(project, errors)
    _check_rule_conflicts(project, errors)
    _check_rules_that_wait(project, warnings)
    return errors, warnings


def _domain_line(project: Project, section: str, key: str | None = None) -> str:
    raw = project.domain.raw
    line = line_of(raw, section)
    if key is not None and isinstance(raw.get(section), dict):
        line = line_of(raw[section], key)
    return _where(project.domain.path, line)


def _check_intents(project: Project, errors: list[str], warnings: list[str]) -> None:
    domain_intents = set(project.domain.intents)
    seen = _check_examples(project, domain_intents, errors)
    trained = {i.split("/")[0] for i in seen}
    for intent in domain_intents - trained:
        warnings.append(f"{_domain_line(project, 'intents')}: intent `{intent}` has no training examples")
    _check_story_intents(project, domain_intents, errors)
    _check_retrieval_intents(project, seen, errors, warnings)


def _check_examples(project: Project, domain_intents: set[str], errors: list[str]) -> dict[str, tuple[str, int]]:
    """Intents and entities of the NLU examples; returns each intent's first example (path, line)."""
    seen: dict[str, tuple[str, int]] = {}
    for ex in project.nlu.examples:
        base = ex.intent.split("/")[0]
        seen.setdefault(ex.intent, (ex.path, ex.line))
        if base not in domain_intents:
            errors.append(f"{_where(ex.path, ex.line)}: intent `{ex.intent}` is not in domain.yml; "
                          f"add `- {base}` under `intents:`")
        for ent in ex.entities:
            if ent["entity"] not in project.domain.entities:
                errors.append(f"{_where(ex.path, ex.line)}: entity `{ent['entity']}` is not in domain.yml; "
                              f"add it under `entities:`")
    return seen


def _kind(story: Story) -> str:
    return "rule" if story.is_rule else "story"


def _check_story_intents(project: Project, domain_intents: set[str], errors: list[str]) -> None:
    for story in project.rules + project.stories:
        for step, line in zip(story.steps, story.step_lines):
            if step[0] == "intent" and not _known_intent(step[1], domain_intents):
                errors.append(f"{_where(story.path, line)}: intent `{step[1]}` is used in "
                              f"{_kind(story)} `{story.name}` but not in domain.yml")


def _known_intent(name: str, domain_intents: set[str]) -> bool:
    """A domain intent, the NLU fallback, or a retrieval intent (`faq/x`) of a domain intent."""
    return name in domain_intents or name == NLU_FALLBACK or name.split("/")[0] in domain_intents


def _check_retrieval_intents(project: Project, seen: dict[str, tuple[str, int]], errors: list[str],
                             warnings: list[str]) -> None:
    """Each retrieval intent (`faq/x`) needs its `utter_faq/x`, and each such response its examples."""
    retrieval = {i for i in seen if "/" in i}
    for intent in retrieval:
        if f"utter_{intent}" not in project.domain.responses:
            path, line = seen[intent]
            errors.append(f"{_where(path, line)}: retrieval intent `{intent}` has no response "
                          f"`utter_{intent}` in domain.yml")
    for name in project.domain.responses:
        if name.startswith("utter_") and "/" in name and name[len("utter_"):] not in retrieval:
            warnings.append(f"{_domain_line(project, 'responses', name)}: response `{name}` has no "
                            f"training examples for `{name[len('utter_'):]}`")


def _check_actions_and_responses(project: Project, errors: list[str], warnings: list[str]) -> None:
    _check_story_actions(project, errors)
    _check_custom_actions(project, errors)
    _check_response_variations(project, errors)


def _check_story_actions(project: Project, errors: list[str]) -> None:
    domain = project.domain
    known = set(domain.action_names)
    for story in project.rules + project.stories:
        for step, line in zip(story.steps, story.step_lines):
            if step[0] != "action":
                continue
            name = step[1]
            if name in known or (name.startswith("utter_") and domain.retrieval_responses(name)):
                continue
            if name.startswith("utter_"):
                errors.append(f"{_where(story.path, line)}: response `{name}` is used in {_kind(story)} "
                              f"`{story.name}` but not defined in domain.yml; add it under `responses:`")
            else:
                errors.append(f"{_where(story.path, line)}: action `{name}` is used in {_kind(story)} "
                              f"`{story.name}` but not listed in domain.yml; add it under `actions:`")


def _check_custom_actions(project: Project, errors: list[str]) -> None:
    implemented = _implemented_actions(project)
    if implemented is None:
        return
    for name in project.domain.actions:
        if name not in implemented and name not in BUILTIN_ACTIONS:
            errors.append(f"{_domain_line(project, 'actions')}: custom action `{name}` is listed in "
                          f"domain.yml but no class in actions/ returns that name")


def _check_response_variations(project: Project, errors: list[str]) -> None:
    """The `{placeholders}` and button payloads of every response variation."""
    slots = set(project.domain.slots)
    intents = set(project.domain.intents)
    for name, variations in project.domain.responses.items():
        where = _domain_line(project, "responses", name)
        for variation in variations:
            for placeholder in _PLACEHOLDER.findall(str(variation.get("text") or "")):
                if placeholder not in slots and placeholder not in SETTINGS_PLACEHOLDERS:
                    errors.append(f"{where}: response `{name}` uses `{{{placeholder}}}` which is neither a slot "
                                  f"nor a setting ({', '.join(sorted(SETTINGS_PLACEHOLDERS))})")
            for button in variation.get("buttons") or []:
                payload = str(button.get("payload") or "").replace("{{", "{").replace("}}", "}")
                if payload.startswith("/") and not _known_payload(payload, intents):
                    errors.append(f"{where}: button `{button.get('title')}` of `{name}` sends `{payload}`, "
                                  f"which is not a known intent payload")


def _known_payload(payload: str, intents: set[str]) -> bool:
    """A `/intent{...}` payload that parses and names a domain intent (or restart/session_start)."""
    parsed = parse_intent_payload(payload)
    if parsed is None:
        return False
    return parsed[0].split("/")[0] in intents or parsed[0] in ("restart", "session_start")


def _implemented_actions(project: Project) -> set[str] | None:
    try:
        from bot.actions.runner import InProcessRunner

        return InProcessRunner(project.root).names
    except Exception:  # the actions package itself is broken: that is reported by running it
        return None


def _check_slots_and_forms(project: Project, errors: list[str]) -> None:
    _check_forms(project, errors)
    _check_slot_mappings(project, errors)
    _check_story_slots(project, errors)


def _check_forms(project: Project, errors: list[str]) -> None:
    domain = project.domain
    for form in domain.forms.values():
        where = _domain_line(project, "forms", form.name)
        for slot in form.required_slots:
            if slot not in domain.slots:
                errors.append(f"{where}: form `{form.name}` requires slot `{slot}` which is not in `slots:`")
            elif not _can_ask(project, form.name, slot):
                errors.append(f"{where}: form `{form.name}` asks for `{slot}` but there is no response "
                              f"`utter_ask_{slot}`; add one under `responses:`")


def _can_ask(project: Project, form: str, slot: str) -> bool:
    """The form has a response (`utter_ask_<slot>`, `utter_ask_<form>_<slot>`) or an action to ask with."""
    domain = project.domain
    if any(n in domain.responses for n in (f"utter_ask_{slot}", f"utter_ask_{form}_{slot}")):
        return True
    return f"action_ask_{slot}" in domain.actions


def _check_slot_mappings(project: Project, errors: list[str]) -> None:
    domain = project.domain
    for name, slot in domain.slots.items():
        for mapping in slot.mappings:
            if mapping.get("type") == "from_entity" and mapping["entity"] not in domain.entities:
                errors.append(f"{_domain_line(project, 'slots', name)}: slot `{name}` maps from entity "
                              f"`{mapping['entity']}` which is not in `entities:`")
            for cond in mapping.get("conditions") or []:
                if cond.get("active_loop") and cond["active_loop"] not in domain.forms:
                    errors.append(f"{_domain_line(project, 'slots', name)}: slot `{name}` mapping condition "
                                  f"names form `{cond['active_loop']}` which is not in `forms:`")


def _check_story_slots(project: Project, errors: list[str]) -> None:
    """Slots and loops that steps and rule conditions (at the rule's own line) name."""
    domain = project.domain
    for story in project.rules + project.stories:
        for step, line in zip(story.steps + story.conditions, story.step_lines + [story.line] * len(story.conditions)):
            if step[0] == "slot" and step[1] not in domain.slots:
                errors.append(f"{_where(story.path, line)}: slot `{step[1]}` is not in domain.yml `slots:`")
            if step[0] == "active_loop" and step[1] and step[1] not in domain.forms:
                errors.append(f"{_where(story.path, line)}: active_loop `{step[1]}` is not a form in domain.yml")


def _check_duplicates(project: Project, errors: list[str]) -> None:
    by_text: dict[str, list] = defaultdict(list)
    for ex in project.nlu.examples:
        by_text[ex.text.strip().lower()].append(ex)
    for text, examples in by_text.items():
        intents = {ex.intent for ex in examples}
        if len(intents) > 1:
            places = ", ".join(f"{_where(ex.path, ex.line)} ({ex.intent})" for ex in examples)
            errors.append(f"{_where(examples[0].path, examples[0].line)}: example {text!r} appears under "
                          f"several intents: {places}; keep it under one")


def _check_rule_conflicts(project: Project, errors: list[str]) -> None:
    """Two rules with the same situation but different next actions: one is unreachable."""
    seen: dict[tuple, tuple[str, str, str, int]] = {}
    for rule in project.rules:
        steps = [s for s in rule.steps if s[0] in ("intent", "action", "active_loop")]
        conditions = tuple(sorted(map(str, rule.conditions)))
        for k, step in enumerate(steps):
            if step[0] != "action" or k == 0:
                continue
            key = (conditions, tuple(steps[:k]))
            known = seen.get(key)
            if known and known[0] != step[1]:
                errors.append(f"{_where(rule.path, rule.line)}: rule `{rule.name}` predicts `{step[1]}` where rule "
                              f"`{known[1]}` ({_where(known[2], known[3])}) predicts `{known[0]}`; "
                              f"one of them can never apply — remove or change one")
            else:
                seen[key] = (step[1], rule.name, rule.path, rule.line)



_MATCHED = ("intent", "action", "active_loop")


def _check_rules_that_wait(project: Project, warnings: list[str]) -> None:
    """Rasa's `wait_for_user_input` (true by default): after a rule's last action Rasa waits for
    the user, and refuses to train when a rule or story goes on from there. Backline's policies
    go on (as `wait_for_user_input: false`): say where that happens."""
    continuations = _continuations(project)
    for rule in project.rules:
        steps = [s for s in rule.steps if s[0] in _MATCHED]
        if not rule.wait_for_user_input or not steps or not _ends_without_loop(rule, steps):
            continue
        for other, prefix, action in continuations:
            if other is not rule and prefix[-1] == steps[-1] and _overlap(steps, prefix):
                warnings.append(f"{_where(rule.path, rule.line)}: rule `{rule.name}` ends with `{steps[-1][1]}` "
                                f"and waits for the user (Rasa's `wait_for_user_input`, true by default), but "
                                f"{_kind(other)} `{other.name}` "
                                f"({_where(other.path, other.line)}) goes on with `{action}`: Backline goes on, "
                                f"real Rasa refuses the contradiction; add `wait_for_user_input: false` to "
                                f"`{rule.name}` if `{action}` should follow")
                break


def _continuations(project: Project) -> list[tuple]:
    """(rule or story, the steps before one of its actions, that action) where the steps before
    end with an action: what a policy could predict right after another action with no form
    running (a rule for a running form is how Rasa and Backline go back to the form)."""
    found = []
    for story in project.rules + project.stories:
        if any(c[0] == "active_loop" and c[1] for c in story.conditions):
            continue
        steps = [s for s in story.steps if s[0] in _MATCHED]
        for k in range(1, len(steps)):
            if steps[k][0] == "action" and steps[k - 1][0] == "action":
                found.append((story, steps[:k], steps[k][1]))
    return found


def _ends_without_loop(rule, steps: list[tuple]) -> bool:
    """The rule ends on an action with no form running (a running form takes over, as in Rasa)."""
    if steps[-1][0] != "action":
        return False
    loops = [s[1] for s in steps if s[0] == "active_loop"]
    loop = loops[-1] if loops else next((c[1] for c in rule.conditions if c[0] == "active_loop"), None)
    return loop is None


def _overlap(ended: list[tuple], prefix: list[tuple]) -> bool:
    """Whether the conversation can end with `ended` and, at the same time, with `prefix`."""
    n = min(len(ended), len(prefix))
    return ended[len(ended) - n:] == prefix[len(prefix) - n:]
