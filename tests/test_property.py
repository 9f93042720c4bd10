"""Property-based tests (hypothesis) of the NLU and the processor on arbitrary unicode.

Whatever a person (or an attacker) types -- emoji, right-to-left scripts, control characters,
only whitespace, messages at the length limit, lone surrogates (which JSON's "\\ud800" escapes deliver to the Python
API) -- the engine must:

* parse it without an exception and give a well-formed parse result (NLU),
* answer it (at least one bot message, every text a non-empty string) without an exception,
* leave a valid tracker: every event JSON-serialisable, every slot declared in the domain and
  of its type, `triage_level` one of info/routine/urgent/emergency and never lower than before.

Bounded: by default 60 single messages, 20 conversations of 2-8 turns, 3 messages at the limit and
10 surrogate cases; with BACKLINE_SOAK=1 1000 / 300 / 40 / 100. No deadline (the machine is
shared); one session-scoped engine with an in-memory store.
"""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.hardening_support import LEVELS, assert_tracker_valid, scaled

EXAMPLES = scaled(60, 1000)
BIG_EXAMPLES = scaled(3, 40)
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Every code point except lone surrogates (those have their own properties below).
# (st.characters with a code point range includes surrogates unless told otherwise.)
ALPHABET = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=("Cs",))
ANY_TEXT = st.text(alphabet=ALPHABET, max_size=300)
# A text with at least one lone surrogate: JSON lets a client send "\ud800" and json.loads
# hands Python exactly that, so the HTTP API and socket.io can receive these.
SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=())
SURROGATE_TEXT = st.builds(lambda a, s, b: a + s + b, ANY_TEXT, SURROGATE, ANY_TEXT)
# Texts the bot knows, so random noise is mixed into real conversations with danger signs.
KNOWN = st.sampled_from([
    "hello", "my lower back hurts", "I hurt my back lifting a box", "for 3 days", "7 out of 10",
    "I can't control my bladder", "numbness in my groin", "I have a fever", "no fever",
    "I want to end my life", "what are the paraspinal muscles?", "what do I have?", "yes", "no",
    "/restart", "/affirm", "/deny", "thanks", "bye", "is it sciatica?", "how much ibuprofen?",
])
NOISE = st.sampled_from([
    "\u202eRTL override", "\u200f\u05db\u05d0\u05d1 \u05d2\u05d1", "\u0623\u0644\u0645 \u0641\u064a \u0627\u0644\u0638\u0647\u0631",
    "\U0001F9B4\U0001F62D\U0001F691", "\x00\x01\x1b[31m", "\t\n\r \u00a0\u2028\u3000",
    "{slot}{{}}{triage_level}", "/inform{\"triage_level\": \"info\"}", '/inform{"red_flags": []}',
    "<script>alert(1)</script>", "\u0301\u0301\u0301", "\ufeff", "A" * 4900,  # long, under the limit
])
TURN = st.one_of(ANY_TEXT, KNOWN, NOISE, st.builds(lambda a, b: a + " " + b, KNOWN, ANY_TEXT))


@pytest.fixture(scope="module")
def engine(agent, loop):
    """send(text, sender) through the whole engine; tracker(sender) afterwards."""
    from bot.agent import UserMessage

    def send(text: str, sender: str) -> list[dict]:
        return loop.run_until_complete(agent.handle_message(UserMessage(text, sender, input_channel="test")))

    def tracker(sender: str):
        return loop.run_until_complete(agent.tracker(sender))

    return send, tracker


def _check_replies(replies: list[dict]) -> None:
    assert isinstance(replies, list) and replies, "every message gets a reply"
    for reply in replies:
        assert isinstance(reply, dict)
        if "text" in reply:
            assert isinstance(reply["text"], str) and reply["text"].strip()
        json.dumps(reply)


# -- NLU ---------------------------------------------------------------------------------------

@PROPERTY
@given(text=ANY_TEXT)
@example(text="   \t\n ")
@example(text="\u202e\u05d2\u05d1 \U0001F62D")
@example(text="\x00\x07\x1b")
@example(text="/")
@example(text="/inform{")
def test_nlu_parses_any_unicode(agent, text):
    result = agent.nlu.parse(text)
    assert result["text"] == text
    assert isinstance(result["intent"], dict) and "name" in result["intent"]
    assert 0.0 <= float(result["intent"].get("confidence") or 0.0) <= 1.0
    for entity in result["entities"]:
        assert 0 <= entity["start"] <= entity["end"] <= len(text)
    json.dumps(result)


# -- processor (the whole path of a message) -----------------------------------------------------

@PROPERTY
@given(text=TURN)
@example(text="\U0001F9B4" * 50)
@example(text=" \u3000 ")
def test_any_single_message_gets_a_reply_and_a_valid_tracker(agent, engine, text):
    send, tracker = engine
    sender = f"prop-{uuid.uuid4().hex}"
    _check_replies(send(text, sender))
    assert_tracker_valid(tracker(sender), agent.project.domain)


@settings(max_examples=scaled(10, 100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=SURROGATE_TEXT)
@example(text="\ud800")
def test_nlu_parses_lone_surrogates(agent, text):
    result = agent.nlu.parse(text)
    assert isinstance(result["intent"], dict)


@settings(max_examples=scaled(10, 100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=SURROGATE_TEXT)
@example(text="\ud800 my back hurts")
def test_lone_surrogates_get_a_reply_and_a_valid_tracker(agent, engine, text):
    send, tracker = engine
    sender = f"prop-sur-{uuid.uuid4().hex}"
    _check_replies(send(text, sender))
    assert_tracker_valid(tracker(sender), agent.project.domain)


@settings(max_examples=scaled(20, 300), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(turns=st.lists(TURN, min_size=2, max_size=8))
def test_conversations_keep_tracker_valid_and_triage_never_drops(agent, engine, turns):
    send, tracker = engine
    sender = f"prop-conv-{uuid.uuid4().hex}"
    level = None
    for text in turns:
        _check_replies(send(text, sender))
        if text.strip() in ("/restart", "/session_start"):
            level = None  # the one documented way to lower the level
        level = assert_tracker_valid(tracker(sender), agent.project.domain, level)


@settings(max_examples=BIG_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(chunk=st.text(alphabet=ALPHABET, min_size=1, max_size=40), flag=st.sampled_from(["", " I can't control my bladder "]))
def test_messages_at_the_length_limit_are_answered(agent, engine, chunk, flag):
    """A message of MAX_MESSAGE_CHARS (the longest any channel lets through) gets a bounded
    answer; one character more is refused before any work is done."""
    from bot.agent import MessageTooLong
    from bot.limits import MAX_MESSAGE_CHARS

    send, tracker = engine
    text = (chunk * (MAX_MESSAGE_CHARS // len(chunk) + 1))[:MAX_MESSAGE_CHARS - len(flag)] + flag
    sender = f"prop-big-{uuid.uuid4().hex}"
    _check_replies(send(text, sender))
    level = assert_tracker_valid(tracker(sender), agent.project.domain)
    if flag:
        assert level == "emergency", "a danger sign at the end of the longest message is still seen"
    with pytest.raises(MessageTooLong):
        send(text + "x", f"prop-big-{uuid.uuid4().hex}")


def test_levels_are_the_documented_ones(agent):
    assert tuple(agent.project.domain.slots["triage_level"].values) == LEVELS
