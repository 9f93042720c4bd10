"""Trained models on disk: models/<timestamp>-<fingerprint>/ holding the spaCy NLU pipeline and a
fingerprint of the data it was trained on, so `bot run`/`bot shell` retrain only when data changed."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bot.nlu.pipeline import NLUModel, NLUSettings, train_nlp
from bot.project import Project
from bot.safety.detector import DangerDetector
from bot.safety.screen import Screener
from bot.yamlio import ProjectError

KEEP_MODELS = 3


class ModelError(Exception):
    """A model folder that cannot be loaded (say which and what to do)."""


def settings_for(project: Project) -> NLUSettings:
    return NLUSettings.from_config(project.pipeline, project.settings)


def find_model(project: Project, fingerprint: str | None = None) -> Path | None:
    """The newest model whose fingerprint matches (any model when fingerprint is None)."""
    if not project.models_dir.is_dir():
        return None
    candidates = []
    for meta in project.models_dir.glob("*/fingerprint.json"):
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        if fingerprint is None or data.get("fingerprint") == fingerprint:
            candidates.append((data.get("trained_at", 0), meta.parent))
    return max(candidates)[1] if candidates else None


def _progress_bar(enabled: bool):
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=0, desc="Training NLU", unit="epoch", file=sys.stderr, leave=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} epochs [{elapsed}, loss {postfix}]")

    def update(epoch: int, total: int, loss: float) -> None:
        bar.total = total
        bar.set_postfix_str(f"{loss:.3f}", refresh=False)
        bar.update(epoch - bar.n)

    return update, bar.close


def train(project: Project, *, progress: bool = True, out_dir: Path | None = None) -> tuple[Path, float]:
    """Train the NLU model and write it to models/. Returns (model folder, seconds)."""
    fingerprint = project.nlu_fingerprint()
    settings = settings_for(project)
    update, close = _progress_bar(progress)
    start = time.perf_counter()
    try:
        nlp = train_nlp(project.nlu, settings, update)
    finally:
        close()
    detector = train_detector(project)
    seconds = time.perf_counter() - start
    models = out_dir or project.models_dir
    models.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = models / f"{stamp}-{fingerprint[:10]}"
    tmp = models / f".{target.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model = NLUModel(nlp, settings)
    model.save(tmp)
    detector.save(tmp)
    meta = {"fingerprint": fingerprint, "trained_at": time.time(), "train_seconds": round(seconds, 3),
            "intents": model.intents, "labels": model.labels, "examples": len(project.nlu.examples)}
    (tmp / "fingerprint.json").write_text(json.dumps(meta, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)  # atomic: a half-written model is never picked up
    _prune(models)
    return target, seconds


def train_detector(project: Project) -> DangerDetector:
    """The safety layer's learned backstop, on the rules' examples and the NLU training texts."""
    from bot.safety.data import load_yaml
    from bot.safety.detector import TRAINING_FILE

    screener = Screener.load(project.knowledge_dir)
    path = project.knowledge_dir / TRAINING_FILE
    training = load_yaml(path) if path.is_file() else None
    return DangerDetector.train(screener, [ex.text for ex in project.nlu.examples], training=training,
                                seed=int(project.settings.get("seed", 42)))


def _prune(models: Path) -> None:
    folders = sorted((p for p in models.iterdir() if (p / "fingerprint.json").exists()), key=lambda p: p.name)
    for old in folders[:-KEEP_MODELS]:
        shutil.rmtree(old, ignore_errors=True)


def load(path: Path) -> tuple[NLUModel, dict[str, Any]]:
    try:
        meta = json.loads((path / "fingerprint.json").read_text())
        return NLUModel.load(path), meta
    except Exception as exc:  # corrupted or foreign files: say which, and how to recover
        raise ModelError(f"{path}: cannot load the model ({type(exc).__name__}: {exc}); "
                         f"delete the folder and run `bot train`") from exc


def load_or_train(project: Project, *, train_if_needed: bool = True, progress: bool = True
                  ) -> tuple[NLUModel, Path, dict[str, Any]]:
    fingerprint = project.nlu_fingerprint()
    path = find_model(project, fingerprint)
    if path is None:
        if not train_if_needed:
            stale = find_model(project)
            if stale is None:
                raise ProjectError(project.models_dir, None, "no trained model; run `bot train`")
            path = stale
        else:
            path, _ = train(project, progress=progress)
    model, meta = load(path)
    return model, path, meta
