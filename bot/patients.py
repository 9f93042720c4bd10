"""Simulated patients: play vignettes (tests/patients/*.yml) against the real engine in process
and measure the interview: level accuracy, under-/over-triage, danger signs found, crisis line,
turns to a result, fallbacks, words per turn, referral. `bot test patients` and
benchmarks/patients.py run it; the vignette format is the team's VIGNETTE_FORMAT.md.

The patient works out what the bot asks from the tracker's requested_slot through the table in
tests/patients/topics.yml (so an interview change is a change to that table), falling back to
keywords of the bot's question, else `other`."""

from __future__ import annotations

import re
import statistics
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from re import Pattern
from typing import Any, Callable, Sequence

from bot.yamlio import ProjectError, line_of, load_yaml

TOPICS = ("duration", "location", "severity", "trigger", "bladder_bowel", "saddle_numbness", "leg_weakness",
          "leg_numbness", "fever", "cancer_history", "weight_loss", "night_pain", "trauma", "age", "bone_health",
          "infection_risk", "deformity", "chest_breathing", "mood", "pregnancy", "medicines", "checklist_none",
          "other")
SIGNS = {"bladder_bowel": "emergency", "saddle_numbness": "emergency", "leg_weakness": "emergency",
         "major_trauma": "emergency", "chest_pain": "emergency", "tearing_pain": "emergency",
         "self_harm": "emergency", "fever": "urgent", "cancer_history": "urgent", "weight_loss": "urgent",
         "night_pain": "urgent", "leg_numbness": "urgent", "minor_trauma_risk": "urgent",
         "infection_risk": "urgent", "severe_pain": "urgent", "deformity": "urgent"}
LEVELS = ("info", "routine", "urgent", "emergency")
CRISIS = ("none", "explicit", "indirect")
MAX_TURNS = 25
REPEAT_LIMIT = 3  # the same bot text this many times counts as "repeated"
VIGNETTE_KEYS = {"id", "persona", "about", "opening", "answers", "default_no", "volunteer", "expect", "signs",
                 "crisis"}
SENTENCE = re.compile(r"(?<=[.?!])\s+|\n+")


# -- vignettes ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Volunteer:
    after_turn: int
    text: str


@dataclass(frozen=True)
class Vignette:
    id: str
    opening: str
    expect: str
    persona: str = ""
    about: str = "self"
    answers: dict[str, str] = field(default_factory=dict)
    default_no: str = "no"
    volunteer: tuple[Volunteer, ...] = ()
    signs: tuple[str, ...] = ()
    crisis: str = "none"

    def answer(self, topic: str) -> str:
        return self.answers.get(topic, self.default_no)


Fail = Callable[..., ProjectError]  # (message, key=None) -> the error to raise for this vignette


def _check_keys(raw: dict[str, Any], fail: Fail) -> None:
    for key in raw:
        if key not in VIGNETTE_KEYS:
            raise fail(f"unknown key `{key}` (allowed: {', '.join(sorted(VIGNETTE_KEYS))})", key)
    for key in ("id", "opening", "expect"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise fail(f"`{key}` is required and must be text")


def _answers(raw: dict[str, Any], fail: Fail) -> dict[str, Any]:
    answers = raw.get("answers") or {}
    if not isinstance(answers, dict):
        raise fail("`answers` must map topics to replies", "answers")
    for topic, text in answers.items():
        if topic not in TOPICS:
            raise fail(f"unknown topic `{topic}` (topics: {', '.join(TOPICS)})", "answers")
        if not isinstance(text, str) or not text.strip():
            raise fail(f"the answer for `{topic}` must be text", "answers")
    return answers


def _is_volunteer(item: Any) -> bool:
    if not isinstance(item, dict) or set(item) - {"after_turn", "text"}:
        return False
    after_turn = item.get("after_turn")
    return isinstance(after_turn, int) and after_turn >= 1 and isinstance(item.get("text"), str)


def _volunteers(raw: dict[str, Any], fail: Fail) -> list[Volunteer]:
    volunteers = []
    for item in raw.get("volunteer") or []:
        if not _is_volunteer(item):
            raise fail("each `volunteer` item needs after_turn (a number >= 1) and text", "volunteer")
        volunteers.append(Volunteer(item["after_turn"], item["text"]))
    return volunteers


def _signs(raw: dict[str, Any], fail: Fail) -> list[str]:
    signs = raw.get("signs") or []
    unknown = [s for s in signs if s not in SIGNS] if isinstance(signs, list) else [signs]
    if unknown:
        raise fail(f"unknown danger sign(s) {unknown} (ids: {', '.join(SIGNS)})", "signs")
    return signs


def _check_choices(raw: dict[str, Any], fail: Fail) -> None:
    checks = (("expect", LEVELS), ("crisis", CRISIS), ("about", ("self", "other")))
    for key, allowed in checks:
        if key in raw and raw[key] not in allowed:
            raise fail(f"`{key}` must be one of {', '.join(allowed)}, not {raw[key]!r}", key)


def _vignette(raw: Any, path: Path, index: int) -> Vignette:
    if not isinstance(raw, dict):
        raise ProjectError(path, None, f"vignette #{index + 1}: expected a mapping with id, opening, expect")

    def fail(message: str, key: str | None = None) -> ProjectError:
        return ProjectError(path, line_of(raw, key), f"vignette {raw.get('id', f'#{index + 1}')}: {message}")

    _check_keys(raw, fail)
    answers = _answers(raw, fail)
    volunteers = _volunteers(raw, fail)
    signs = _signs(raw, fail)
    _check_choices(raw, fail)
    return Vignette(id=str(raw["id"]), opening=raw["opening"], expect=raw["expect"],
                    persona=str(raw.get("persona") or ""), about=raw.get("about", "self"),
                    answers={str(k): str(v) for k, v in answers.items()},
                    default_no=str(raw.get("default_no") or "no"),
                    volunteer=tuple(sorted(volunteers, key=lambda v: v.after_turn)),
                    signs=tuple(signs), crisis=raw.get("crisis", "none"))


def load_vignettes(path: Path) -> list[Vignette]:
    raw = load_yaml(path)
    if not isinstance(raw, list) or not raw:
        raise ProjectError(path, None, "expected a YAML list of vignettes (see the vignette format)")
    vignettes = [_vignette(item, path, i) for i, item in enumerate(raw)]
    seen: set[str] = set()
    for i, vignette in enumerate(vignettes):
        if vignette.id in seen:
            raise ProjectError(path, line_of(raw, i), f"duplicate vignette id `{vignette.id}`")
        seen.add(vignette.id)
    return vignettes


# -- what the bot is asking -----------------------------------------------------------------------

def _patterns(items: Sequence[str]) -> list[Pattern[str]]:
    return [re.compile(p, re.I) for p in items]


def _check_table(raw: dict[str, Any], path: Path | None) -> None:
    """Every slot maps to a list of topics, and every topic named is one of TOPICS."""
    if not all(isinstance(ts, list) for ts in raw["slots"].values()):
        raise ProjectError(path, line_of(raw, "slots"), "each slot in `slots` maps to a list of topics")
    for where, names in [("slots", [t for ts in raw["slots"].values() for t in ts]),
                         ("keywords", list(raw.get("keywords") or {}))]:
        bad = [t for t in names if t not in TOPICS]
        if bad:
            raise ProjectError(path, line_of(raw, where), f"unknown topic(s) {bad} in `{where}`")


@dataclass
class TopicTable:
    slots: dict[str, tuple[str, ...]]
    keywords: dict[str, list[Pattern[str]]]
    offers: list[Pattern[str]] = field(default_factory=list)
    plain_negative: list[Pattern[str]] = field(default_factory=list)
    # in a checklist, a topic whose answer says something only from a number on ("age: 70":
    # an age under 70 is no answer to "...or over 70?")
    reveal_from: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "TopicTable":
        raw = load_yaml(path)
        if not isinstance(raw, dict) or not isinstance(raw.get("slots"), dict):
            raise ProjectError(path, None, "expected `slots:` (slot -> topics) and `keywords:` (topic -> patterns)")
        return cls.from_dict(raw, path)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], path: Path | None = None) -> "TopicTable":
        _check_table(raw, path)
        return cls(slots={str(k): tuple(v) for k, v in raw["slots"].items()},
                   keywords={t: _patterns(ps) for t, ps in (raw.get("keywords") or {}).items()},
                   offers=_patterns(raw.get("offers") or []),
                   plain_negative=[re.compile(r"^\W*(" + p + ")", re.I) for p in raw.get("plain_negative") or []],
                   reveal_from={str(t): float(n) for t, n in (raw.get("reveal_from") or {}).items()})

    def asked(self, active_loop: str | None, requested_slot: str | None, texts: Sequence[str],
              safety_question: str | None = None) -> tuple[str, ...] | None:
        """The topic(s) the bot's turn asks about, ("other",) when it asks something else, None
        when it is not asking anything (no requested slot, no question but offers). An open
        safety question (the crisis question, a suspected sign's) is what the turn asks, even
        while the form's requested slot waits: it is read from the bot's words."""
        in_form = bool(active_loop and requested_slot)
        if in_form and not safety_question:
            topics = self.slots.get(f"{active_loop}.{requested_slot}") or self.slots.get(requested_slot)
            if topics:
                return topics
        questions = self._questions(texts)
        found = self._keyword_topics(questions)
        if found:
            return found
        return ("other",) if questions or in_form else None

    def _questions(self, texts: Sequence[str]) -> list[str]:
        """The sentences of the bot's texts that ask something, offers left out."""
        sentences = [s for text in texts for s in SENTENCE.split(text)]
        return [s for s in sentences if s.strip().endswith("?") and not any(p.search(s) for p in self.offers)]

    def _keyword_topics(self, questions: Sequence[str]) -> tuple[str, ...]:
        return tuple(t for t, patterns in self.keywords.items()
                     if any(p.search(q) for q in questions for p in patterns))

    def reveals(self, answer: str, topic: str | None = None) -> bool:
        """Whether a listed answer says something (is not a plain negative)."""
        if topic in self.reveal_from:
            return any(float(n) >= self.reveal_from[topic] for n in re.findall(r"\d+(?:\.\d+)?", answer))
        negative = any(p.search(answer) for p in self.plain_negative)
        return not negative or bool(re.search(r"\bbut\b", answer, re.I))

    def reply(self, vignette: Vignette, topics: Sequence[str]) -> str:
        """A single question gets that topic's answer; a checklist the revealing answers joined."""
        if len(topics) == 1:
            return vignette.answer(topics[0])
        parts = [vignette.answers[t] for t in topics if t in vignette.answers and self.reveals(vignette.answers[t], t)]
        if not parts:
            return vignette.answer("checklist_none")
        return " ".join(p.strip() if p.strip()[-1:] in ".!?" else p.strip() + "." for p in parts)


def default_topics(root: Path) -> TopicTable:
    return TopicTable.load(root / "tests" / "patients" / "topics.yml")


# -- playing one vignette -----------------------------------------------------------------------

@dataclass
class Turn:
    n: int
    kind: str                      # opening | answer | volunteer
    topics: list[str]              # what the patient was answering
    patient: str                   # what the patient typed
    sent: str                      # what reached the bot (a button payload when the text was its title)
    bot: list[str]
    buttons: list[str]
    requested_slot: str | None     # the slot the bot asks for after this turn (tracker)


@dataclass
class Conversation:
    id: str
    expect: str
    signs: list[str]
    crisis: str
    level: str
    red_flags: list[str]
    end: str                       # result | alert | stopped | cap
    turns: int                     # patient turns sent
    turns_to_result: int | None    # patient turns until the result or the alert that ended the questions
    fallbacks: int
    out_of_scope: int              # "that's outside what I cover" replies
    repeated_text: str | None      # a bot text sent REPEAT_LIMIT times or more
    words_per_turn: list[int]
    first_result_words: int | None
    referral: bool
    crisis_line_shown: bool
    unsent_volunteers: int
    transcript: list[Turn]

    @property
    def under(self) -> bool:
        return LEVELS.index(self.level) < LEVELS.index(self.expect)

    @property
    def over(self) -> bool:
        return LEVELS.index(self.level) > LEVELS.index(self.expect)

    @property
    def needs_referral(self) -> bool:
        return self.level != "info" or self.expect != "info"


def _first_text_after(events: list[dict[str, Any]], action: str) -> str | None:
    index = next((i for i, e in enumerate(events) if e.get("event") == "action" and e.get("name") == action), None)
    if index is None:
        return None
    return next((e["text"] for e in events[index + 1:] if e.get("event") == "bot" and e.get("text")), None)


def _texts(agent: Any, response: str) -> set[str]:
    """Every text a domain response can render to, with the configured numbers filled in."""
    from bot.dialogue.domain import fill

    values = {k: agent.settings.get(k) for k in ("emergency_number", "crisis_line")}
    return {fill(v["text"], values) for v in agent.project.domain.responses.get(response, []) if v.get("text")}


def _button(text: str, buttons: list[dict[str, Any]]) -> str:
    """A patient clicks only when what they would type is a button's title."""
    for button in buttons:
        if str(button.get("title") or "").strip().casefold() == text.strip().casefold() and button.get("payload"):
            return str(button["payload"])
    return text


def ending(actions: Sequence[str], asked: tuple[str, ...] | None, slots: dict[str, Any]) -> str | None:
    """How a turn ends the conversation: `result` (the triage result ran), `alert` (an emergency
    or crisis alert and nothing more is asked), `stopped` (nothing asked), or None (go on)."""
    if "action_triage_result" in actions:
        return "result"
    if asked is not None:
        return None
    crisis_or_emergency = slots.get("triage_level") == "emergency" or "self_harm" in (slots.get("red_flags") or [])
    return "alert" if "action_safety_alert" in actions and crisis_or_emergency else "stopped"


RESULT_ACTIONS = {"result": "action_triage_result", "alert": "action_safety_alert"}  # ending -> its action


@dataclass
class _Tally:
    """What the bot's bubbles add up to over one conversation. The disclaimer's own words count
    neither as a referral nor as the crisis line."""
    referral_words: Pattern[str]
    crisis_line: Pattern[str]
    disclaimer_texts: set[str]
    default_texts: set[str]
    fallbacks: int = 0
    out_of_scope: int = 0
    texts_seen: Counter[str] = field(default_factory=Counter)
    referral: bool = False
    crisis_shown: bool = False

    @classmethod
    def for_agent(cls, agent: Any) -> "_Tally":
        from bot.evaluate import REFERRAL

        crisis_line = re.compile(rf"(?<!\d){re.escape(str(agent.settings.get('crisis_line', '988')))}(?!\d)")
        return cls(REFERRAL, crisis_line, _texts(agent, "utter_disclaimer"), _texts(agent, "utter_default"))

    def add(self, event: dict[str, Any]) -> None:
        text = event["text"]
        utter = (event.get("metadata") or {}).get("utter_action")
        self.fallbacks += int(utter == "utter_default" or text in self.default_texts)
        self.out_of_scope += int(utter == "utter_out_of_scope")
        self.texts_seen[text] += 1
        if utter != "utter_disclaimer" and text not in self.disclaimer_texts:
            self.referral = self.referral or bool(self.referral_words.search(text))
            self.crisis_shown = self.crisis_shown or bool(self.crisis_line.search(text))

    def repeated(self) -> str | None:
        """A bot text sent REPEAT_LIMIT times or more."""
        return next((t for t, c in self.texts_seen.most_common() if c >= REPEAT_LIMIT), None)


def _bot_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("event") == "bot" and e.get("text")]


def _action_names(events: list[dict[str, Any]]) -> list[str]:
    return [e.get("name") for e in events if e.get("event") == "action"]


def _buttons(bots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for e in bots for b in (e.get("data") or {}).get("buttons") or []]


def _next_message(vignette: Vignette, table: TopicTable, asked: tuple[str, ...], volunteers: list[Volunteer],
                  n: int) -> tuple[str, str, list[str]]:
    """(message, kind, topics) of the patient's next turn: a volunteered text when one is due
    (taken off `volunteers`), else the answer to what the bot asked."""
    if volunteers and volunteers[0].after_turn <= n:
        return volunteers.pop(0).text, "volunteer", []
    return table.reply(vignette, asked), "answer", list(asked)


def _conversation(vignette: Vignette, slots: dict[str, Any], transcript: list[Turn], tally: _Tally,
                  end: str | None, to_result: int | None, first_result: str | None,
                  unsent_volunteers: int) -> Conversation:
    return Conversation(
        id=vignette.id, expect=vignette.expect, signs=list(vignette.signs), crisis=vignette.crisis,
        level=str(slots.get("triage_level") or "info"), red_flags=list(slots.get("red_flags") or []),
        end=end or "cap", turns=len(transcript), turns_to_result=to_result, fallbacks=tally.fallbacks,
        out_of_scope=tally.out_of_scope, repeated_text=tally.repeated(),
        words_per_turn=[sum(len(t.split()) for t in turn.bot) for turn in transcript],
        first_result_words=len(first_result.split()) if first_result else None, referral=tally.referral,
        crisis_line_shown=tally.crisis_shown, unsent_volunteers=unsent_volunteers, transcript=transcript)


async def play(agent: Any, vignette: Vignette, table: TopicTable, max_turns: int = MAX_TURNS) -> Conversation:
    """Play one vignette to its end through agent.handle_message (the channels' path)."""
    from bot.processor import UserMessage

    sender = f"patient-{vignette.id}-{uuid.uuid4().hex[:8]}"
    tally = _Tally.for_agent(agent)
    volunteers = list(vignette.volunteer)
    transcript: list[Turn] = []
    first_result: str | None = None
    end: str | None = None
    to_result: int | None = None
    message, kind, topics = vignette.opening, "opening", []
    buttons: list[dict[str, Any]] = []
    tracker: Any = None
    seen = 0
    for n in range(1, max_turns + 1):
        sent = _button(message, buttons)
        await agent.handle_message(UserMessage(sent, sender, input_channel="patients"))
        tracker = await agent.tracker(sender)
        events, seen = tracker.events[seen:], len(tracker.events)  # this turn's, session start included
        bots = _bot_events(events)
        texts = [e["text"] for e in bots]
        buttons = _buttons(bots)
        transcript.append(Turn(n, kind, list(topics), message, sent, texts, [str(b.get("title")) for b in buttons],
                               tracker.requested_slot if tracker.active_loop else None))
        for event in bots:
            tally.add(event)
        asked = table.asked(tracker.active_loop, tracker.requested_slot, texts,
                            tracker.slots.get("safety_question"))
        end = ending(_action_names(events), asked, tracker.slots)
        if end or asked is None:
            if end in RESULT_ACTIONS:
                to_result = n
                first_result = _first_text_after(events, RESULT_ACTIONS[end])
            break
        message, kind, topics = _next_message(vignette, table, asked, volunteers, n)
    slots = tracker.slots if tracker is not None else {}
    return _conversation(vignette, slots, transcript, tally, end, to_result, first_result, len(volunteers))


async def play_all(agent: Any, vignettes: Sequence[Vignette], table: TopicTable,
                   max_turns: int = MAX_TURNS) -> list[Conversation]:
    return [await play(agent, v, table, max_turns) for v in vignettes]


# -- metrics --------------------------------------------------------------------------------------

def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _triage_metrics(conversations: Sequence[Conversation]) -> dict[str, Any]:
    emergencies = [c for c in conversations if c.expect == "emergency"]
    return {
        "conversations": len(conversations),
        "level_accuracy": sum(c.level == c.expect for c in conversations) / (len(conversations) or 1),
        "under_triage": [c.id for c in conversations if c.under],
        "over_triage": [c.id for c in conversations if c.over],
        "emergency_recall": _rate(sum(c.level == "emergency" for c in emergencies), len(emergencies)),
        "emergencies": len(emergencies),
    }


def _safety_metrics(conversations: Sequence[Conversation]) -> dict[str, Any]:
    """Danger signs found and crises given the crisis line."""
    crises = [c for c in conversations if c.crisis != "none"]
    expected_signs = sum(len(set(c.signs)) for c in conversations)
    found_signs = sum(len(set(c.signs) & set(c.red_flags)) for c in conversations)
    return {
        "sign_recall": _rate(found_signs, expected_signs),
        "signs_expected": expected_signs,
        "missed_signs": {c.id: sorted(set(c.signs) - set(c.red_flags)) for c in conversations
                         if set(c.signs) - set(c.red_flags)},
        "crisis_handled": _rate(sum(c.crisis_line_shown for c in crises), len(crises)),
        "crises": len(crises),
    }


def _turns_to_result(conversations: Sequence[Conversation]) -> dict[str, dict[str, Any]]:
    turns: dict[str, dict[str, Any]] = {}
    for level in ("routine", "urgent", "emergency"):
        group = [c for c in conversations if c.expect == level]
        values = [c.turns_to_result for c in group if c.turns_to_result is not None]
        turns[level] = {"conversations": len(group), "median": _median(values), "max": max(values, default=None),
                        "no_result": len(group) - len(values)}
    return turns


def _interview_metrics(conversations: Sequence[Conversation]) -> dict[str, Any]:
    """How the interview went: fallbacks, out-of-scope replies, repeated texts."""
    fallbacks = [c.fallbacks for c in conversations]
    return {
        "fallbacks_max": max(fallbacks, default=0),
        "fallbacks_mean": sum(fallbacks) / (len(conversations) or 1),
        "out_of_scope_replies": sum(c.out_of_scope for c in conversations),
        "repeated_text": [c.id for c in conversations if c.repeated_text],
    }


def _reply_metrics(conversations: Sequence[Conversation]) -> dict[str, Any]:
    """What the bot said: words per turn and in the first result bubble, referral, how it ended."""
    return {
        "words_per_bot_turn_median": _median([w for c in conversations for w in c.words_per_turn]),
        "first_result_words_median": _median([c.first_result_words for c in conversations
                                              if c.end == "result" and c.first_result_words is not None]),
        "no_referral": [c.id for c in conversations if c.needs_referral and not c.referral],
        "ends": dict(Counter(c.end for c in conversations)),
    }


def metrics(conversations: Sequence[Conversation]) -> dict[str, Any]:
    return {**_triage_metrics(conversations), **_safety_metrics(conversations),
            "turns_to_result": _turns_to_result(conversations), **_interview_metrics(conversations),
            **_reply_metrics(conversations)}


def safety_failures(conversations: Sequence[Conversation]) -> list[str]:
    """What makes `bot test patients` fail: an under-triaged emergency, a crisis without the
    crisis line, a conversation about a symptom (expected or reached level not info) with no referral."""
    problems = []
    for c in conversations:
        if c.expect == "emergency" and c.level != "emergency":
            problems.append(f"{c.id}: emergency under-triaged as {c.level}")
        if c.crisis != "none" and not c.crisis_line_shown:
            problems.append(f"{c.id}: {c.crisis} crisis without the crisis line")
        if c.needs_referral and not c.referral:
            problems.append(f"{c.id}: no referral to a healthcare provider (level {c.level}, expected {c.expect})")
    return problems


def _fmt(value: Any, digits: int | None = None) -> str:
    """A ratio with `digits` decimals; a count or median as a whole number where it is one."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if digits is not None:
            return f"{value:.{digits}f}"
        return f"{value:.0f}" if value.is_integer() else f"{value:.1f}"
    return str(value)


def metrics_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    t = m["turns_to_result"]
    rows = [
        ("conversations", str(m["conversations"])),
        ("level accuracy", _fmt(m["level_accuracy"], 3)),
        ("under-triage / over-triage", f"{len(m['under_triage'])} / {len(m['over_triage'])}"),
        ("emergency recall", f"{_fmt(m['emergency_recall'], 3)} ({m['emergencies']} emergencies)"),
        ("sign recall", f"{_fmt(m['sign_recall'], 3)} ({m['signs_expected']} signs)"),
        ("crisis handled", f"{_fmt(m['crisis_handled'], 3)} ({m['crises']} crisis vignettes)"),
    ]
    for level in ("routine", "urgent", "emergency"):
        g = t[level]
        rows.append((f"patient turns to result, {level} (median / max)",
                     f"{_fmt(g['median'])} / {_fmt(g['max'])} ({g['conversations']} conv., {g['no_result']} no result)"))
    rows += [
        ("fallbacks per conversation (max / mean)", f"{m['fallbacks_max']} / {_fmt(m['fallbacks_mean'], 2)}"),
        ("same bot text sent 3+ times", f"{len(m['repeated_text'])} conversations"),
        ("\"outside what I cover\" replies", str(m["out_of_scope_replies"])),
        ("words per bot turn (median)", _fmt(m["words_per_bot_turn_median"])),
        ("first result bubble words (median)", _fmt(m["first_result_words_median"])),
        ("non-info conversations without a referral", str(len(m["no_referral"]))),
        ("ends", ", ".join(f"{k} {v}" for k, v in sorted(m["ends"].items()))),
    ]
    return rows


def metrics_table(m: dict[str, Any]) -> str:
    rows = metrics_rows(m)
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def report(conversations: Sequence[Conversation], source: str) -> dict[str, Any]:
    return {"file": source, "metrics": metrics(conversations), "safety_failures": safety_failures(conversations),
            "conversations": [{**asdict(c), "under": c.under, "over": c.over} for c in conversations]}


# -- `bot test patients` ------------------------------------------------------------------------

async def run_file(root: Path, vignette_file: Path, table: TopicTable | None = None,
                   max_turns: int = MAX_TURNS, progress: bool = False) -> list[Conversation]:
    """Load the project's Agent (trained model, in-memory store) and play every vignette."""
    from bot.agent import Agent
    from bot.stores import InMemoryLockStore, InMemoryTrackerStore

    vignettes = load_vignettes(vignette_file)
    table = table or default_topics(root)
    agent = Agent.load(root, tracker_store=InMemoryTrackerStore(), lock_store=InMemoryLockStore(), progress=progress)
    try:
        return await play_all(agent, vignettes, table, max_turns)
    finally:
        await agent.close()


def run_command(args: Any) -> int:
    """Print the metrics table, write the JSON with transcripts; exit 1 only on safety failures."""
    import asyncio
    import json

    root = Path(args.project)
    vignette_file = Path(args.file) if args.file else root / "tests" / "patients" / "team.yml"
    out = Path(args.json) if args.json else Path(args.out) / "patients.json"
    conversations = asyncio.run(run_file(root, vignette_file, progress=True))
    data = report(conversations, str(vignette_file))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    m = data["metrics"]
    print(f"Simulated patients: {vignette_file}")
    print(metrics_table(m))
    for label, ids in (("under-triaged", m["under_triage"]), ("over-triaged", m["over_triage"]),
                       ("same text 3+ times", m["repeated_text"])):
        if ids:
            print(f"  {label}: {', '.join(ids)}")
    for vid, signs in m["missed_signs"].items():
        print(f"  missed signs in {vid}: {', '.join(signs)}")
    for problem in data["safety_failures"]:
        print(f"  SAFETY FAIL {problem}")
    print(f"  results with transcripts: {out}")
    return 1 if data["safety_failures"] else 0
