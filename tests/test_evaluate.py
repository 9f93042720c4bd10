"""`bot test` in fast mode: NLU cross-validation quality gate, the safety sweep, the reports."""

from __future__ import annotations

import json

import pytest

from bot.evaluate import evaluate_nlu, evaluate_safety, intent_report, safety_cases, stratified_folds
from bot.nlu.trainingdata import Example

# The cross-validated macro F1 the current data reaches (see README "Evaluation"); a data or
# model change that drops below it fails here.
MIN_MACRO_F1 = 0.90


def test_stratified_folds_keep_every_intent_in_every_fold(project):
    folds = stratified_folds(project.nlu.examples, 3)
    assert sum(len(f) for f in folds) == len(project.nlu.examples)
    for fold in folds:
        assert {ex.intent for ex in fold} == {ex.intent for ex in project.nlu.examples}


def test_intent_report_numbers():
    pairs = [(Example("a", "x"), "x"), (Example("b", "x"), "y"), (Example("c", "y"), "y")]
    report = intent_report(pairs)
    assert report["per_intent"]["x"]["recall"] == 0.5 and report["per_intent"]["x"]["precision"] == 1.0
    assert report["per_intent"]["y"]["precision"] == 0.5
    assert report["accuracy"] == pytest.approx(2 / 3)
    assert report["most_confused"][0] == {"intent": "x", "predicted": "y", "count": 1, "examples": ["b"]}


def test_cross_validated_intent_quality(project):
    report = evaluate_nlu(project, folds=3, progress=False)
    assert report["macro avg"]["f1-score"] >= MIN_MACRO_F1, json.dumps(report["most_confused"][:5], indent=1)


def test_safety_sweep(project, agent):
    report = evaluate_safety(project, agent, full=False)
    assert report["positives"] > 100 and report["stories"] >= 60
    assert report["danger_sign_recall"] == 1.0, report["missed"][:5]
    assert report["false_alarms"] == [], report["false_alarms"][:5]
    assert report["diagnosis_statements"] == []
    assert report["symptom_conversations_without_referral"] == []


def test_safety_cases_cover_every_flag(agent):
    screener = agent.processor.safety.screener
    flags = {flag for flag, _, expected in safety_cases(screener, full=True) if expected}
    assert flags == set(screener.signs)


def test_bot_test_nlu_writes_json_markdown_and_a_confusion_plot(tmp_path):
    from tests.helpers import run_bot

    result = run_bot("test", "nlu", "--folds", "2", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "macro F1" in result.stdout and "confused:" in result.stdout
    report = json.loads((tmp_path / "nlu.json").read_text())
    assert set(report) >= {"accuracy", "macro avg", "weighted avg", "per_intent", "confusion", "most_confused"}
    assert (tmp_path / "nlu.md").read_text().startswith("# NLU evaluation")
    assert (tmp_path / "intent_confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
