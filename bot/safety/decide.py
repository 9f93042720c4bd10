"""The one owner of the safety slots: `triage_level`, `red_flags`, `alerted_flags`, `screen_*`,
`safety_question` and `patient_facts`.

`SafetyLayer.decide(slots, text)` is a pure function of the conversation's slots and the latest
user message. Backline's processor calls it on every message before any other dialogue logic;
a real Rasa bot calls it from the rasa-sdk action `action_validate_slot_mappings` (actions/safety.py).
It returns plain rasa-sdk event dicts, the alerts to send and the question to ask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from bot.safety.answers import NO, UNSURE, YES, AnswerWords, read_answer
from bot.safety.data import load_yaml
from bot.safety.rules import CRISIS_SIGN, SIGNS_FILE, Sign
from bot.safety.detector import DangerDetector
from bot.safety.screen import SUSPECTED, Finding, Screen, Screener
from bot.safety.triage import level_rank, raise_level

SAFETY_SLOTS = ("triage_level", "red_flags", "alerted_flags", "safety_question", "patient_facts", "sign_reason",
                "sign_source")
SYMPTOM_INTENTS = frozenset({"report_symptom"})
INFORMATION_INTENTS = frozenset({"ask_self_care", "ask_when_to_see_provider", "ask_medication", "help"})
# A question or request in reply to a screening question is not an unclear answer to it
# ("is it a slipped disc?", "why do you ask?"): it is answered, and the question asked again.
NOT_ANSWERS = INFORMATION_INTENTS | {"ask_diagnosis", "ask_serious", "why_ask", "stop", "bot_challenge",
                                     "request_summary", "request_details"}
FORM = "symptom_form"
BARE_ANSWER_WORDS = 4     # a yes/no answer this short is not read by the learned backstop
MAX_UNCLEAR = 2          # a screening question answered unclearly twice counts as "not sure" (present)
MAX_REASONS = 2


@dataclass(frozen=True)
class Alert:
    response: str                        # utter_emergency | utter_urgent | utter_crisis (domain.yml)
    values: dict[str, str]               # template values: sign_reason, sign_source
    signs: tuple[str, ...]


@dataclass(frozen=True)
class Question:
    sign: str
    text: str


@dataclass
class Decision:
    events: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    question: Question | None = None     # a suspected sign's screening question, asked now
    stop: bool = False                   # emergency or crisis: end the questions and the turn
    answered: bool = False               # the message answered the open safety question
    screen: Screen = field(default_factory=Screen)

    def slot(self, name: str) -> Any:
        """The value this decision gives `name`, or KeyError."""
        for event in reversed(self.events):
            if event.get("event") == "slot" and event.get("name") == name:
                return event.get("value")
        raise KeyError(name)


def _asks_for_information(intent: str | None) -> bool:
    return bool(intent) and (intent.startswith("faq") or intent in INFORMATION_INTENTS)


def _not_an_answer(intent: str | None) -> bool:
    return bool(intent) and (intent.startswith("faq") or intent in NOT_ANSWERS)


def _slot(name: str, value: Any) -> dict[str, Any]:
    return {"event": "slot", "timestamp": None, "name": name, "value": value}


@dataclass
class _Turn:
    """One message's working state inside `SafetyLayer.decide`."""
    slots: Mapping[str, Any]
    intent: str | None
    active_loop: str | None
    facts: dict[str, Any]
    level: str
    flags: list[str]
    alerted: list[str]
    requested: str | None
    open_question: str | None
    asked: str | None
    checklist: tuple[str, ...] | None
    answer: str | None
    screen: Screen
    decision: Decision
    present: list[str]
    negated: list[str]
    unclear: dict[str, int]
    reask: Question | None = None


class SafetyLayer:
    """The danger-sign screen, the triage decision and the output guard, loaded once."""

    def __init__(self, screener: Screener, answers: AnswerWords, detector: DangerDetector | None = None) -> None:
        self.screener = screener
        self.detector = detector
        self.signs: dict[str, Sign] = screener.signs
        self.answers = answers
        self.screen_slots = {s.screen_slot: s.id for s in self.signs.values() if s.screen_slot}
        self.checklists = screener.rules.checklists        # grouped question slot -> signs

    @classmethod
    def load(cls, knowledge_dir: Path, detector: DangerDetector | None = None) -> "SafetyLayer":
        """The rules from `knowledge_dir`; `detector`: the learned backstop `bot train` made."""
        knowledge_dir = Path(knowledge_dir)
        data = load_yaml(knowledge_dir / SIGNS_FILE)
        return cls(Screener.load(knowledge_dir), AnswerWords.from_data(data.get("answers") or {}), detector)

    def level_of(self, sign: str) -> str:
        return self.signs[sign].level if sign in self.signs else "urgent"

    def owns(self, slot: str) -> bool:
        return slot in SAFETY_SLOTS or slot in self.screen_slots or slot in self.checklists

    # -- the decision ----------------------------------------------------------------------------

    def decide(self, slots: Mapping[str, Any], text: str, intent: str | None = None,
               active_loop: str | None = None) -> Decision:
        """What the latest message means for safety, given the conversation's slots, the
        message's intent and the active form (whose `requested_slot` is the open question).
        Read top to bottom: screen the message with its question, read the answer, keep the
        facts, raise signs and level, alert, and ask what is only suspected."""
        turn = self._turn(slots, text, intent, active_loop)
        self._read_single_answer(turn)
        self._read_checklist_answer(turn)
        self._read_safety_answer(turn)
        new_facts = self._facts(turn)
        new_flags = self._signs_and_level(turn, new_facts)
        self._alert(turn, new_flags)
        if not turn.decision.stop:
            self._ask(turn, new_flags, new_facts)
        if new_facts != turn.facts:
            turn.decision.events.append(_slot("patient_facts", new_facts))
        return turn.decision

    def _turn(self, slots: Mapping[str, Any], text: str, intent: str | None, active_loop: str | None) -> "_Turn":
        """The message screened with the question it answers, and the answer read."""
        facts = dict(slots.get("patient_facts") or {})
        level = slots.get("triage_level") or "info"
        requested = slots.get("requested_slot") if active_loop == FORM else None
        open_question = slots.get("safety_question")
        asked = open_question or self.screen_slots.get(requested)
        screen = self._screen(text, intent, facts, level, requested, asked)
        checklist = self.checklists.get(requested) if not open_question else None
        answer = read_answer(text, intent, self.answers, single=bool(asked)) if (asked or checklist) else None
        if not (answer is not None and len(text.split()) <= BARE_ANSWER_WORDS):
            self._backstop(screen, slots)       # "none of them" answering a question is only that
        return _Turn(slots=slots, intent=intent, active_loop=active_loop, facts=facts, level=level,
                     flags=list(slots.get("red_flags") or []), alerted=list(slots.get("alerted_flags") or []),
                     requested=requested, open_question=open_question, asked=asked, checklist=checklist,
                     answer=answer, screen=screen, decision=Decision(screen=screen),
                     present=list(screen.present), negated=list(screen.negated),
                     unclear=dict(facts.get("unclear") or {}))

    def _screen(self, text: str, intent: str | None, facts: dict[str, Any], level: str, requested: str | None,
                asked: str | None) -> Screen:
        """The message screened with the question it answers and what earlier turns established."""
        back_context = bool(facts.get("back")) or level_rank(level) >= level_rank("routine")
        return self.screener.screen(
            text, asked=asked, asked_slot=requested or (self.signs[asked].screen_slot if asked else None),
            patient=facts.get("patient"), facts=frozenset(facts.get("seen", ())), back_context=back_context,
            question=_asks_for_information(intent))

    def _read_single_answer(self, t: "_Turn") -> None:
        """The answer to one sign's question: yes / not sure is the sign, no rules it out."""
        if not t.asked or t.asked in t.present:
            return
        if t.answer in (YES, UNSURE):
            t.present.append(t.asked)
        elif t.answer == NO and t.asked not in t.negated:
            t.negated.append(t.asked)
        elif t.open_question == CRISIS_SIGN and t.answer is None:
            t.present.append(t.asked)          # an unclear answer to the crisis question: crisis reply
        elif t.answer is None and t.asked not in t.negated and not t.open_question and not _not_an_answer(t.intent):
            # an answer that says neither: asked again in other words; twice unclear = not sure
            t.unclear[t.requested] = t.unclear.get(t.requested, 0) + 1
            if t.unclear[t.requested] >= MAX_UNCLEAR:
                t.present.append(t.asked)

    def _read_checklist_answer(self, t: "_Turn") -> None:
        if not t.checklist:
            return
        outcome = self._checklist(t.checklist, t.answer, t.present, t.negated)
        if outcome is None and not _not_an_answer(t.intent):
            t.unclear[t.requested] = t.unclear.get(t.requested, 0) + 1
            outcome = "unclear" if t.unclear[t.requested] >= MAX_UNCLEAR else None
        if outcome is not None and t.slots.get(t.requested) is None:
            t.decision.events.append(_slot(t.requested, outcome))

    def _read_safety_answer(self, t: "_Turn") -> None:
        """The answer to an open safety question (a suspected sign's, the crisis question)."""
        question = t.open_question
        if not question:
            return
        t.decision.answered = t.answer is not None or question in t.present or question in t.negated
        if not t.decision.answered and question != CRISIS_SIGN and not _not_an_answer(t.intent):
            # neither yes nor no ("a car accident, years ago"): asked once more, then not sure
            key = f"safety:{question}"
            t.unclear[key] = t.unclear.get(key, 0) + 1
            if t.unclear[key] >= MAX_UNCLEAR:
                t.present.append(question)
                t.decision.answered = True
            elif question in self.signs:
                t.reask = Question(question, self.answers.reask.format(question=self.signs[question].question))
        if t.decision.answered or question == CRISIS_SIGN:
            t.decision.events.append(_slot("safety_question", None))

    @staticmethod
    def _facts(t: "_Turn") -> dict[str, Any]:
        """Facts for later turns: whose triage this is, their age, what was said before."""
        screen, facts = t.screen, t.facts
        new_facts = dict(facts)
        if "patient" not in facts and (screen.back_subjects or screen.present):
            new_facts["patient"] = screen.patient
        symptom_intent = t.intent in SYMPTOM_INTENTS and not screen.other_complaint   # not "severe earache"
        if screen.back_subjects or symptom_intent:
            new_facts["back"] = True
        if screen.age is not None:
            new_facts["age"] = screen.age
        seen = sorted(set(facts.get("seen", ())) | screen.facts)
        if seen:
            new_facts["seen"] = seen
        if t.unclear:
            new_facts["unclear"] = t.unclear
        return new_facts

    def _signs_and_level(self, t: "_Turn", new_facts: dict[str, Any]) -> list[str]:
        """Danger signs accumulate, the level only rises; the screening slots are answered."""
        new_flags = [s for s in t.present if s not in t.flags]
        if new_flags:
            t.decision.events.append(_slot("red_flags", t.flags + new_flags))
        new_level = t.level
        for sign in t.present:
            new_level = raise_level(new_level, self.level_of(sign))
        if new_facts.get("back"):
            new_level = raise_level(new_level, "routine")
        if new_level != t.level:
            t.decision.events.append(_slot("triage_level", new_level))
        for sign in t.present + t.negated:
            slot = self.signs[sign].screen_slot if sign in self.signs else None
            if slot and t.slots.get(slot) is None:
                t.decision.events.append(_slot(slot, sign in t.present))
        return new_flags

    def _alert(self, t: "_Turn", new_flags: list[str]) -> None:
        """Alerts for signs not announced yet; an emergency or crisis ends the questions."""
        decision = t.decision
        to_alert = [s for s in t.flags + new_flags if s not in t.alerted]
        if to_alert:
            decision.alerts = self._alerts(to_alert)
            decision.events.append(_slot("alerted_flags", t.alerted + to_alert))
            for name in ("sign_reason", "sign_source"):
                decision.events.append(_slot(name, decision.alerts[-1].values[name]))
            decision.stop = any(a.response in ("utter_emergency", "utter_crisis") for a in decision.alerts)
        if decision.stop and t.active_loop:
            decision.events += [{"event": "active_loop", "timestamp": None, "name": None},
                                _slot("requested_slot", None)]

    def _ask(self, t: "_Turn", new_flags: list[str], new_facts: dict[str, Any]) -> None:
        """A sign that is only suspected is asked about at once (never left unasked)."""
        question = self._question(t.screen, t.slots, t.flags + new_flags, new_facts, t.open_question) or t.reask
        if question is not None:
            t.decision.question = question
            t.decision.events.append(_slot("safety_question", question.sign))
            new_facts["asked"] = sorted(set(new_facts.get("asked", ())) | {question.sign})

    @staticmethod
    def _checklist(signs: tuple[str, ...], answer: str | None, present: list[str], negated: list[str]) -> str | None:
        """Read an answer to a grouped question; updates `present`/`negated` and says what it was:
        none (every sign no), found (the named ones yes, the rest no), unclear (ask each), or
        None (not an answer yet: asked again, with its choices; the second time it is unclear)."""
        named = [s for s in signs if s in present]
        if named and answer != UNSURE:
            negated += [s for s in signs if s not in present and s not in negated]
            return "found"
        if named:
            return "unclear"
        if answer == NO:
            negated += [s for s in signs if s not in negated]
            return "none"
        if answer == UNSURE or any(s in negated for s in signs):
            return "unclear"       # not sure, or only some ruled out ("no leaking"): ask the rest one by one
        return None                # a bare "yes" names none of them: asked once more which (then unclear)

    def _backstop(self, screen: Screen, slots: Mapping[str, Any]) -> None:
        """Signs the learned detector suspects and the rules neither found nor ruled out: asked."""
        if self.detector is None or screen.text is None:
            return
        known = set(screen.present) | set(screen.negated) | set(screen.suspected) | set(slots.get("red_flags") or [])
        for sign_id in self.detector.suspects(screen.text):
            sign = self.signs.get(sign_id)
            if sign is None or sign_id in known or (sign.back_only and screen.other_complaint):
                continue
            screen.findings.append(Finding(sign_id, sign.level, SUSPECTED, via="detector"))

    def _question(self, screen: Screen, slots: Mapping[str, Any], flags: list[str], facts: dict[str, Any],
                  open_question: str | None) -> Question | None:
        asked_before = set(facts.get("asked", ()))
        candidates = []
        for sign_id in screen.suspected:
            sign = self.signs[sign_id]
            if sign_id in flags or sign_id == open_question or sign_id in asked_before:
                continue
            if sign.screen_slot and slots.get(sign.screen_slot) is not None:
                continue                        # already answered
            candidates.append(sign)
        if not candidates:
            return None
        order = list(self.signs)
        # the rules' own suspicion before the learned backstop's guess ("my left arm feels heavy
        # and numb": the chest, not the saddle area)
        by_rules = {f.sign for f in screen.findings if f.status == SUSPECTED and f.via != "detector"}
        best = min(candidates, key=lambda s: (s.id != CRISIS_SIGN, -level_rank(s.level), s.id not in by_rules,
                                              order.index(s.id)))
        return Question(best.id, best.question)

    def _alerts(self, signs: list[str]) -> list[Alert]:
        out = []
        if CRISIS_SIGN in signs:
            sign = self.signs[CRISIS_SIGN]
            out.append(Alert("utter_crisis", {"sign_reason": sign.reason, "sign_source": self._source(sign)},
                             (CRISIS_SIGN,)))
        for level, response in (("emergency", "utter_emergency"), ("urgent", "utter_urgent")):
            group = [self.signs[s] for s in signs if s != CRISIS_SIGN and s in self.signs and self.signs[s].level == level]
            if group:
                shown = group[:MAX_REASONS]
                out.append(Alert(response, {
                    "sign_reason": " ".join(s.reason for s in shown),
                    "sign_source": "; ".join(dict.fromkeys(self._source(s) for s in shown)),
                }, tuple(s.id for s in group)))
                break                           # the most urgent level speaks; lower ones are covered
        return out

    def _source(self, sign: Sign) -> str:
        return self.screener.rules.guidance.get(sign.source, sign.source)
