"""Optional experiment trackers (TensorBoard, MLflow) fed next to the run journal.

The journal stays the source of truth: trackers are extra copies a user may already watch. They
are off unless ``training.report_to`` names them, and only used when their package is installed;
a named but missing tracker is reported and skipped rather than failing a run that needs none.
Logs stay inside the run folder (``tensorboard/``, ``mlruns/``) unless the user points MLflow
elsewhere with ``MLFLOW_TRACKING_URI``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

TRACKERS = ("tensorboard", "mlflow")
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DIR = "mlruns"
_MODULES = {"tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow",)}


def _importable(name: str) -> bool:
    return any(importlib.util.find_spec(m) is not None for m in _MODULES[name])


def available() -> list[str]:
    """Trackers whose package is installed (checked without importing them: they are slow to import)."""
    return [t for t in TRACKERS if _importable(t)]


def resolve(requested: list[str], is_available: Callable[[str], bool] | None = None) -> tuple[list[str], str]:
    """(trackers to use, a note naming the ones skipped and how to get them; empty if none)."""
    check = is_available or _importable
    use = [t for t in requested if check(t)]
    missing = [t for t in requested if t not in use]
    note = ""
    if missing:
        names = ", ".join(missing)
        note = (f"Tracker(s) {names} requested but not installed; the run is journaled as usual. "
                f"Install with `pip install {' '.join(missing)}` to use them.")
    return use, note


def callbacks(names: list[str], run_dir: Path) -> list:
    """Trainer callbacks writing into the run folder."""
    out: list = []
    if "tensorboard" in names:
        from transformers.integrations import TensorBoardCallback

        tb = TensorBoardCallback()
        tb.logging_dir = str(Path(run_dir) / TENSORBOARD_DIR)
        out.append(tb)
    if "mlflow" in names:
        import mlflow
        from transformers.integrations import MLflowCallback

        if not os.environ.get("MLFLOW_TRACKING_URI"):
            mlflow.set_tracking_uri((Path(run_dir) / MLFLOW_DIR).resolve().as_uri())
        out.append(MLflowCallback())
    return out
