"""Actions that answer the user: triage result, self-care, visit summary, "why do you ask?"."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.knowledge import Knowledge, get_knowledge, guarded, safety_layer
from actions.parsing import NOT_GIVEN
from actions.triage import (
    Report,
    conditions_text,
    fitting_self_care,
    picture_for,
    referral_text,
    related_conditions,
    result_text,
    self_care_text,
    user_texts,
)
MAX_SELF_CARE_ITEMS = 7   # the best-fitting first; a long list is not read
SUMMARY_OWN_WORDS = 8
SUMMARY_MIN_WORDS = 4
# Answers and requests that say nothing about the back, left out of "in their own words".
SUMMARY_SKIP_INTENTS = (
    "affirm", "deny", "skip", "why_ask", "stop", "thank", "goodbye", "greet", "request_summary",
    "bot_challenge", "help",
)
SUMMARY_NOTE = "This summary is not a diagnosis. It lists what was reported in a chat with Backline, an automated helper."


NUMBER_SLOTS = ("emergency_number", "crisis_line")


def with_numbers(text: str, tracker: Tracker) -> str:
    """`text` with {emergency_number} / {crisis_line} filled in from their slots. Real Rasa
    fills placeholders only in domain responses and sends an action's text as it is, so a bare
    placeholder would reach the user; Backline's engine would fill them either way."""
    for slot in NUMBER_SLOTS:
        value = tracker.get_slot(slot)
        if value:
            text = text.replace("{" + slot + "}", str(value))
    return text


def _say(dispatcher: CollectingDispatcher, tracker: Tracker, text: str) -> None:
    dispatcher.utter_message(text=guarded(with_numbers(text, tracker)))


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or None
    return str(value).strip() or None


def _report(tracker: Tracker) -> Report:
    symptoms = tracker.get_slot("symptom") or []
    if isinstance(symptoms, str):
        symptoms = [symptoms]
    return Report(
        texts=tuple(user_texts(tracker.events)),
        body_part=_text(tracker.get_slot("body_part")),
        symptoms=tuple(str(s) for s in symptoms),
        duration=_text(tracker.get_slot("duration")),
        severity=_text(tracker.get_slot("severity")),
        trigger=_text(tracker.get_slot("trigger")),
    )


def _reported_symptom(report: Report, tracker: Tracker) -> bool:
    """Whether the user has described a back symptom in this session (then at least routine)."""
    given = (report.body_part, report.duration, report.severity, report.trigger)
    return any(v and v != NOT_GIVEN for v in given) or bool(report.symptoms or tracker.get_slot("conditions"))


def _level(tracker: Tracker) -> str:
    """The triage level the safety layer decided (bot/safety is its only writer)."""
    level = tracker.get_slot("triage_level")
    return level if level in ("info", "routine", "urgent", "emergency") else "info"


def for_someone_else(tracker: Tracker) -> bool:
    """Whether the user is asking about someone else's back (the safety layer decides whose)."""
    return (tracker.get_slot("patient_facts") or {}).get("patient") == "other"


def _result_level(tracker: Tracker, report: Report) -> str:
    """The level for wording: a result or advice after a reported symptom is at least routine."""
    level = _level(tracker)
    return "routine" if level == "info" and _reported_symptom(report, tracker) else level


class ActionTriageResult(Action):
    """After `symptom_form`: a short first bubble (the referral at the level and the related
    article conditions in a sentence), then the safety net. Self-care, the sources and the visit
    summary are one tap away (utter_result_options, a rule step after this action)."""

    def name(self) -> Text:
        return "action_triage_result"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        knowledge = get_knowledge()
        report = _report(tracker)
        # The safety layer raised the level to routine when the symptom was reported.
        level = _level(tracker)
        if level == "info":
            level = "routine"          # wording only: a result always follows a reported symptom
        other = for_someone_else(tracker)
        condition_ids = related_conditions(knowledge, report)
        warning_sign = bool(tracker.get_slot("red_flags"))
        _say(dispatcher, tracker, result_text(knowledge, level, condition_ids, report.duration_weeks(), other, warning_sign))
        _say(dispatcher, tracker, knowledge.safety_net_other if other else knowledge.safety_net)
        return [SlotSet("conditions", condition_ids)]


class ActionResultDetails(Action):
    """"Sources and details": why the advice is what it is (each danger sign's reason and the
    guidance it follows), the related conditions with what they are, and every source."""

    def name(self) -> Text:
        return "action_result_details"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        knowledge = get_knowledge()
        safety = safety_layer()
        report = _report(tracker)
        whom = "them" if for_someone_else(tracker) else "you"
        condition_ids = [c for c in tracker.get_slot("conditions") or [] if c in knowledge.conditions]
        if not condition_ids and not tracker.get_slot("conditions") and _reported_symptom(report, tracker):
            condition_ids = related_conditions(knowledge, report)
        flags = [f for f in tracker.get_slot("red_flags") or [] if f in safety.signs]
        if flags:
            lines = ["Why this advice:"]
            for flag in flags:
                sign = safety.signs[flag]
                guidance = safety.screener.rules.guidance.get(sign.source, sign.source)
                lines.append(f"• {sign.reason} (This follows {guidance}.)")
            _say(dispatcher, tracker, "\n".join(lines))
        _say(dispatcher, tracker, conditions_text(knowledge, condition_ids, whom))
        net = safety.screener.rules.guidance.get(knowledge.safety_net_guidance, knowledge.safety_net_guidance)
        _say(dispatcher, tracker, f"The advice to see a healthcare provider follows the reference article "
                                  f"({knowledge.citation(knowledge.referral_source)}); the warning signs to watch for "
                                  f"follow clinical guidance ({net}). "
                                  + referral_text(knowledge, _result_level(tracker, report), report.duration_weeks(),
                                                  whom == "them"))
        return []


class ActionSelfCare(Action):
    """Self-care that fits the picture (self_care.yml `pictures`): comfort measures only while a
    danger sign waits for a clinician; pregnancy, desk and lifting strain get their items first;
    otherwise the related conditions' items. Each item with its source, then the referral."""

    def name(self) -> Text:
        return "action_self_care"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        knowledge = get_knowledge()
        report = _report(tracker)
        condition_ids = [c for c in tracker.get_slot("conditions") or [] if c in knowledge.conditions]
        level = _result_level(tracker, report)
        other = for_someone_else(tracker)
        whom = "them" if other else "you"
        picture = picture_for(knowledge, tracker.get_slot("red_flags") or [], report.texts, condition_ids)
        if level == "emergency":
            _say(dispatcher, tracker, referral_text(knowledge, level, other=other))
            return []
        if picture is not None:
            intro = picture.intro.format(whom=whom)
        elif condition_ids:
            names = ", ".join(knowledge.conditions[c].name for c in condition_ids)
            intro = f"Self-care ideas the article describes for problems like {names}:"
        else:
            intro = "General self-care ideas the article describes for sore back muscles:"
        items = fitting_self_care(knowledge, picture, condition_ids)[:MAX_SELF_CARE_ITEMS]
        _say(dispatcher, tracker, self_care_text(knowledge, items, intro))
        referral = referral_text(knowledge, level, other=other)
        if level in ("info", "routine"):
            referral = f"{referral} {knowledge.meanwhile}"
        _say(dispatcher, tracker, referral)
        return []


class ActionVisitSummary(Action):
    """A short summary to bring to a provider, as text and as a downloadable payload."""

    def name(self) -> Text:
        return "action_visit_summary"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        knowledge = get_knowledge()
        summary = build_summary(knowledge, tracker)
        _say(dispatcher, tracker, summary_text(knowledge, summary))
        dispatcher.utter_message(json_message={"visit_summary": summary})
        return []


def _plain(text: Optional[str]) -> Optional[str]:
    """User words without braces: the engine fills {placeholders} in every outgoing text."""
    return text.replace("{", "(").replace("}", ")") if isinstance(text, str) else text


def _own_words(tracker: Tracker) -> List[str]:
    """The user's descriptions, without short answers ("7", "lower back") already in the slots."""
    texts = [t for t in user_texts(tracker.events, SUMMARY_SKIP_INTENTS) if len(t.split()) >= SUMMARY_MIN_WORDS]
    return texts[-SUMMARY_OWN_WORDS:]


def build_summary(knowledge: Knowledge, tracker: Tracker) -> Dict[str, Any]:
    report = _report(tracker)
    screening: Dict[str, Dict[str, Optional[str]]] = {}
    safety = safety_layer()
    for slot in knowledge.screen_slots():
        if slot in safety.checklists:
            continue                 # a grouped question: its single answers are listed instead
        value = tracker.get_slot(slot)
        answer = "not asked" if value is None else ("present or unsure" if value else "absent")
        question = knowledge.questions[slot]
        screening[slot] = {"question": question.label, "flag": safety.screen_slots.get(slot), "answer": answer}
    level = _level(tracker)
    if level == "info" and _reported_symptom(report, tracker):
        level = "routine"
    return {
        "date": datetime.now(timezone.utc).date().isoformat(),
        "about": about(tracker),
        "reported": {
            "body_part": _plain(report.body_part),
            "duration": _plain(report.duration),
            "severity": _plain(report.severity),
            "trigger": _plain(report.trigger),
            "symptoms": [_plain(s) for s in report.symptoms],
        },
        "own_words": [_plain(t) for t in _own_words(tracker)],
        "screening": screening,
        "red_flags": list(tracker.get_slot("red_flags") or []),
        "triage_level": level,
        "advice": with_numbers(knowledge.referral_short[level], tracker),
        "related_conditions": [
            {"id": c, "name": knowledge.conditions[c].name}
            for c in tracker.get_slot("conditions") or []
            if c in knowledge.conditions
        ],
        "note": SUMMARY_NOTE,
    }


def about(tracker: Tracker) -> Dict[str, Any]:
    """Who the report is about: the user ("self") or someone else ("other", with the words that
    named them, "mum"), and their age when it was said (the safety layer keeps both)."""
    facts = tracker.get_slot("patient_facts") or {}
    patient = "other" if facts.get("patient") == "other" else "self"
    who = None
    if patient == "other":
        screener = safety_layer().screener
        who = next((words[0] for words in map(screener.other_people, user_texts(tracker.events)) if words), None)
    age = facts.get("age")
    return {"patient": patient, "who": _plain(who), "age": int(age) if isinstance(age, (int, float)) else None}


def about_text(summary_about: Dict[str, Any]) -> str:
    age = f", aged {summary_about['age']}" if summary_about.get("age") is not None else ""
    if summary_about.get("patient") != "other":
        return f"- About: the person who used the chat{age}"
    who = f", the user's {summary_about['who']}" if summary_about.get("who") else ""
    return f"- About: someone else{who}{age} (reported by the user, not by the patient)"


def summary_text(knowledge: Knowledge, summary: Dict[str, Any]) -> str:
    def shown(value: Optional[str]) -> str:
        return value if value and value != NOT_GIVEN else "not given"

    reported = summary["reported"]
    severity = reported["severity"]
    lines = [
        f"Visit summary ({summary['date']})",
        summary["note"],
        "",
        "What was reported:",
        about_text(summary.get("about") or {}),
        f"- Where: {shown(reported['body_part'])}",
        f"- How long: {shown(reported['duration'])}",
        f"- Pain score: {shown(severity) + '/10' if severity and severity != NOT_GIVEN else 'not given'}",
        f"- Started with or worse with: {shown(reported['trigger'])}",
    ]
    if reported["symptoms"]:
        lines.append(f"- Symptoms mentioned: {', '.join(reported['symptoms'])}")
    if summary["own_words"]:
        whose = "the user's" if (summary.get("about") or {}).get("patient") == "other" else "their"
        lines.append(f"- In {whose} own words: " + " / ".join(f"\"{t}\"" for t in summary["own_words"]))
    lines += ["", "Warning-sign questions:"]
    for item in summary["screening"].values():
        lines.append(f"- {item['question']}: {item['answer']}")
    flags = summary["red_flags"]
    lines.append(f"Warning signs noted: {', '.join(f.replace('_', ' ') for f in flags) if flags else 'none'}")
    lines.append(f"Suggested urgency: {summary['advice']}")
    related = summary["related_conditions"]
    if related:
        lines.append("Conditions the reference article links to symptoms like these: " + ", ".join(c["name"] for c in related))
    lines.append("Please show this to your healthcare provider; they will make their own assessment.")
    # Markdown (rasa-webchat, chatroom) folds single line breaks: end lines with a hard break
    # ("  "); blank lines stay paragraph breaks (channels split messages there, as Rasa does).
    return "\n".join(line + "  " if line and nxt else line
                     for line, nxt in zip(lines, lines[1:] + [""]))


class ActionExplainQuestion(Action):
    """Answers "why do you ask?" for the question the form is asking right now."""

    def name(self) -> Text:
        return "action_explain_question"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        knowledge = get_knowledge()
        slot = tracker.get_slot("requested_slot")
        if tracker.active_loop_name and slot in knowledge.questions:
            _say(dispatcher, tracker, knowledge.questions[slot].why)
        elif tracker.active_loop_name:
            _say(dispatcher, tracker, knowledge.general_why)
        else:
            dispatcher.utter_message(response="utter_why_general")
        return []
