"""Loads a Backline (Rasa 3.x layout) project: config, domain, endpoints, credentials and data/."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot import __version__
from bot.dialogue.domain import Domain
from bot.dialogue.stories import Story, load_stories
from bot.nlu.trainingdata import TrainingData, load_nlu_file
from bot.yamlio import ProjectError, line_of, load_yaml, plain

DEFAULT_SETTINGS: dict[str, Any] = {
    "lemmatizer": "lookup",
    "typo_tolerance": 1,
    "epochs": 30,
    "seed": 42,
    "emergency_number": "911",
    "crisis_line": "988",
    "action_timeout": 10.0,
    "turn_timeout": 45.0,
}


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


def load_project(root: Path | str = ".") -> Project:
    """Read and check every project file; raises ProjectError naming file and line on bad input."""
    root = Path(root).resolve()
    config = load_yaml(root / "config.yml") or {}
    if not isinstance(config, dict):
        raise ProjectError(root / "config.yml", 1, "config.yml must be a mapping with `pipeline:` and `policies:`")
    for key in ("pipeline", "policies"):
        if key in config and not isinstance(config[key], list):
            raise ProjectError(root / "config.yml", line_of(config, key), f"`{key}:` must be a list of `- name: ...` items")
    domain = Domain.from_yaml(load_yaml(root / "domain.yml"), root / "domain.yml")
    endpoints = plain(load_yaml(root / "endpoints.yml", required=False) or {})
    credentials = plain(load_yaml(root / "credentials.yml", required=False) or {})
    nlu = TrainingData()
    rules: list[Story] = []
    stories: list[Story] = []
    files = _data_files(root)
    nlu_files = []
    for path in files:
        data = load_yaml(path)
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ProjectError(path, 1, "a data file must be a mapping with `nlu:`, `rules:` or `stories:`")
        nlu.merge(load_nlu_file(data, path))
        if data.get("nlu"):
            nlu_files.append(path)
        for story in load_stories(data, path):
            (rules if story.is_rule else stories).append(story)
    project = Project(root, config, domain, endpoints, credentials, nlu, rules, stories, nlu_files)
    return project
