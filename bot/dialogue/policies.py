"""Dialogue policies: RulePolicy (rules.yml) and MemoizationPolicy (stories.yml), Rasa-style.

Both match the tail of the conversation (intents, actions, loop changes; action_listen and the
safety layer's own actions are looked through) against the steps of a rule or story."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.dialogue.stories import Story
from bot.dialogue.tracker import Tracker


@dataclass
class Prediction:
    action: str
    policy: str
    confidence: float = 1.0
    source: str = ""   # the rule or story that made it (for debugging and `bot validate`)


def _matchable(steps: list[tuple]) -> list[tuple]:
    return [s for s in steps if s[0] in ("intent", "action", "active_loop")]


def _same(a: tuple, b: tuple) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] == "intent" and b[1] and a[1] and (b[1].startswith(a[1] + "/") or a[1].startswith(b[1] + "/")):
        return True  # `faq` in a rule matches `faq/<topic>` and vice versa
    return a[1] == b[1]


def _ends_with(steps: list[tuple], tail: list[tuple]) -> bool:
    if len(tail) > len(steps):
        return False
    return all(_same(x, y) for x, y in zip(steps[len(steps) - len(tail):], tail))


def _loops_before(steps: list[tuple]) -> list[str | None]:
    """loops[i] = the active loop just before steps[i] (loops[len] = now)."""
    loops: list[str | None] = []
    current = None
    for step in steps:
        loops.append(current)
        if step[0] == "active_loop":
            current = step[1]
    loops.append(current)
    return loops


class RulePolicy:
    name = "RulePolicy"

    def __init__(self, rules: list[Story]) -> None:
        self.rules = [(rule, _matchable(rule.steps)) for rule in rules]

    def predict(self, tracker: Tracker) -> Prediction | None:
        steps = tracker.turn_steps()
        loops = _loops_before(steps)
        best: tuple[int, int, int, Prediction] | None = None
        for order, (rule, rsteps) in enumerate(self.rules):
            for k, step in enumerate(rsteps):
                if step[0] != "action":
                    continue
                prefix = rsteps[:k]
                if not prefix and not (rule.conversation_start and not steps):
                    continue
                if prefix and not _ends_with(steps, prefix):
                    continue
                if rule.conversation_start and len(steps) != len(prefix):
                    continue
                start = len(steps) - len(prefix)
                if not self._conditions_hold(rule, tracker, loops[start]):
                    continue
                score = (len(prefix), len(rule.conditions), -order)
                if best is None or score > best[:3]:
                    best = (*score, Prediction(step[1], self.name, 1.0, rule.name))
        return best[3] if best else None

    @staticmethod
    def _conditions_hold(rule: Story, tracker: Tracker, loop_at_start: str | None) -> bool:
        for cond in rule.conditions:
            if cond[0] == "active_loop":
                if loop_at_start != cond[1]:
                    return False
            elif cond[0] == "slot":
                value = tracker.slots.get(cond[1])
                expected = cond[2]
                if expected is True:  # `- slot_was_set: [name]`: any value
                    if value in (None, [], ""):
                        return False
                elif value != expected:
                    return False
        return True


class MemoizationPolicy:
    name = "MemoizationPolicy"

    def __init__(self, stories: list[Story], max_history: int = 5) -> None:
        self.window = max(2, max_history * 2)
        self.memory: dict[tuple, tuple[str, str]] = {}
        self.conflicts: list[tuple[tuple, str, str]] = []
        for story in stories:
            ssteps = _matchable(story.steps)
            for k, step in enumerate(ssteps):
                if step[0] != "action" or k == 0:
                    continue
                for length in range(1, min(k, self.window) + 1):
                    key = tuple(ssteps[k - length:k])
                    if not any(s[0] == "intent" for s in key):
                        continue
                    known = self.memory.get(key)
                    if known and known[0] != step[1]:
                        self.conflicts.append((key, known[0], step[1]))
                        continue
                    self.memory[key] = (step[1], story.name)

    def predict(self, tracker: Tracker) -> Prediction | None:
        steps = tracker.turn_steps()
        for length in range(min(len(steps), self.window), 0, -1):
            hit = self.memory.get(tuple(steps[-length:]))
            if hit:
                return Prediction(hit[0], self.name, 1.0, hit[1])
        return None


def build_policies(config: list[dict[str, Any]], rules: list[Story], stories: list[Story]) -> list[RulePolicy | MemoizationPolicy]:
    """Policies in priority order: rules first (as Rasa's RulePolicy priority), then memoization."""
    max_history = 5
    for policy in config:
        if policy.get("name") in ("MemoizationPolicy", "AugmentedMemoizationPolicy"):
            max_history = int(policy.get("max_history", 5) or 5)
    return [RulePolicy(rules), MemoizationPolicy(stories, max_history)]
