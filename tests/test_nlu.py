"""The spaCy NLU pipeline: Rasa parse shape, payloads, typos, entities, fallback, save/load."""

from __future__ import annotations

import pytest

from bot.nlu.pipeline import NLU_FALLBACK, NLUModel, parse_intent_payload


@pytest.fixture(scope="module")
def nlu(agent):
    return agent.nlu


def test_parse_has_rasa_shape(nlu):
    result = nlu.parse("hello there", "m1")
    assert set(result) >= {"text", "intent", "entities", "text_tokens", "intent_ranking", "response_selector"}
    assert result["text"] == "hello there" and result["message_id"] == "m1"
    assert result["intent"]["name"] == "greet"
    assert 0 < result["intent"]["confidence"] <= 1
    assert result["text_tokens"] == [[0, 5], [6, 11]]
    ranking = [r["confidence"] for r in result["intent_ranking"]]
    assert ranking == sorted(ranking, reverse=True)
    assert result["response_selector"]["default"]["response"]["utter_action"] == "utter_None"


@pytest.mark.parametrize("text, intent", [
    ("hi", "greet"),
    ("bye for now", "goodbye"),
    ("thanks a lot", "thank"),
    ("are you a real person?", "bot_challenge"),
    ("my lower back seized up after lifting a box", "report_symptom"),
    ("my back is wrecked", "report_symptom"),
    ("bak pain", "report_symptom"),
    ("what do I have?", "ask_diagnosis"),
    ("is it sciatica?", "ask_diagnosis"),
    ("how much ibuprofen can I take", "ask_medication"),
    ("why do you ask?", "why_ask"),
    ("what are the paraspinal muscles?", "faq"),
])
def test_intents_for_typical_messages(nlu, text, intent):
    assert nlu.parse(text)["intent"]["name"] == intent


def test_retrieval_intent_picks_the_topic(nlu):
    result = nlu.parse("what are the paraspinal muscles?")
    selector = result["response_selector"]["faq"]["response"]
    assert selector["intent_response_key"].startswith("faq/")
    assert selector["utter_action"] == "utter_" + selector["intent_response_key"]


@pytest.mark.parametrize("text, intent, entities", [
    ('/inform{"body_part": "lower back"}', "inform", {"body_part": "lower back"}),
    ("/affirm", "affirm", {}),
    ("/faq/location", "faq/location", {}),
])
def test_payloads(text, intent, entities):
    assert parse_intent_payload(text) == (intent, entities)


@pytest.mark.parametrize("text", ["/", "/inform{not json}", "hello /greet", "/inform[1]"])
def test_not_payloads(text):
    assert parse_intent_payload(text) is None


def test_payload_parse_bypasses_classifier(nlu):
    result = nlu.parse('/inform{"severity": "7"}')
    assert result["intent"] == {"name": "inform", "confidence": 1.0}
    assert result["entities"][0]["entity"] == "severity" and result["entities"][0]["value"] == "7"


def test_typo_normaliser_corrects_unknown_words(nlu):
    doc = nlu.nlp("my lowr bak hurts")
    assert [t.norm_ for t in doc][1:3] == ["lower", "back"]


def test_entities_from_lookup_synonyms_and_typos(nlu):
    ents = {e["entity"]: e for e in nlu.parse("my lowr back hurts, 7/10")["entities"]}
    assert ents["body_part"]["value"] == "lower back"
    assert ents["severity"]["value"].startswith("7")
    assert all(e["extractor"] for e in ents.values())


def test_empty_and_gibberish_fall_back(nlu):
    assert nlu.parse("")["intent"]["name"] == NLU_FALLBACK
    assert nlu.parse("   ")["intent"]["name"] == NLU_FALLBACK


def test_very_long_input_is_parsed(nlu):
    result = nlu.parse("my back hurts " * 20000)
    assert result["intent"]["name"]


def test_save_and_load_round_trip(nlu, tmp_path):
    nlu.save(tmp_path / "m")
    loaded = NLUModel.load(tmp_path / "m")
    for text in ("hi", "my lower back hurts", "what is the longissimus"):
        assert loaded.parse(text)["intent"] == nlu.parse(text)["intent"]
        assert loaded.parse(text)["entities"] == nlu.parse(text)["entities"]
