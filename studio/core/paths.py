"""Where the studio keeps its files.

Everything lives under one data home so tests (and portable installs) can move it with
``STUDIO_HOME``; otherwise the platform's user data/config dirs are used.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "fine-tuning-studio"


def data_home() -> Path:
    override = os.environ.get("STUDIO_HOME")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def config_home() -> Path:
    override = os.environ.get("STUDIO_HOME")
    if override:
        return Path(override) / "config"
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def models_dir() -> Path:
    return data_home() / "models"


def runs_dir() -> Path:
    return data_home() / "runs"


def library_dir() -> Path:
    return data_home() / "library"


def exports_dir() -> Path:
    return data_home() / "exports"


def resources_dir() -> Path:
    """The repo's resources/ (demo datasets, icons). Installed editable, so it sits beside the package."""
    return Path(__file__).resolve().parents[2] / "resources"


def demo_dataset() -> Path:
    return resources_dir() / "datasets" / "demo_train.jsonl"


def demo_eval_dataset() -> Path:
    return resources_dir() / "datasets" / "demo_eval.jsonl"


def demo_pref_dataset() -> Path:
    """The demo preference pairs (prompt/chosen/rejected) a DPO or ORPO run trains on by default."""
    return resources_dir() / "datasets" / "demo_pref_train.jsonl"
