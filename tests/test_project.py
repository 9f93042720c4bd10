"""Project loading: Rasa 3.x files in, clear file:line errors out."""

from __future__ import annotations

import pytest

from bot.nlu.trainingdata import parse_annotated
from bot.project import load_project
from bot.yamlio import ProjectError
from tests.helpers import copy_project


def test_loads_the_real_project(project):
    assert {"greet", "report_symptom", "faq", "ask_diagnosis"} <= set(project.domain.intents)
    assert "symptom_form" in project.domain.forms
    assert project.rules and project.nlu.examples
    assert any(ex.intent.startswith("faq/") for ex in project.nlu.examples)
    assert project.settings["emergency_number"] == "911"
    assert project.settings["crisis_line"] == "988"


@pytest.mark.parametrize("text, plain, entities", [
    ("my [lower back](body_part) hurts", "my lower back hurts",
     [{"entity": "body_part", "value": "lower back", "start": 3, "end": 13}]),
    ('[lumbar]{"entity": "body_part", "value": "lower back"} pain', "lumbar pain",
     [{"entity": "body_part", "value": "lower back", "start": 0, "end": 6}]),
    ("[7](severity) out of 10 for [2 weeks](duration)", "7 out of 10 for 2 weeks",
     [{"entity": "severity", "value": "7", "start": 0, "end": 1},
      {"entity": "duration", "value": "2 weeks", "start": 16, "end": 23}]),
    ("[lumbar](body_part:lower back)", "lumbar", [{"entity": "body_part", "value": "lower back", "start": 0, "end": 6}]),
    ("no annotation", "no annotation", []),
])
def test_entity_annotations(text, plain, entities):
    assert parse_annotated(text) == (plain, entities)


def _break(tmp_path, relative: str, content: str) -> ProjectError:
    root = copy_project(tmp_path / "p", with_models=False)
    (root / relative).write_text(content)
    with pytest.raises(ProjectError) as info:
        load_project(root)
    return info.value


def test_malformed_yaml_names_file_and_line(tmp_path):
    err = _break(tmp_path, "domain.yml", "intents:\n  - greet\n responses: [\n")
    assert err.path.endswith("domain.yml") and err.line == 3
    assert "YAML syntax error" in str(err)


def test_bad_slot_type_names_the_line(tmp_path):
    err = _break(tmp_path, "domain.yml", "version: '3.1'\nintents: [greet]\nslots:\n  mood:\n    type: feelings\n")
    assert err.line == 4 and "type" in err.message and "text" in err.message


def test_example_without_dash_names_the_line(tmp_path):
    err = _break(tmp_path, "data/nlu.yml", "version: '3.1'\nnlu:\n- intent: greet\n  examples: |\n    - hi\n    hello\n")
    assert err.path.endswith("nlu.yml") and err.line == 6


def test_bad_regex_is_reported(tmp_path):
    err = _break(tmp_path, "data/nlu.yml", "nlu:\n- regex: severity\n  examples: |\n    - ([0-9\n")
    assert "does not compile" in err.message and err.line == 4


def test_invalid_utf8(tmp_path):
    root = copy_project(tmp_path / "p", with_models=False)
    (root / "data" / "nlu.yml").write_bytes(b"nlu:\n- intent: greet\n  examples: |\n    - h\xffi\n")
    with pytest.raises(ProjectError, match="UTF-8"):
        load_project(root)


def test_missing_domain(tmp_path):
    root = copy_project(tmp_path / "p", with_models=False)
    (root / "domain.yml").unlink()
    with pytest.raises(ProjectError, match="domain.yml"):
        load_project(root)


def test_fingerprint_changes_with_training_data(tmp_path):
    root = copy_project(tmp_path / "p", with_models=False)
    before = load_project(root).nlu_fingerprint()
    assert load_project(root).nlu_fingerprint() == before
    with open(root / "data" / "nlu.yml", "a") as f:
        f.write("\n- intent: greet\n  examples: |\n    - howdy partner\n")
    assert load_project(root).nlu_fingerprint() != before


def test_a_repeated_key_is_an_error_naming_both_lines(tmp_path):
    """A second `utter_emergency:` must not silently replace the emergency text."""
    from bot.yamlio import ProjectError, load_yaml

    path = tmp_path / "domain.yml"
    path.write_text("responses:\n  utter_emergency:\n    - text: call 911\n  utter_emergency:\n    - text: relax\n")
    with pytest.raises(ProjectError) as info:
        load_yaml(path)
    assert info.value.line == 4 and "appears twice (first on line 2)" in str(info.value)
