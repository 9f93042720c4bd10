"""Which keys of a Rasa 3.x project Backline reads, and what it says about each one it does not.

Every key of config.yml, domain.yml, endpoints.yml, credentials.yml and the data files is one
of three kinds:

- read: Backline does what real Rasa does with it (or, under `backline:`, what README says);
- Rasa only: real Rasa honours it and Backline has no counterpart. A *warning* naming the file,
  the line and what Backline does instead, so a migrated project still loads and runs;
- read by nobody: a misspelt or made-up key. Under `backline:` an *error* (a misspelt
  `emergency_numbr:` would otherwise leave the default emergency number in place without a
  word); elsewhere a warning (it may be a key of a newer Rasa).

`load_project` raises the first error and logs how many warnings change what a conversation
does (settings that only tune one of Rasa's models are left to `bot validate`); `bot validate`
prints each finding as `file:line: what (what to do)`. docs/rasa-keys.md lists the decisions.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from bot.nlu import KNOWN_COMPONENTS
from bot.yamlio import line_of

# -- findings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int | None
    message: str
    error: bool = False
    tuning: bool = False   # only tunes one of Rasa's models: said by `bot validate`, not at every start

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


class _Report:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.findings: list[Finding] = []

    def warn(self, line: int | None, message: str, *, tuning: bool = False) -> None:
        self.findings.append(Finding(self.path, line, message, tuning=tuning))

    def error(self, line: int | None, message: str) -> None:
        self.findings.append(Finding(self.path, line, message, error=True))

    def unread(self, section: Any, where: str, read: Iterable[str], rasa_only: dict[str, str] | None = None) -> None:
        """A warning for each key of `section` that is not in `read`: the Rasa feature it stands
        for (`rasa_only`), else "read by nobody"."""
        if not isinstance(section, dict):
            return
        read = set(read)
        for key in section:
            if str(key) in read:
                continue
            line = line_of(section, key)
            if rasa_only and str(key) in rasa_only:
                self.warn(line, f"`{where}{key}`: {rasa_only[str(key)]}")
            else:
                self.warn(line, f"`{where}{key}` is not a key Backline or Rasa 3 reads here; it is ignored "
                                f"(check the spelling{_suggest(key, read | set(rasa_only or ()))})")


def _suggest(key: Any, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(key), sorted(known), n=1)
    return f": did you mean `{close[0]}`?" if close else ""


# -- config.yml ------------------------------------------------------------------------------

CONFIG_READ = {"version", "recipe", "language", "assistant_id", "pipeline", "policies", "backline"}
CONFIG_RASA_ONLY = {
    "importers": "Backline reads the project files itself; custom importers are not run",
    "core_target": "Backline builds its own pipeline; graph recipe targets are not used",
    "nlu_target": "Backline builds its own pipeline; graph recipe targets are not used",
}
# `backline:` settings that did nothing and were removed: what to do instead.
REMOVED_SETTINGS = {
    "session_expiration_minutes": "sessions expire after domain.yml `session_config: session_expiration_time` "
                                  "(minutes), as in Rasa; delete this line and set that one",
    "lemmatizer": "Backline always uses spaCy's lookup lemmatizer (spacy-lookups-data); delete this line",
}

# What Backline builds for each Rasa component, for the message about its other settings.
_OWN_FEATURES = "Backline's features are fixed (words, lemmas, word pairs, character n-grams)"
_OWN_CLASSIFIER = "Backline trains its own intent classifier (tune it under `backline:`: epochs, learn_rate, seed)"
COMPONENT_READ: dict[str, tuple[set[str], str]] = {
    "CountVectorsFeaturizer": ({"analyzer"}, _OWN_FEATURES),
    "RegexEntityExtractor": ({"use_lookup_tables", "use_regexes"},
                             "Backline's extractor matches annotated examples, lookup tables and regexes"),
    "EntitySynonymMapper": (set(), "Backline maps synonyms from the data"),
    "FallbackClassifier": ({"threshold", "ambiguity_threshold"}, "Backline's fallback uses only the two thresholds"),
    "ResponseSelector": ({"retrieval_intent"},
                         "Backline answers every retrieval intent (`faq/<topic>`) from its own intent classifier"),
}
COMPONENTS_NOT_RUN = {
    "SpacyFeaturizer": "Backline loads no spaCy model: its own features stand in",
    "LanguageModelFeaturizer": "Backline runs no pretrained language model: its own features stand in",
    "ConveRTFeaturizer": "Backline runs no pretrained language model: its own features stand in",
    "MitieFeaturizer": "Backline runs no MITIE model: its own features stand in",
    "KeywordIntentClassifier": "Backline classifies intents with its statistical classifier, not by keywords",
    "CRFEntityExtractor": "not run: Backline extracts entities only as RegexEntityExtractor does (annotated "
                          "examples, lookup tables, regexes); add `- name: RegexEntityExtractor`",
    "SpacyEntityExtractor": "not run: Backline loads no spaCy model, so spaCy's entities (PERSON, DATE, ...) "
                            "are not found; annotate examples or add lookup tables and regexes",
    "DucklingEntityExtractor": "not run: Backline calls no Duckling server; write regexes for numbers and dates",
}
POLICIES_NOT_RUN = {
    "TEDPolicy": "Backline has no machine-learned dialogue policy: stories are followed by memoization only, "
                 "so a conversation that leaves them gets the rules or the fallback",
    "UnexpecTEDIntentPolicy": "Backline has no machine-learned dialogue policy; `action_unlikely_intent` "
                              "is never predicted",
}
POLICY_READ = {"MemoizationPolicy": {"max_history"}, "AugmentedMemoizationPolicy": {"max_history"},
               "RulePolicy": {"core_fallback_threshold", "restrict_rules", "check_for_contradictions"}}


def check_config(config: Any, path: Path, settings: Iterable[str]) -> list[Finding]:
    report = _Report(path)
    if not isinstance(config, dict):
        return report.findings
    report.unread(config, "", CONFIG_READ, CONFIG_RASA_ONLY)
    language = config.get("language")
    if language not in (None, "en"):
        report.warn(line_of(config, "language"), f"`language: {language}`: Backline's NLU is English only "
                    "(spaCy's English tokenizer and lemmas); messages are read as English")
    if config.get("recipe") not in (None, "default.v1"):
        report.warn(line_of(config, "recipe"), f"`recipe: {config.get('recipe')}`: Backline builds its own "
                    "pipeline from the component names; the recipe is not used")
    pipeline = config.get("pipeline")
    names = [c.get("name") for c in pipeline if isinstance(c, dict)] if isinstance(pipeline, list) else []
    for index, component in enumerate(pipeline if isinstance(pipeline, list) else []):
        _check_component(report, component, line_of(pipeline, index), names)
    policies = config.get("policies")
    for index, policy in enumerate(policies if isinstance(policies, list) else []):
        _check_policy(report, policy, line_of(policies, index))
    _check_backline(report, config.get("backline"), set(settings))
    return report.findings


def _check_component(report: _Report, component: Any, line: int | None, names: list[Any]) -> None:
    if not isinstance(component, dict) or "name" not in component:
        report.error(line, "each pipeline item needs `- name: <component>`")
        return
    name = component["name"]
    if name not in KNOWN_COMPONENTS:
        report.error(line, f"unknown component `{name}`{_suggest(name, KNOWN_COMPONENTS)}; Backline "
                           f"understands {', '.join(sorted(KNOWN_COMPONENTS))}")
        return
    if name in COMPONENTS_NOT_RUN:
        report.warn(line, f"`{name}`: {COMPONENTS_NOT_RUN[name]}")
        return
    read, counterpart = COMPONENT_READ.get(name, (set(), _OWN_CLASSIFIER if "Classifier" in name else _OWN_FEATURES))
    read = read | {"name"}
    if name == "CountVectorsFeaturizer" and component.get("analyzer") in ("char", "char_wb"):
        read |= {"min_ngram", "max_ngram"}
    _check_component_switches(report, component, name, names)
    read |= {"use_word_boundaries", "case_sensitive", "intent_tokenization_flag", "entity_recognition", "model"}
    tuning = [str(k) for k in component if str(k) not in read]
    if tuning:
        report.warn(line_of(component, tuning[0]), f"`{name}` settings {', '.join(f'`{k}`' for k in tuning)} "
                                                   f"tune Rasa's own component and have no effect: {counterpart}",
                    tuning=True)


def _check_component_switches(report: _Report, component: dict, name: str, names: list[Any]) -> None:
    """Settings that change what a component does, when Backline cannot do it that way."""
    def at(key: str) -> int | None:
        return line_of(component, key)

    if component.get("use_word_boundaries") is False:
        report.warn(at("use_word_boundaries"), f"`{name}` `use_word_boundaries: false`: Backline matches lookup "
                    "tables on whole words only (spaCy tokens); write a regex to match inside words")
    if component.get("case_sensitive") is True:
        report.warn(at("case_sensitive"), f"`{name}` `case_sensitive: true`: Backline matches lookup tables and "
                    "regexes ignoring case")
    if component.get("intent_tokenization_flag") is True:
        report.warn(at("intent_tokenization_flag"), f"`{name}` `intent_tokenization_flag: true`: Backline does "
                    "not split multi-intents (`greet+ask`); each is an intent of its own")
    if name == "DIETClassifier" and component.get("entity_recognition", True) and "RegexEntityExtractor" not in names:
        report.warn(at("entity_recognition") or line_of(component, "name"), "`DIETClassifier` entity recognition "
                    "is not run: Backline extracts entities only as RegexEntityExtractor does; add "
                    "`- name: RegexEntityExtractor` to the pipeline")
    if component.get("model") is not None:
        report.warn(at("model"), f"`{name}` `model: {component.get('model')}`: Backline loads no pretrained model "
                    "(spacy.blank('en') with lookup lemmas)")


def _check_policy(report: _Report, policy: Any, line: int | None) -> None:
    if not isinstance(policy, dict) or "name" not in policy:
        report.error(line, "each policy needs `- name: <policy>`")
        return
    name = policy["name"]
    if name in POLICIES_NOT_RUN:
        report.warn(line, f"`{name}`: {POLICIES_NOT_RUN[name]}")
        return
    if name not in POLICY_READ:
        report.warn(line, f"`{name}` is not a policy Backline runs (it always runs RulePolicy and "
                          "MemoizationPolicy); it is ignored")
        return
    if name == "RulePolicy":
        _check_rule_policy(report, policy)
    tuning = [str(k) for k in policy if str(k) not in POLICY_READ[name] | {"name", "core_fallback_action_name",
                                                                             "enable_fallback_prediction"}]
    if tuning:
        report.warn(line_of(policy, tuning[0]), f"`{name}` settings {', '.join(f'`{k}`' for k in tuning)} have "
                                                "no effect: Backline's rules and stories predict with certainty",
                    tuning=True)


def _check_rule_policy(report: _Report, policy: dict) -> None:
    fallback = policy.get("core_fallback_action_name", "action_default_fallback")
    if fallback != "action_default_fallback":
        report.warn(line_of(policy, "core_fallback_action_name"), f"`core_fallback_action_name: {fallback}`: "
                    "Backline always runs `action_default_fallback` (the `utter_default` response) when no rule "
                    "or story applies")
    if policy.get("enable_fallback_prediction") is False:
        report.warn(line_of(policy, "enable_fallback_prediction"), "`enable_fallback_prediction: false`: Backline "
                    "always runs `action_default_fallback` when no rule or story applies to a message")


def _check_backline(report: _Report, section: Any, settings: set[str]) -> None:
    if section is None:
        return
    if not isinstance(section, dict):
        report.error(line_of(section), "`backline:` must be a mapping of settings")
        return
    for key in section:
        line = line_of(section, key)
        if key in REMOVED_SETTINGS:
            report.error(line, f"`backline: {key}` does nothing: {REMOVED_SETTINGS[key]}")
        elif key not in settings:
            report.error(line, f"`backline: {key}` is not a Backline setting{_suggest(key, settings)}; the settings "
                               f"are {', '.join(sorted(settings))} (see README)")


# -- domain.yml ------------------------------------------------------------------------------

DOMAIN_READ = {"version", "session_config", "intents", "entities", "slots", "responses", "forms", "actions"}
DOMAIN_RASA_ONLY = {
    "e2e_actions": "Backline has no end-to-end stories; bot texts as actions are not used",
    "config": "a Rasa 2 setting (`store_entities_as_slots`): in Rasa 3 and Backline slots are filled only by "
              "their `mappings:`",
}
SESSION_READ = {"session_expiration_time", "carry_over_slots_to_new_session"}
INTENT_READ = {"use_entities", "ignore_entities", "is_retrieval_intent"}  # policies never look at entities
INTENT_RASA_ONLY = {"triggers": "a Rasa 2 MappingPolicy setting, gone in Rasa 3; write a rule instead"}
SLOT_READ = {"type", "initial_value", "values", "mappings", "influence_conversation", "min_value", "max_value"}
SLOT_RASA_ONLY = {"auto_fill": "a Rasa 2 setting, gone in Rasa 3: a slot is filled only by its `mappings:`"}
MAPPING_READ = {"type", "entity", "role", "group", "intent", "not_intent", "value", "conditions"}
MAPPING_RASA_ONLY = {"action": "Backline does not run slot-mapping actions; set the slot in `validate_<form>` "
                               "or in another custom action"}
FORM_READ = {"required_slots", "ignored_intents"}
RESPONSE_READ = {"text", "image", "custom", "attachment", "buttons", "quick_replies", "condition", "metadata", "id"}
RESPONSE_RASA_ONLY = {
    "channel": "Backline does not pick variations by output channel: this variation is sent only when no "
               "variation without `channel:` applies",
    "elements": "Backline does not send `elements` (carousels); use `custom:` for channel-specific payloads",
}


def check_domain(domain: Any, path: Path) -> list[Finding]:
    report = _Report(path)
    if not isinstance(domain, dict):
        return report.findings
    report.unread(domain, "", DOMAIN_READ, DOMAIN_RASA_ONLY)
    report.unread(domain.get("session_config"), "session_config: ", SESSION_READ)
    for item in domain.get("intents") or []:
        for name, spec in item.items() if isinstance(item, dict) else []:
            report.unread(spec, f"intents: {name}: ", INTENT_READ, INTENT_RASA_ONLY)
    for name, spec in _mapping(domain, "slots").items():
        report.unread(spec, f"slots: {name}: ", SLOT_READ, SLOT_RASA_ONLY)
        for mapping in (spec.get("mappings") if isinstance(spec, dict) else None) or []:
            report.unread(mapping, f"slots: {name}: mappings: ", MAPPING_READ, MAPPING_RASA_ONLY)
    for name, spec in _mapping(domain, "forms").items():
        _check_form(report, name, spec)
    for name, variations in _mapping(domain, "responses").items():
        for variation in variations if isinstance(variations, list) else []:
            report.unread(variation, f"responses: {name}: ", RESPONSE_READ, RESPONSE_RASA_ONLY)
    return report.findings


def _mapping(data: dict, key: str) -> dict:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _check_form(report: _Report, name: str, spec: Any) -> None:
    report.unread(spec, f"forms: {name}: ", FORM_READ)
    if isinstance(spec, dict) and isinstance(spec.get("required_slots"), dict):
        report.warn(line_of(spec, "required_slots"), f"form `{name}` gives slot mappings under "
                    "`required_slots:` (Rasa 2): Backline uses only the slot names; move the mappings to "
                    "`slots: <name>: mappings:`")


# -- endpoints.yml and credentials.yml -------------------------------------------------------

ENDPOINTS_READ = {"tracker_store", "lock_store", "action_endpoint"}
ENDPOINTS_RASA_ONLY = {
    "nlg": "Backline renders responses from domain.yml itself; an NLG server is not called",
    "event_broker": "Backline publishes no events; read conversations from the tracker store instead",
    "models": "Backline loads its model from models/ (trained by `bot train`); a model server is not polled",
    "nlu": "Backline parses messages with its own NLU; an external NLU server is not called",
}
_REDIS_READ = {"type", "url", "host", "port", "db", "username", "password", "use_ssl", "key_prefix",
               "socket_timeout", "socket_connect_timeout"}
_SSL_FILES = "Backline's Redis client uses the system's certificates: client certificate files are not loaded"
STORE_RASA_ONLY = {
    "login_db": "Backline does not create the database: create it first (`createdb`), then name it in `db:`",
    "record_exp": "Backline keeps conversations until `conversation_ttl_days` (days) or `bot forget`; "
                  "set `conversation_ttl_days` instead",
    "ssl_keyfile": _SSL_FILES, "ssl_certfile": _SSL_FILES, "ssl_ca_certs": _SSL_FILES,
}
TRACKER_STORE_READ = {
    "sql": {"type", "dialect", "url", "host", "port", "db", "username", "password", "query", "synchronous",
            "conversation_ttl_days"},
    "redis": _REDIS_READ | {"conversation_ttl_days"},
    "memory": {"type", "conversation_ttl_days"},
}
LOCK_STORE_READ = {"redis": _REDIS_READ, "memory": {"type"}}
ACTION_ENDPOINT_READ = {"url", "timeout", "token"}
ACTION_ENDPOINT_RASA_ONLY = {
    key: "Backline's action client sends only the action call (and `token` as the Authorization header)"
    for key in ("headers", "basic_auth", "params", "cafile", "token_name")
}


def _store_kind(section: dict) -> str:
    kind = str(section.get("type") or "sql").lower()
    return "memory" if kind in ("memory", "in_memory", "inmemory") else kind


def check_endpoints(endpoints: Any, path: Path) -> list[Finding]:
    report = _Report(path)
    if not isinstance(endpoints, dict):
        return report.findings
    report.unread(endpoints, "", ENDPOINTS_READ, ENDPOINTS_RASA_ONLY)
    for section, table in (("tracker_store", TRACKER_STORE_READ), ("lock_store", LOCK_STORE_READ)):
        config = endpoints.get(section)
        if not isinstance(config, dict):
            continue
        if _store_kind(config) not in table:
            report.error(line_of(config, "type"), f"`{section}: type: {config.get('type')}` is not a store Backline "
                                                  f"has; use one of {', '.join(sorted(table))} (`bot run` refuses it)")
        else:
            report.unread(config, f"{section}: ", table[_store_kind(config)], STORE_RASA_ONLY)
    report.unread(endpoints.get("action_endpoint"), "action_endpoint: ", ACTION_ENDPOINT_READ,
                  ACTION_ENDPOINT_RASA_ONLY)
    return report.findings


CREDENTIALS_READ = {"rest", "socketio", "cors_origins", "frame_origins"}
SOCKETIO_READ = {"user_message_evt", "bot_message_evt", "session_persistence", "socketio_path", "namespace",
                 "jwt_key", "jwt_method", "metadata_key", "cors_origins", "frame_origins"}


def check_credentials(credentials: Any, path: Path) -> list[Finding]:
    report = _Report(path)
    if not isinstance(credentials, dict):
        return report.findings
    for key in credentials:
        if str(key) not in CREDENTIALS_READ:
            report.warn(line_of(credentials, key), f"channel `{key}` is not served by Backline (it serves `rest` "
                                                   "and `socketio`); this section is ignored")
    report.unread(credentials.get("rest"), "rest: ", {"cors_origins", "frame_origins"})
    socketio = credentials.get("socketio")
    for key in socketio if isinstance(socketio, dict) else []:
        if key not in SOCKETIO_READ:
            report.error(line_of(socketio, key), f"`socketio: {key}` is not a socket.io channel setting"
                                                 f"{_suggest(key, SOCKETIO_READ)}; `bot run` refuses it "
                                                 f"(settings: {', '.join(sorted(SOCKETIO_READ))})")
    return report.findings


# -- data files ------------------------------------------------------------------------------

DATA_READ = {"version", "nlu", "rules", "stories", "responses"}
NLU_ITEM_READ = {"intent", "synonym", "regex", "lookup", "examples", "metadata"}
RULE_READ = {"rule", "steps", "condition", "conversation_start", "wait_for_user_input", "metadata"}
STORY_READ = {"story", "steps", "metadata"}


def check_data_file(data: Any, path: Path, slots: dict[str, Any]) -> list[Finding]:
    """`slots`: the domain's slots (name -> Slot), to tell which `slot_was_set` steps Rasa follows."""
    report = _Report(path)
    if not isinstance(data, dict):
        return report.findings
    report.unread(data, "", DATA_READ)
    for item in data.get("nlu") if isinstance(data.get("nlu"), list) else []:
        report.unread(item, "nlu: ", NLU_ITEM_READ)
    for section, read in (("rules", RULE_READ), ("stories", STORY_READ)):
        for item in data.get(section) if isinstance(data.get(section), list) else []:
            if isinstance(item, dict):
                report.unread(item, f"{section}: ", read)
                _check_steps(report, item, slots)
    return report.findings


def _check_steps(report: _Report, item: dict, slots: dict[str, Any]) -> None:
    steps = item.get("steps") if isinstance(item.get("steps"), list) else []
    name = item.get("rule") or item.get("story")
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        line = line_of(steps, index)
        if "checkpoint" in step:
            report.warn(line, f"`checkpoint: {step['checkpoint']}` in `{name}`: Backline does not join story parts "
                              "at checkpoints; each part is followed on its own (write the story out in full)")
        if step.get("entities") and "intent" in step and "user" not in step:
            report.warn(line_of(step, "entities"), f"`entities:` of `intent: {step['intent']}` in `{name}`: "
                        "Backline's rules and stories do not look at entities; this step matches the intent "
                        "with any entities or none")
        for slot in _names_set(step.get("slot_was_set")) if "checkpoint" not in step else []:
            if slot in slots and slots[slot].influence_conversation:
                report.warn(line, f"`slot_was_set: {slot}` in the steps of `{name}`: Backline's rules and "
                                  "stories do not branch on slot values set in their steps (only in a rule's "
                                  "`condition:`); move it to a rule's `condition:`, or set "
                                  f"`influence_conversation: false` for `{slot}`")


def _names_set(value: Any) -> list[str]:
    names: list[str] = []
    for item in value if isinstance(value, list) else []:
        names += [str(k) for k in item] if isinstance(item, dict) else [str(item)]
    return names
