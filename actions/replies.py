"""Replies that answer a request and keep the triage going: the symptom intro, the diagnosis and
dose refusals, someone else's medicine, and "just tell me if it's serious".

A refusal never ends the conversation when the person has described a symptom: the questions
start (or, inside the form, the rule resumes them). The wording lives in domain.yml.
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.knowledge import FORM_INFO_SLOTS, get_knowledge, safety_layer
from actions.parsing import NOT_GIVEN
from actions.results import for_someone_else, with_numbers
from actions.triage import referral_text

FORM = "symptom_form"
MEDICINE_CONCEPT = "medicine"          # knowledge/concepts.yml: the words for a medicine


def _response(tracker: Tracker, domain: Dict[Text, Any], name: str) -> str:
    """`name`, or its third-person `_other` variant when the user asks for someone else."""
    other = f"{name}_other"
    return other if for_someone_else(tracker) and other in (domain.get("responses") or {}) else name


def _since_session(tracker: Tracker) -> List[Dict[str, Any]]:
    events: List[Dict[str, Any]] = []
    for event in tracker.events:
        if event.get("event") in ("session_started", "restart"):
            events = []
        else:
            events.append(event)
    return events


def _ran(tracker: Tracker, action: str) -> bool:
    return any(e.get("event") == "action" and e.get("name") == action for e in _since_session(tracker))


def symptom_described(tracker: Tracker) -> bool:
    """Whether the person has described a back symptom in this session (the safety layer notes a
    back complaint in `patient_facts`; the form's answers and the NLU's symptom entities count too)."""
    if (tracker.get_slot("patient_facts") or {}).get("back"):
        return True
    given = [tracker.get_slot(s) for s in FORM_INFO_SLOTS]
    return any(v not in (None, "", NOT_GIVEN) for v in given) or bool(tracker.get_slot("symptom"))


def triage_open(tracker: Tracker) -> bool:
    """A described symptom whose triage has not been done, stopped by the user, or ended by an
    emergency: the questions should (re)start."""
    return (symptom_described(tracker) and not tracker.active_loop_name
            and not _ran(tracker, "action_triage_result") and not _ran(tracker, "action_deactivate_loop")
            and tracker.get_slot("triage_level") != "emergency")


def keep_the_thread(dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
    """After a refusal: start the questions when a symptom was described and its triage is open.
    Inside the form nothing is needed: the rule runs the form again."""
    if not triage_open(tracker):
        return []
    dispatcher.utter_message(response=_response(tracker, domain, "utter_questions_instead"))
    return [FollowupAction(FORM)]


def someone_elses_medicine(text: str) -> bool:
    """"Can I take my husband's tramadol?": a medicine mentioned as someone else's."""
    return bool(text) and safety_layer().screener.someone_elses(text, MEDICINE_CONCEPT)


class ActionSymptomIntro(Action):
    """Opens the questions: in the third person when the report is about someone else, and with
    the warning against someone else's prescription when the report mentions one."""

    def name(self) -> Text:
        return "action_symptom_intro"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        if someone_elses_medicine((tracker.latest_message or {}).get("text") or ""):
            dispatcher.utter_message(response="utter_others_medicine")
        dispatcher.utter_message(response=_response(tracker, domain, "utter_symptom_intro"))
        return []


class ActionRefuseDiagnosis(Action):
    """"What do I have?" / "is it sciatica?": no diagnosis, why not, and the triage goes on."""

    def name(self) -> Text:
        return "action_refuse_diagnosis"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        dispatcher.utter_message(response="utter_cannot_diagnose")
        return keep_the_thread(dispatcher, tracker, domain)


class ActionMedication(Action):
    """Medicine questions: never a dose; someone else's prescription gets a clear "don't"; then
    the triage goes on."""

    def name(self) -> Text:
        return "action_medication"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        text = (tracker.latest_message or {}).get("text") or ""
        dispatcher.utter_message(response="utter_others_medicine" if someone_elses_medicine(text) else "utter_medication")
        return keep_the_thread(dispatcher, tracker, domain)


class ActionAnswerSerious(Action):
    """"Just tell me if it's serious": the honest answer (not without a few questions), then only
    the danger-sign checklists: the other questions are marked not given, so the form asks only
    the screening. After a result, the advice of that result stands."""

    def name(self) -> Text:
        return "action_answer_serious"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        level = tracker.get_slot("triage_level")
        if _ran(tracker, "action_triage_result") or level == "emergency":
            text = referral_text(get_knowledge(), level if level != "info" else "routine", other=for_someone_else(tracker))
            dispatcher.utter_message(response="utter_serious_answered")
            dispatcher.utter_message(text=with_numbers(text, tracker))
            return []
        dispatcher.utter_message(response=_response(tracker, domain, "utter_serious_honest"))
        events: List[EventType] = [SlotSet(s, NOT_GIVEN) for s in FORM_INFO_SLOTS if tracker.get_slot(s) is None]
        if not tracker.active_loop_name:
            events.append(FollowupAction(FORM))
        return events


def complains_about_a_back(tracker: Tracker) -> bool:
    """Whether the latest message itself describes a back complaint (the user's or someone
    else's), as the safety layer's screen reads it -- whatever intent the NLU gave it."""
    text = (tracker.latest_message or {}).get("text") or ""
    return bool(text) and bool(safety_layer().screener.screen(text).back_subjects)


class ActionOutOfScope(Action):
    """"That's outside what I cover" -- unless the message describes a back complaint whose
    triage is open (the NLU took "my son hurt his back at work..." for something else): then the
    questions start, as for any symptom report."""

    def name(self) -> Text:
        return "action_out_of_scope"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        if tracker.active_loop_name:
            # inside the questions: say so, and the rule asks the open question again
            dispatcher.utter_message(response="utter_out_of_scope_in_form")
            return []
        if triage_open(tracker) and complains_about_a_back(tracker):
            dispatcher.utter_message(response=_response(tracker, domain, "utter_symptom_intro"))
            return [FollowupAction(FORM)]
        dispatcher.utter_message(response="utter_out_of_scope")
        return []


class ActionNotUnderstood(Action):
    """Low NLU confidence: when the message is a back complaint whose triage is open (the safety
    layer read it as one), the questions start instead of "Sorry, I didn't get that"."""

    def name(self) -> Text:
        return "action_not_understood"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        if triage_open(tracker):
            dispatcher.utter_message(response=_response(tracker, domain, "utter_symptom_intro"))
            return [FollowupAction(FORM)]
        dispatcher.utter_message(response="utter_default")
        return []
