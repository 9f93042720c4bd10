"""Keys Backline does not read: each one is named with file:line and what to do (bot/project_keys.py).

A migrated Rasa 3.x project is written key by key below; every expected message is the line
the key is on (found in the file's text, not counted by hand) and what Backline says about it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.project import load_project
from bot.yamlio import ProjectError
from tests.helpers import run_bot

DOMAIN = """\
version: "3.1"
session_config:
  session_expiration_time: 30
  carry_over_slots_to_new_session: true
  keep_history: yes                        # unknown-session-key
intents:
  - greet
  - inform:
      use_entities: [cuisine]
      triggers: utter_greet                # triggers
  - chitchat
entities:
  - cuisine
slots:
  cuisine:
    type: text
    auto_fill: false                       # auto_fill
    mappings:
      - type: from_entity
        entity: cuisine
  confirmed:
    type: bool
    influence_conversation: true
    mappings:
      - type: custom
        action: action_fill_confirmed      # mapping-action
  mood:
    type: text
    influence_conversation: false
    mappings:
      - type: from_text
        not_intent: [greet]
responses:
  utter_greet:
    - text: hello
      channel: slack                       # channel
    - text: hi
      elements: []                         # elements
    - text: hey
      metadata: {rasa: only}
forms:
  restaurant_form:
    ignored_intents: [chitchat]
    required_slots: [cuisine]
    priority: 1                            # form-key
actions:
  - action_fill_confirmed:
      send_domain: true
e2e_actions:                               # e2e_actions
  - hello there
"""

CONFIG = """\
recipe: default.v1
language: de                               # language
assistant_id: migrated
pipeline:
  - name: WhitespaceTokenizer
    intent_tokenization_flag: true         # intent_tokenization_flag
  - name: LanguageModelFeaturizer          # LanguageModelFeaturizer
    model_name: bert
  - name: CountVectorsFeaturizer
    analyzer: word
    max_ngram: 2                           # word max_ngram
  - name: DIETClassifier                   # DIETClassifier
    epochs: 100
  - name: RegexFeaturizer
    use_word_boundaries: false             # RegexFeaturizer use_word_boundaries
  - name: FallbackClassifier
    threshold: 0.3
policies:
  - name: MemoizationPolicy
    max_history: 3
  - name: TEDPolicy                        # TEDPolicy
    epochs: 100
  - name: RulePolicy
    core_fallback_action_name: action_my_fallback   # core_fallback_action_name
importers:                                 # importers
  - name: MultiProjectImporter
"""

ENDPOINTS = """\
tracker_store:
  type: redis
  url: 127.0.0.1
  record_exp: 3600                         # record_exp
lock_store:
  type: redis
  url: 127.0.0.1
  ssl_ca_certs: /etc/ca.pem                # ssl_ca_certs
action_endpoint:
  url: http://127.0.0.1:5055/webhook
  headers: {X-Key: a}                      # headers
event_broker:                              # event_broker
  type: pika
nlg:                                       # nlg
  url: http://127.0.0.1:5056/nlg
"""

CREDENTIALS = """\
rest:
  cors_origins: ["https://example.org"]
  callback_url: http://x                   # rest-key
socketio:
  user_message_evt: user_uttered
  bot_message_evt: bot_uttered
  session_persistence: true
telegram:                                  # telegram
  access_token: "1"
"""

NLU = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hi
    - hello
- intent: inform
  examples: |
    - [italian](cuisine) food
- intent: chitchat
  language: en                             # nlu-item-key
  examples: |
    - how are you
"""

RULES = """\
version: "3.1"
rules:
- rule: greet
  steps:
  - intent: greet
  - action: utter_greet
stories:
- story: confirmed path
  steps:
  - intent: inform
    entities:                              # story-entities
    - cuisine: italian
  - action: utter_greet
  - slot_was_set:                          # featurized slot_was_set
    - confirmed: true
  - slot_was_set:
    - mood: good
  - checkpoint: later                      # checkpoint
- story: later part
  steps:
  - checkpoint: later
  - intent: greet
  - action: utter_greet
  sentiment: positive                      # story-key
"""


def write_project(root: Path, **files: str) -> Path:
    texts = {"domain.yml": DOMAIN, "config.yml": CONFIG, "endpoints.yml": ENDPOINTS,
             "credentials.yml": CREDENTIALS, "data/nlu.yml": NLU, "data/rules.yml": RULES}
    texts.update({name.replace("__", "/").replace("_yml", ".yml"): text for name, text in files.items()})
    for name, text in texts.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def at(root: Path, name: str, marker: str, nth: int | None = None) -> str:
    """`file:line` of the one line of `name` holding `marker` (or of the nth such line)."""
    lines = [i for i, text in enumerate((root / name).read_text().splitlines(), 1) if marker in text]
    assert nth is not None or len(lines) == 1, (marker, lines)
    return f"{root / name}:{lines[nth or 0]}"


def of(found: set[str], root: Path, name: str) -> set[str]:
    return {f for f in found if f.startswith(f"{root / name}:")}


def messages(root: Path) -> tuple[set[str], set[str]]:
    findings = load_project(root, strict=False).findings
    return {str(f) for f in findings if f.error}, {str(f) for f in findings if not f.error}


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    return write_project(tmp_path)


def test_config_keys_only_rasa_reads(migrated: Path) -> None:
    def c(marker: str) -> str:
        return at(migrated, "config.yml", marker)

    errors, warnings = messages(migrated)
    expected = {
        f"{c('# language')}: `language: de`: Backline's NLU is English only (spaCy's English tokenizer and "
        "lemmas); messages are read as English",
        f"{c('# intent_tokenization_flag')}: `WhitespaceTokenizer` `intent_tokenization_flag: true`: Backline "
        "does not split multi-intents (`greet+ask`); each is an intent of its own",
        f"{c('# LanguageModelFeaturizer')}: `LanguageModelFeaturizer`: Backline runs no pretrained language "
        "model: its own features stand in",
        f"{c('# word max_ngram')}: `CountVectorsFeaturizer` settings `max_ngram` tune Rasa's own component and "
        "have no effect: Backline's features are fixed (words, lemmas, word pairs, character n-grams)",
        f"{c('# DIETClassifier')}: `DIETClassifier` entity recognition is not run: Backline extracts entities "
        "only as RegexEntityExtractor does; add `- name: RegexEntityExtractor` to the pipeline",
        f"{at(migrated, 'config.yml', 'epochs: 100', 0)}: `DIETClassifier` settings "
        "`epochs` tune Rasa's own component and have no effect: Backline trains its own intent classifier "
        "(tune it under `backline:`: epochs, learn_rate, seed)",
        f"{c('# RegexFeaturizer use_word_boundaries')}: `RegexFeaturizer` `use_word_boundaries: false`: Backline "
        "matches lookup tables on whole words only (spaCy tokens); write a regex to match inside words",
        f"{c('# TEDPolicy')}: `TEDPolicy`: Backline has no machine-learned dialogue policy: stories are followed "
        "by memoization only, so a conversation that leaves them gets the rules or the fallback",
        f"{c('# core_fallback_action_name')}: `core_fallback_action_name: action_my_fallback`: Backline always "
        "runs `action_default_fallback` (the `utter_default` response) when no rule or story applies",
        f"{c('# importers')}: `importers`: Backline reads the project files itself; custom importers are not run",
    }
    config_warnings = of(warnings, migrated, "config.yml")
    assert config_warnings == expected
    assert not errors


def test_domain_keys_only_rasa_reads(migrated: Path) -> None:
    def d(marker: str) -> str:
        return at(migrated, "domain.yml", marker)

    _, warnings = messages(migrated)
    expected = {
        f"{d('# unknown-session-key')}: `session_config: keep_history` is not a key Backline or Rasa 3 reads "
        "here; it is ignored (check the spelling)",
        f"{d('# triggers')}: `intents: inform: triggers`: a Rasa 2 MappingPolicy setting, gone in Rasa 3; write "
        "a rule instead",
        f"{d('# auto_fill')}: `slots: cuisine: auto_fill`: a Rasa 2 setting, gone in Rasa 3: a slot is filled "
        "only by its `mappings:`",
        f"{d('# mapping-action')}: `slots: confirmed: mappings: action`: Backline does not run slot-mapping "
        "actions; set the slot in `validate_<form>` or in another custom action",
        f"{d('# channel')}: `responses: utter_greet: channel`: Backline does not pick variations by output "
        "channel: this variation is sent only when no variation without `channel:` applies",
        f"{d('# elements')}: `responses: utter_greet: elements`: Backline does not send `elements` (carousels); "
        "use `custom:` for channel-specific payloads",
        f"{d('# form-key')}: `forms: restaurant_form: priority` is not a key Backline or Rasa 3 reads here; it "
        "is ignored (check the spelling)",
        f"{d('# e2e_actions')}: `e2e_actions`: Backline has no end-to-end stories; bot texts as actions are not "
        "used",
    }
    assert of(warnings, migrated, "domain.yml") == expected


def test_endpoints_and_credentials_keys_only_rasa_reads(migrated: Path) -> None:
    def e(marker: str) -> str:
        return at(migrated, "endpoints.yml", marker)

    def cr(marker: str) -> str:
        return at(migrated, "credentials.yml", marker)

    _, warnings = messages(migrated)
    assert of(warnings, migrated, "endpoints.yml") == {
        f"{e('# record_exp')}: `tracker_store: record_exp`: Backline keeps conversations until "
        "`conversation_ttl_days` (days) or `bot forget`; set `conversation_ttl_days` instead",
        f"{e('# ssl_ca_certs')}: `lock_store: ssl_ca_certs`: Backline's Redis client uses the system's "
        "certificates: client certificate files are not loaded",
        f"{e('# headers')}: `action_endpoint: headers`: Backline's action client sends only the action call "
        "(and `token` as the Authorization header)",
        f"{e('# event_broker')}: `event_broker`: Backline publishes no events; read conversations from the "
        "tracker store instead",
        f"{e('# nlg')}: `nlg`: Backline renders responses from domain.yml itself; an NLG server is not called",
    }
    assert of(warnings, migrated, "credentials.yml") == {
        f"{cr('# rest-key')}: `rest: callback_url` is not a key Backline or Rasa 3 reads here; it is ignored "
        "(check the spelling)",
        f"{cr('# telegram')}: channel `telegram` is not served by Backline (it serves `rest` and `socketio`); "
        "this section is ignored",
    }


def test_data_keys_backline_does_not_follow(migrated: Path) -> None:
    def r(marker: str) -> str:
        return at(migrated, "data/rules.yml", marker)

    _, warnings = messages(migrated)
    assert of(warnings, migrated, "data/nlu.yml") | of(warnings, migrated, "data/rules.yml") == {
        f"{at(migrated, 'data/nlu.yml', '# nlu-item-key')}: `nlu: language` is not a key Backline or Rasa 3 "
        "reads here; it is ignored (check the spelling)",
        f"{r('# story-entities')}: `entities:` of `intent: inform` in `confirmed path`: Backline's rules and "
        "stories do not look at entities; this step matches the intent with any entities or none",
        f"{r('# featurized slot_was_set')}: `slot_was_set: confirmed` in the steps of `confirmed path`: "
        "Backline's rules and stories do not branch on slot values set in their steps (only in a rule's "
        "`condition:`); move it to a rule's `condition:`, or set `influence_conversation: false` for `confirmed`",
        f"{r('# checkpoint')}: `checkpoint: later` in `confirmed path`: Backline does not join story parts at "
        "checkpoints; each part is followed on its own (write the story out in full)",
        f"{at(migrated, 'data/rules.yml', 'checkpoint: later', 1)}: `checkpoint: later` in `later part`: "
        "Backline does not join story parts at checkpoints; each part is followed on its own (write the story "
        "out in full)",
        f"{r('# story-key')}: `stories: sentiment` is not a key Backline or Rasa 3 reads here; it is ignored "
        "(check the spelling)",
    }


def test_keys_backline_reads_give_no_message(migrated: Path) -> None:
    """`influence_conversation: false` slots in story steps, use_entities, send_domain, response
    metadata, session_config, ignored_intents, assistant_id, RulePolicy/FallbackClassifier keys."""
    errors, warnings = messages(migrated)
    for quiet in ("mood", "use_entities", "send_domain", "metadata", "session_expiration_time", "ignored_intents",
                  "assistant_id", "threshold", "max_history", "cors_origins", "user_message_evt"):
        assert not [w for w in warnings if quiet in w], quiet


@pytest.mark.parametrize("setting, message", [
    ("session_expiration_minutes: 60", "`backline: session_expiration_minutes` does nothing: sessions expire after "
     "domain.yml `session_config: session_expiration_time` (minutes), as in Rasa; delete this line and set that one"),
    ("lemmatizer: lookup", "`backline: lemmatizer` does nothing: Backline always uses spaCy's lookup lemmatizer "
     "(spacy-lookups-data); delete this line"),
    ("emergency_numbr: '112'", "`backline: emergency_numbr` is not a Backline setting: did you mean "
     "`emergency_number`?; the settings are action_timeout, batch_size, crisis_line, emergency_number, epochs, "
     "hash_length, learn_rate, seed, turn_timeout, typo_tolerance (see README)"),
])
def test_a_backline_setting_that_does_nothing_stops_loading(tmp_path: Path, setting: str, message: str) -> None:
    root = write_project(tmp_path, config_yml=CONFIG + f"backline:\n  seed: 1\n  {setting}\n")
    with pytest.raises(ProjectError) as raised:
        load_project(root)
    assert str(raised.value) == f"{at(root, 'config.yml', setting)}: {message}"


def test_an_unknown_socketio_key_is_an_error_as_bot_run_refuses_it(tmp_path: Path) -> None:
    root = write_project(tmp_path, credentials_yml="socketio:\n  user_message_evt: a\n  socket_path: /x\n")
    with pytest.raises(ProjectError) as raised:
        load_project(root)
    assert str(raised.value).startswith(f"{at(root, 'credentials.yml', 'socket_path')}: `socketio: socket_path` "
                                        "is not a socket.io channel setting: did you mean `socketio_path`?")


def test_an_unknown_component_names_its_line(tmp_path: Path) -> None:
    root = write_project(tmp_path, config_yml="pipeline:\n  - name: WhitespaceTokenizer\n  - name: DIETClasifier\n")
    with pytest.raises(ProjectError) as raised:
        load_project(root)
    assert str(raised.value).startswith(f"{at(root, 'config.yml', 'DIETClasifier')}: unknown component "
                                        "`DIETClasifier`: did you mean `DIETClassifier`?")


def test_loading_logs_one_line_and_validate_prints_each(migrated: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.project"):
        project = load_project(migrated)
    logged = [r.getMessage() for r in caplog.records if r.name == "bot.project"]
    differ = [f for f in project.findings if not f.tuning]
    assert 0 < len(differ) < len(project.findings)
    assert logged == [f"{len(differ)} setting(s) in the project files work differently or not at all in "
                      "Backline; `bot validate` names each with file:line"]
    result = run_bot("validate", "--project", str(migrated))
    printed = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    for finding in project.findings:
        assert f"warning: {finding}" in printed


def test_the_shipped_project_has_no_backline_setting_that_does_nothing(project) -> None:
    assert not [f for f in project.findings if f.error or not f.tuning]
    assert {f.message.split(" settings ")[0] for f in project.findings} == {
        "`LogisticRegressionClassifier`", "`ResponseSelector`"}   # tuning for real Rasa (rasa-check)


CHAINED = RULES.replace("""stories:""", """- rule: after a greeting
  steps:
  - action: utter_greet
  - action: action_fill_confirmed
stories:""")


@pytest.mark.parametrize("waits", [True, False])
def test_a_rule_rasa_would_wait_after_is_named_when_another_goes_on(tmp_path: Path, waits: bool) -> None:
    from bot.validate import validate_project

    rules = CHAINED if waits else CHAINED.replace("- rule: greet\n", "- rule: greet\n  wait_for_user_input: false\n")
    root = write_project(tmp_path, data__rules_yml=rules)
    _, warnings = validate_project(root)
    said = [w for w in warnings if "wait_for_user_input" in w]
    if not waits:
        assert said == []
        return
    assert said == [
        f"{at(root, 'data/rules.yml', '- rule: greet')}: rule `greet` ends with `utter_greet` and waits for the "
        "user (Rasa's `wait_for_user_input`, true by default), but rule `after a greeting` "
        f"({at(root, 'data/rules.yml', '- rule: after a greeting')}) goes on with `action_fill_confirmed`: "
        "Backline goes on, real Rasa refuses the contradiction; add `wait_for_user_input: false` to `greet` if "
        "`action_fill_confirmed` should follow"]


def test_rasa_3_forms_of_keys_backline_reads(tmp_path: Path) -> None:
    """`- action: {send_domain: ..}` entries, `ignored_intents` as one name, and `responses:` in a
    data file (Rasa 3 merges them into the domain, e.g. answers of retrieval intents)."""
    responses = 'version: "3.1"\nresponses:\n  utter_chitchat/ask_name:\n    - text: "I am a bot"\n'
    root = write_project(tmp_path, data__responses_yml=responses)
    project = load_project(root, strict=False)
    assert project.domain.actions == ["action_fill_confirmed"]
    assert project.domain.forms["restaurant_form"].ignored_intents == ["chitchat"]
    assert project.domain.responses["utter_chitchat/ask_name"] == [{"text": "I am a bot"}]
    assert project.domain.retrieval_responses("utter_chitchat") == ["utter_chitchat/ask_name"]
    assert project.domain.as_dict()["responses"]["utter_chitchat/ask_name"] == [{"text": "I am a bot"}]
    assert "utter_greet" in project.domain.as_dict()["responses"]


def test_a_response_defined_in_the_domain_and_a_data_file_is_an_error(tmp_path: Path) -> None:
    root = write_project(tmp_path, data__responses_yml="responses:\n  utter_greet:\n    - text: again\n")
    with pytest.raises(ProjectError) as raised:
        load_project(root)
    assert str(raised.value) == (f"{at(root, 'data/responses.yml', 'utter_greet')}: response `utter_greet` is also "
                                 "defined in domain.yml; keep one of the two")


@pytest.mark.parametrize("name", ["config.yml", "domain.yml", "endpoints.yml", "credentials.yml", "data/nlu.yml",
                                  "data/rules.yml"])
def test_a_key_twice_in_any_project_file_stops_loading_at_its_line(tmp_path: Path, name: str) -> None:
    """Every project file goes through bot/yamlio.py: the second of two equal keys is an error."""
    root = write_project(tmp_path)
    text = (root / name).read_text()
    first = text.splitlines()[0] if not text.startswith("version") else text.splitlines()[1]
    (root / name).write_text(text + first.split(":")[0] + ": again\n")
    with pytest.raises(ProjectError) as raised:
        load_project(root)
    line = len(text.splitlines()) + 1
    assert str(raised.value).startswith(f"{root / name}:{line}: key `{first.split(':')[0]}` appears twice")


def test_a_store_backline_does_not_have_is_an_error(tmp_path: Path) -> None:
    root = write_project(tmp_path, endpoints_yml="tracker_store:\n  type: mongod\n  url: mongodb://localhost\n")
    with pytest.raises(ProjectError) as raised:
        load_project(root)
    assert str(raised.value) == (f"{at(root, 'endpoints.yml', 'type: mongod')}: `tracker_store: type: mongod` is not a "
                                 "store Backline has; use one of memory, redis, sql (`bot run` refuses it)")


@pytest.mark.parametrize("credentials_yml", [None, "", "# only a comment\n"])
def test_without_credentials_both_channels_are_served(tmp_path: Path, credentials_yml: str | None) -> None:
    root = write_project(tmp_path)
    if credentials_yml is None:
        (root / "credentials.yml").unlink()
    else:
        (root / "credentials.yml").write_text(credentials_yml)
    assert load_project(root).credentials == {"rest": None, "socketio": None}


def test_credentials_that_are_not_a_mapping_stop_loading_at_the_file(tmp_path: Path) -> None:
    root = write_project(tmp_path, credentials_yml="- rest\n- socketio\n")
    with pytest.raises(ProjectError) as raised:
        load_project(root)
    assert str(raised.value) == f"{root / 'credentials.yml'}:1: credentials.yml must be a mapping of channel names"
