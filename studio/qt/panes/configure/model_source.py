"""Where the Configure pane's base model comes from: inspecting a folder in a worker, the model store,
the Hugging Face cache, a folder dialog and GGUF import. A mixin of ``ConfigurePane``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from studio.core.config import RunConfig
from studio.core.errors import describe_exception
from studio.core.models.folder import has_config
from studio.core.models.introspect import ModelInfo, inspect_model
from studio.qt.errors import show_error
from studio.qt.workers.task import TaskState


def _inspect_job(key: tuple[str, bool, bool]) -> Callable[[TaskState], tuple]:
    """A worker function that reads one model and returns (info or None, problem text). It runs in
    the pane's inspection slot, so the answer for a model the user has already moved away from is
    dropped by the slot, not by the pane."""
    path, trust, pickle = key

    def job(_state: TaskState) -> tuple:
        try:
            return inspect_model(Path(path), trust_remote_code=trust, allow_pickle=pickle), ""
        except Exception as exc:  # every failure becomes a message in the Base model box
            return None, describe_exception(exc)[0]

    return job


class ModelSource:
    """Model choosing and inspection (mixed into ConfigurePane)."""

    def _inspect_if_needed(self, cfg: RunConfig) -> None:
        """Inspect the model once per (folder, safety switches): other edits keep what was read."""
        key = (cfg.model.path, cfg.model.trust_remote_code, cfg.model.allow_pickle)
        if key == self._inspect_key:
            return
        self._inspect_key = key
        self._inspecting.cancel()
        self.inspecting = False  # a cancelled read never reports back
        self.info = None
        self._inspect_problem = ""
        self.targets.set_model(None)
        if not cfg.model.path:
            self._inspect_problem = "Choose a model folder, a model from the store, or import a GGUF file."
            self.model_box.show_problem(self._inspect_problem)
            return
        self.inspecting = True
        self.model_box.show_busy("Reading the model's architecture (no weights are loaded)…")
        self._inspecting.start(_inspect_job(key), on_result=self._on_inspected, on_error=self._on_inspect_crashed)

    def _on_inspected(self, result: tuple[ModelInfo | None, str]) -> None:
        info, problem = result
        if info is None:
            self._on_inspect_failed(problem)
            return
        self.inspecting = False
        self.info = info
        self.model_box.show_info(info)
        self.targets.set_model(info)
        cfg = self.state.config
        self.targets.set_selection(cfg.lora.target_modules)
        self._check_limits(cfg)
        self.refresh_estimate()

    def _on_inspect_crashed(self, exc: BaseException) -> None:
        self._on_inspect_failed(describe_exception(exc)[0])

    def _on_inspect_failed(self, message: str) -> None:
        """The slot delivers only the newest inspection, so ``_inspect_key`` names the model it read."""
        self.inspecting = False
        from studio.core.models.store import default_model_path, is_model_folder

        path = Path(self._inspect_key[0])
        self._model_pending = path == default_model_path() and not is_model_folder(path)
        if self._model_pending:  # the window converts it on first launch and then emits model_ready
            self._inspect_problem = "The bundled model is being prepared (first launch only)…"
            self.model_box.show_busy(self._inspect_problem)
        else:
            self._inspect_problem = message
            self.model_box.show_problem(message)
        self.refresh_estimate()

    def _on_model_ready(self, path: str) -> None:
        self._refresh_store()
        if Path(path) == Path(self.state.config.model.path) and self.info is None:
            self._inspect_key = None  # it did not exist a moment ago: read it again
            self._inspect_if_needed(self.state.config)

    def _refresh_store(self) -> None:
        from studio.core.models.hf_cache import list_cached_models
        from studio.core.models.store import list_models

        try:
            models = list_models()
        except OSError:
            models = []
        self.model_box.set_store(models, self.state.config.model.path, cached=list_cached_models())

    def choose_model_folder(self, folder: str) -> bool:
        """Use ``folder`` as the base model if it looks like one; otherwise say why and keep the old one."""
        path = Path(folder)
        if not has_config(path):
            self.model_box.show_notice(
                f"{folder} has no config.json, so it is not a Hugging Face model folder. Pick the folder "
                "that holds config.json and the .safetensors weights. The base model was not changed.")
            return False
        return self.session.set("model.path", str(path))

    def _choose_folder_dialog(self) -> None:
        start = str(Path(self.state.config.model.path).parent) if self.state.config.model.path else ""
        folder = QFileDialog.getExistingDirectory(self, "Choose a model folder", start)
        if folder:
            self.choose_model_folder(folder)

    def _import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a GGUF model", "", "GGUF models (*.gguf)")
        if path:
            self.import_gguf(Path(path))

    def import_gguf(self, path: Path) -> None:
        """Convert a GGUF file into the store in a worker, then make it the base model."""
        from studio.core.models.store import import_gguf_to_store

        self.model_box.show_import_progress(0.0, f"Importing {path.name}…")
        self.tasks.run(
            lambda s: import_gguf_to_store(path, progress=s.progress),
            on_progress=self.model_box.show_import_progress,
            on_result=self._on_imported,
            on_error=self._on_import_failed,
            owner=self,
        )

    def _on_imported(self, dest: Path) -> None:
        self.model_box.end_import()
        self._refresh_store()
        self.session.set("model.path", str(dest))

    def _on_import_failed(self, exc: BaseException) -> None:
        message, detail = describe_exception(exc)
        self.model_box.end_import()
        show_error(self, message, detail, title="GGUF import failed")

    # -- the machine ------------------------------------------------------------------------------
