"""The blind evaluation: single messages written by people who never saw the rules, each sent as
the first message of a new conversation, scored against the writer's label (tests/blind/).

Kept apart from the sweep (bot/evaluate.py), whose cases are built from the rules themselves.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.safety.triage import level_rank
from bot.yamlio import load_yaml

MESSAGE_FILES = ("messages_positive.yml", "messages_lookalike.yml", "messages.yml")
VIGNETTE_FILE = "vignettes.yml"
EMERGENCY, URGENT = "emergency", "urgent"


@dataclass
class Case:
    id: str
    text: str
    expect: str
    signs: tuple[str, ...]
    crisis: str
    about: str
    style: str


@dataclass
class Outcome:
    case: Case
    level: str
    flags: list[str]
    crisis_line: bool          # the crisis line number was shown
    asked: bool                # the bot asked a safety screening question about a suspected sign
    replies: list[str]

    @property
    def under(self) -> bool:
        return level_rank(self.level) < level_rank(self.case.expect)

    @property
    def over(self) -> bool:
        return level_rank(self.level) > level_rank(self.case.expect)


def load_cases(folder: Path) -> list[Case]:
    cases: list[Case] = []
    for name in MESSAGE_FILES:
        path = folder / name
        if not path.is_file():
            continue
        for item in load_yaml(path) or []:
            cases.append(Case(str(item["id"]), str(item["text"]), str(item["expect"]),
                              tuple(item.get("signs") or ()), str(item.get("crisis") or "none"),
                              str(item.get("about") or "self"), str(item.get("style") or "")))
    return cases


async def _play(agent: Any, case: Case) -> Outcome:
    from bot.processor import UserMessage

    sender = f"blind-{case.id}-{uuid.uuid4().hex[:8]}"
    replies = await agent.handle_message(UserMessage(case.text, sender_id=sender))
    tracker = await agent.tracker(sender)
    slots = tracker.slots if tracker else {}
    texts = [r.get("text") or "" for r in replies]
    crisis_number = str(agent.settings.get("crisis_line", "988"))
    crisis_line = any(re.search(rf"\b{re.escape(crisis_number)}\b", t) for t in texts)
    asked = bool(slots.get("safety_question"))
    await agent.delete_conversation(sender)
    return Outcome(case, slots.get("triage_level") or "info", list(slots.get("red_flags") or []),
                   crisis_line, asked, texts)


def _ratio(hit: int, total: int) -> dict[str, Any]:
    return {"hit": hit, "total": total, "rate": round(hit / total, 3) if total else None}


def _triage_figures(outcomes: list[Outcome]) -> dict[str, Any]:
    """The level reached: overall, for the emergencies and the urgent cases."""
    emergencies = [o for o in outcomes if o.case.expect == EMERGENCY]
    urgents = [o for o in outcomes if o.case.expect == URGENT]
    return {
        "level_accuracy": _ratio(sum(o.level == o.case.expect for o in outcomes), len(outcomes)),
        "emergency_recall": _ratio(sum(o.level == EMERGENCY for o in emergencies), len(emergencies)),
        "emergency_caught_or_asked": _ratio(sum(o.level == EMERGENCY or o.asked for o in emergencies),
                                            len(emergencies)),
        "urgent_or_higher_recall": _ratio(sum(not o.under for o in urgents), len(urgents)),
        "under_triage": _ratio(sum(o.under for o in outcomes), len(outcomes)),
        "over_triage": _ratio(sum(o.over for o in outcomes), len(outcomes)),
    }


def _lookalikes(outcomes: list[Outcome]) -> list[Outcome]:
    """The cases that should raise no danger sign (info or routine)."""
    return [o for o in outcomes if o.case.expect in ("info", "routine")]


def _sign_figures(outcomes: list[Outcome]) -> dict[str, Any]:
    """Danger signs: chest pain escalated, and false alarms where there is no sign to find."""
    chest = [o for o in outcomes if "chest_pain" in o.case.signs]
    non_back = [o for o in outcomes if o.case.expect == "info" and "non_back" in o.case.style]
    lookalikes = _lookalikes(outcomes)
    return {
        "chest_pain_escalated": _ratio(sum(o.level == EMERGENCY for o in chest), len(chest)),
        "non_back_with_danger_sign": _ratio(sum(bool(o.flags) for o in non_back), len(non_back)),
        "lookalikes_with_danger_sign": _ratio(sum(bool(o.flags) for o in lookalikes), len(lookalikes)),
    }


def _crisis_figures(outcomes: list[Outcome]) -> dict[str, Any]:
    explicit = [o for o in outcomes if o.case.crisis == "explicit"]
    indirect = [o for o in outcomes if o.case.crisis == "indirect"]
    return {
        "crisis_explicit_line": _ratio(sum(o.crisis_line for o in explicit), len(explicit)),
        "crisis_indirect_line_or_question": _ratio(sum(o.crisis_line or o.asked for o in indirect), len(indirect)),
    }


def _sign_recall(outcomes: list[Outcome]) -> dict[str, Any]:
    expected_signs = [(o, s) for o in outcomes for s in o.case.signs]
    return _ratio(sum(s in o.flags for o, s in expected_signs), len(expected_signs))


def score(outcomes: list[Outcome]) -> dict[str, Any]:
    """The figures issue 14 sets targets for, plus the cases behind every miss."""
    return {
        "cases": len(outcomes),
        **_triage_figures(outcomes),
        **_sign_figures(outcomes),
        **_crisis_figures(outcomes),
        "sign_recall": _sign_recall(outcomes),
        "under_triaged": [_row(o) for o in outcomes if o.under],
        "false_alarms": [_row(o) for o in _lookalikes(outcomes) if o.flags],
    }


def _row(o: Outcome) -> dict[str, Any]:
    return {"id": o.case.id, "text": o.case.text, "expect": o.case.expect, "signs": list(o.case.signs),
            "level": o.level, "flags": o.flags, "asked": o.asked}


def evaluate_blind(agent: Any, folder: Path) -> dict[str, Any]:
    """Single messages and, when the folder has them, multi-turn vignettes (bot/patients.py)."""
    from bot import patients

    cases = load_cases(folder)

    async def run() -> tuple[list[Outcome], list[Any]]:
        singles = [await _play(agent, case) for case in cases]
        vignettes = []
        if (folder / VIGNETTE_FILE).is_file():
            table = patients.default_topics(Path(agent.project.root))
            vignettes = await patients.play_all(agent, patients.load_vignettes(folder / VIGNETTE_FILE), table)
        return singles, vignettes

    singles, vignettes = asyncio.run(run())
    report = score(singles) if singles else {}
    if vignettes:
        report["vignettes"] = patients.metrics(vignettes)
        report["vignette_safety_failures"] = patients.safety_failures(vignettes)
    return report


def blind_folders(root: Path) -> list[Path]:
    """tests/blind (round 1) and every later round written after rule changes (tests/blind/round*)."""
    base = root / "tests" / "blind"
    return [base] + sorted(p for p in base.glob("round*") if p.is_dir()) if base.is_dir() else []


SUMMARY_KEYS = ("level_accuracy", "emergency_recall", "emergency_caught_or_asked", "urgent_or_higher_recall",
                "under_triage", "over_triage", "chest_pain_escalated", "non_back_with_danger_sign",
                "lookalikes_with_danger_sign", "crisis_explicit_line", "crisis_indirect_line_or_question",
                "sign_recall")


def summary_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for key in SUMMARY_KEYS if "cases" in report else ():
        r = report[key]
        rate = "n/a" if r["rate"] is None else f"{r['rate']:.3f}"
        lines.append(f"  {key.replace('_', ' '):34} {rate:>6}  ({r['hit']}/{r['total']})")
    if "vignettes" in report:
        from bot.patients import metrics_rows

        lines.append("  multi-turn vignettes:")
        lines += [f"    {name:48} {value}" for name, value in metrics_rows(report["vignettes"])]
    return lines
