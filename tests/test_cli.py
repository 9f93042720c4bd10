"""The `bot` command as a user runs it: help, ask, validate, shell (piped), train, forget."""

from __future__ import annotations

import json

from tests.helpers import copy_project, run_bot


def test_help_lists_every_command():
    result = run_bot("--help")
    assert result.returncode == 0
    for command in ("train", "shell", "run", "test", "validate", "ask", "forget"):
        assert command in result.stdout


def test_no_command_prints_help_and_fails():
    result = run_bot()
    assert result.returncode == 2 and "usage" in result.stdout


def test_ask_json_is_rasa_rest_shaped():
    result = run_bot("ask", "what are the paraspinal muscles?", "--json")
    assert result.returncode == 0, result.stderr
    replies = json.loads(result.stdout)
    assert all(set(r) >= {"recipient_id", "text"} for r in replies)
    assert "not a doctor" in replies[0]["text"]          # disclaimer opens every conversation
    assert any("erector spinae" in r["text"].lower() or "paraspinal" in r["text"].lower() for r in replies[1:])


def test_ask_plain_text():
    result = run_bot("ask", "what do I have?")
    assert result.returncode == 0
    assert "can't tell you what you have" in result.stdout


def test_validate_passes_on_the_project():
    result = run_bot("validate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_validate_reports_broken_domain_with_file_and_line(tmp_path):
    root = copy_project(tmp_path / "p", with_models=False)
    rules = (root / "data" / "rules.yml").read_text()
    (root / "data" / "rules.yml").write_text(rules.replace("action: utter_goodbye", "action: utter_farewell", 1))
    domain = (root / "domain.yml").read_text()
    # the question's response renamed, and its ask action gone (action_ask_duration utters it)
    domain = domain.replace("  - action_ask_duration\n", "", 1)
    (root / "domain.yml").write_text(domain.replace("  utter_ask_duration:", "  utter_ask_how_long:", 1))
    result = run_bot("validate", "--project", str(root))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    farewell = [l for l in lines if "utter_farewell" in l]
    assert farewell and "rules.yml:" in farewell[0]
    line_no = int(farewell[0].split("rules.yml:")[1].split(":")[0])
    assert "utter_farewell" in (root / "data" / "rules.yml").read_text().splitlines()[line_no - 1]
    assert any("domain.yml:" in l and "utter_ask_duration" in l for l in lines)


def test_validate_reports_duplicate_examples_across_intents(tmp_path):
    root = copy_project(tmp_path / "p", with_models=False)
    with open(root / "data" / "nlu.yml", "a") as f:
        f.write("\n- intent: goodbye\n  examples: |\n    - hi\n")
    result = run_bot("validate", "--project", str(root))
    assert result.returncode == 1
    assert any("'hi'" in l and "several intents" in l for l in result.stdout.splitlines())


def test_malformed_yaml_gives_one_clear_line(tmp_path):
    root = copy_project(tmp_path / "p", with_models=False)
    (root / "domain.yml").write_text("intents:\n  - greet\n  responses: {\n")
    for command in (["validate"], ["train"], ["ask", "hi"]):
        result = run_bot(*command, "--project", str(root))
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().count("\n") == 0
        assert "domain.yml:" in result.stderr and "YAML" in result.stderr


def test_shell_works_when_piped():
    session = "hi\nmy lower back hurts after lifting a box\n/restart\n"
    result = run_bot("shell", input=session)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "not a doctor" in out                      # disclaimer before anything is typed
    assert "\033[" not in out                          # no colour codes when piped
    assert "1. My back hurts" in out                   # buttons as numbered choices
    assert "First, the important checks" in out       # the form's first question, the checklist
    assert "None of these" in out                      # its choices, numbered too
    assert "start over" in out                         # /restart


def test_shell_number_picks_a_button():
    result = run_bot("shell", input="hi\n3\n")
    assert "I can do three things" in result.stdout    # button 3 = "What can you do?" -> /help


def test_train_is_skipped_when_up_to_date_and_forced_otherwise(tmp_path):
    root = copy_project(tmp_path / "p")
    result = run_bot("train", "--project", str(root))
    assert result.returncode == 0 and "up to date" in result.stdout
    result = run_bot("train", "--project", str(root), "--force", "--quiet")
    assert result.returncode == 0 and "Trained" in result.stdout


def test_forget_erases_a_conversation(tmp_path):
    root = copy_project(tmp_path / "p")
    assert run_bot("shell", "--project", str(root), "--sender", "alice", input="hi\n").returncode == 0
    assert (root / ".bot" / "conversations.db").exists()       # default store: SQLite in the project
    result = run_bot("forget", "alice", "--project", str(root))
    assert result.returncode == 0 and "Erased" in result.stdout
    result = run_bot("forget", "alice", "--project", str(root))
    assert result.returncode == 1 and "No conversation" in result.stdout


def test_run_refuses_several_workers_on_sqlite(tmp_path):
    root = copy_project(tmp_path / "p")
    result = run_bot("run", "--project", str(root), "--workers", "2", "--port", "1")
    assert result.returncode == 1
    assert "SQLite" in result.stderr and "--workers 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_store_at_start_names_the_url_without_password(tmp_path):
    root = copy_project(tmp_path / "p")
    (root / "endpoints.yml").write_text(
        "tracker_store:\n  type: sql\n  dialect: postgresql\n  url: 127.0.0.1\n  port: 1\n"
        "  username: bob\n  password: hunter2\n  db: backline\n")
    for command in (["run", "--port", "1"], ["shell"]):
        result = run_bot(*command, "--project", str(root), input="hi\n", timeout=60)
        assert result.returncode == 1
        assert "127.0.0.1:1" in result.stderr and "hunter2" not in result.stderr
        assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
