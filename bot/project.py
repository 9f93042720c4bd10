"""Loads a Backline (Rasa 3.x layout) project: config, domain, endpoints, credentials and data/."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot import __version__, project_keys
from bot.dialogue.domain import Domain, parse_responses
from bot.dialogue.stories import Story, load_stories
from bot.nlu.trainingdata import TrainingData, load_nlu_file
from bot.yamlio import ProjectError, line_of, load_yaml, plain

log = logging.getLogger(__name__)

# Every `backline:` setting in config.yml, with its default (any other key is an error).
DEFAULT_SETTINGS: dict[str, Any] = {
    "typo_tolerance": 1,          # max edit distance when mapping unknown words to known ones
    "epochs": 30,                 # NLU training
    "learn_rate": 0.05,
    "batch_size": 64,
    "hash_length": 2 ** 18,
    "seed": 42,
    "emergency_number": "911",    # also BACKLINE_EMERGENCY_NUMBER
    "crisis_line": "988",         # also BACKLINE_CRISIS_LINE
    "action_timeout": 10.0,       # seconds a custom action may take
    "turn_timeout": 45.0,         # seconds a turn may take, waiting for the conversation included
}


# Channels served when a project has no credentials.yml, as `rasa run` serves rest and socketio.
DEFAULT_CHANNELS: dict[str, Any] = {"rest": None, "socketio": None}

@dataclass
class Project:
    root: Path
    config: dict[str, Any]
    domain: Domain
    endpoints: dict[str, Any]
    credentials: dict[str, Any]
    nlu: TrainingData
    rules: list[Story]
    stories: list[Story]
    data_files: list[Path] = field(default_factory=list)
    # keys Backline does not read (bot/project_keys.py): warnings, and errors when not strict
    findings: list[project_keys.Finding] = field(default_factory=list)

    @property
    def settings(self) -> dict[str, Any]:
        merged = dict(DEFAULT_SETTINGS)
        merged.update(plain(self.config.get("backline") or {}))
        for key in ("emergency_number", "crisis_line"):
            env = os.environ.get(f"BACKLINE_{key.upper()}")
            if env:
                merged[key] = env
        return merged

    @property
    def pipeline(self) -> list[dict[str, Any]]:
        return plain(self.config.get("pipeline") or [])

    @property
    def policies(self) -> list[dict[str, Any]]:
        return plain(self.config.get("policies") or [])

    @property
    def knowledge_dir(self) -> Path:
        return self.root / "knowledge"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def nlu_fingerprint(self) -> str:
        """Hash of everything the trained NLU model depends on."""
        digest = hashlib.sha256(f"backline {__version__}".encode())
        for source in sorted((Path(__file__).parent / "nlu").glob("*.py")):  # the features are code too
            digest.update(source.read_bytes())
        digest.update((self.root / "config.yml").read_bytes())
        for path in sorted(self.data_files):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
        # the danger-sign backstop trains on the safety rules, labelled by the safety code
        for source in sorted((Path(__file__).parent / "safety").glob("*.py")):
            digest.update(source.read_bytes())
        for name in ("concepts.yml", "context.yml", "danger_signs.yml", "danger_training.yml"):
            path = self.knowledge_dir / name
            if path.is_file():
                digest.update(path.read_bytes())
        digest.update(repr(sorted(self.domain.intents)).encode())
        digest.update(repr(sorted(self.domain.entities)).encode())
        return digest.hexdigest()[:16]


def _data_files(root: Path) -> list[Path]:
    data = root / "data"
    if not data.is_dir():
        raise ProjectError(data, None, "folder not found: a project needs data/ with nlu.yml, rules.yml, stories.yml")
    return sorted(data.rglob("*.yml"))  # real Rasa trains on every file here: training data only


def load_project(root: Path | str = ".", *, strict: bool = True) -> Project:
    """Read and check every project file; raises ProjectError naming file and line on bad input.

    Keys Backline does not read become `project.findings` (bot/project_keys.py). strict: raise
    the first error among them and log how many warnings change what a conversation does
    (`bot validate` passes False and prints each one)."""
    root = Path(root).resolve()
    config = load_yaml(root / "config.yml") or {}
    if not isinstance(config, dict):
        raise ProjectError(root / "config.yml", 1, "config.yml must be a mapping with `pipeline:` and `policies:`")
    for key in ("pipeline", "policies"):
        if key in config and not isinstance(config[key], list):
            raise ProjectError(root / "config.yml", line_of(config, key), f"`{key}:` must be a list of `- name: ...` items")
    raw_domain = load_yaml(root / "domain.yml")
    domain = Domain.from_yaml(raw_domain, root / "domain.yml")
    raw_endpoints = load_yaml(root / "endpoints.yml", required=False) or {}
    raw_credentials = load_yaml(root / "credentials.yml", required=False)
    if raw_credentials is None:
        raw_credentials = dict(DEFAULT_CHANNELS)        # no credentials.yml (or an empty one): both channels
    if not isinstance(raw_credentials, dict):
        raise ProjectError(root / "credentials.yml", 1, "credentials.yml must be a mapping of channel names")
    findings = (project_keys.check_config(config, root / "config.yml", DEFAULT_SETTINGS)
                + project_keys.check_domain(raw_domain, root / "domain.yml")
                + project_keys.check_endpoints(raw_endpoints, root / "endpoints.yml")
                + project_keys.check_credentials(raw_credentials, root / "credentials.yml"))
    project = Project(root, config, domain, plain(raw_endpoints), plain(raw_credentials), TrainingData(), [], [],
                      [], findings)
    for path in _data_files(root):
        _load_data_file(project, path)
    if strict:
        _report(findings)
    return project


def _load_data_file(project: Project, path: Path) -> None:
    """One file of data/: its NLU data, rules, stories and responses join the project's."""
    data = load_yaml(path)
    if data is None:
        return
    if not isinstance(data, dict):
        raise ProjectError(path, 1, "a data file must be a mapping with `nlu:`, `rules:` or `stories:`")
    project.findings += project_keys.check_data_file(data, path, project.domain.slots)
    project.nlu.merge(load_nlu_file(data, path))
    if data.get("nlu"):
        project.data_files.append(path)
    if data.get("responses"):  # Rasa 3 reads responses (e.g. of retrieval intents) here too
        project.domain.add_responses(parse_responses(data["responses"], path), path, data["responses"])
    for story in load_stories(data, path):
        (project.rules if story.is_rule else project.stories).append(story)


def _report(findings: list[project_keys.Finding]) -> None:
    errors = [f for f in findings if f.error]
    if errors:
        more = f" ({len(errors) - 1} more: run `bot validate`)" if len(errors) > 1 else ""
        raise ProjectError(errors[0].path, errors[0].line, errors[0].message + more)
    differ = [f for f in findings if not f.tuning]
    if differ:
        log.warning("%d setting(s) in the project files work differently or not at all in Backline; "
                    "`bot validate` names each with file:line", len(differ))
