"""The app's shared state: the run configuration every pane edits and reads.

Panes never talk to each other; they change the config here and listen to ``config_changed``
(napari's model/view split). The config itself lives in a Qt-free ``ConfigureSession`` (with the
Configure room's rules, which that pane binds to); this object relays its changes as a Qt signal.
The config is saved to the settings folder on every change so a restart opens where the user left off.
"""

from __future__ import annotations

import contextlib
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio.core import paths
from studio.core.config import RunConfig, apply_overrides, load_config
from studio.core.configure import ConfigureSession
from studio.core.errors import StudioError


def _state_file():
    return paths.config_home() / "current_config.yaml"


class AppState(QObject):
    config_changed = Signal(object)   # RunConfig
    model_ready = Signal(str)         # path of a usable base model
    adapters_changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.session = ConfigureSession(self._restore())
        self.session.events.config.connect(self._on_config)
        # The model folder being written right now (the bundled model's first-launch conversion), so
        # a pane can say "wait" rather than "not found" while it does not exist yet.
        self.model_preparing = ""

    @staticmethod
    def _restore() -> RunConfig:
        try:
            if _state_file().exists():
                cfg = load_config(_state_file())
                # Earlier versions fixed the demo's name on every run, whatever its dataset.
                return cfg.model_copy(update={"name": ""}) if cfg.name == _OLD_DEMO_NAME else cfg
        except StudioError:
            pass
        return default_config()

    @property
    def config(self) -> RunConfig:
        return self.session.config

    def update(self, **overrides: Any) -> None:
        """Dotted-key overrides, e.g. ``update(**{"training.lr": 1e-4})``; invalid values raise StudioError."""
        self.session.update(overrides)

    def set_config(self, cfg: RunConfig) -> None:
        self.session.replace(cfg)

    def _on_config(self, cfg: RunConfig) -> None:
        with contextlib.suppress(OSError):  # settings dir not writable: keep working in memory
            cfg.save(_state_file())
        self.config_changed.emit(cfg)


_OLD_DEMO_NAME = "demo-json-answers"


def default_config() -> RunConfig:
    """The embedded default: bundled model, demo dataset with its held-out split, a few minutes on CPU."""
    from studio.core.models.store import default_model_path

    # No fixed name: a run is named after its dataset (runs.run_name), whichever file it trains on.
    return apply_overrides(RunConfig(), {
        "model.path": str(default_model_path()),
        "dataset.train": [str(paths.demo_dataset())],
        "dataset.eval": [str(paths.demo_eval_dataset())],
        "training.epochs": 2.0,
        "training.lr": 5e-4,
        "training.max_seq_len": 256,
        "training.eval_steps": 20,
        "training.save_steps": 20,
    })
