"""Which base models the Playground offers and which adapters fit the chosen one. A mixin of
``PlaygroundPane``: it fills the pane's base box and the columns' adapter choices, and keeps that
choice apart from running prompts."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from studio.core.formatting import format_seconds
from studio.core.library.registry import LibraryEntry
from studio.core.models.folder import is_loadable
from studio.core.models.identity import cached_identity


class BaseChoice:
    """The base box and the adapters on offer per column (mixed into PlaygroundPane)."""

    def set_entries(self, entries: list[LibraryEntry]) -> None:
        self.entries = list(entries)
        self._update_bases()

    def _base_hash(self, base: Path) -> str:
        key = str(base)
        if not self._hashes.get(key):
            # From the cache only: hashing a base's weights here would freeze the window. Until a
            # worker has taken the identity, adapters match by their base folder alone.
            self._hashes[key] = cached_identity(base) or ""
        return self._hashes[key]

    def _update_bases(self) -> None:
        """Bases that are on this machine: those the adapters were trained on, the configured model, then
        the full fine-tunes in the library (each a model of its own, named as in the library)."""
        candidates = [Path(e.base_model) for e in self.entries if e.base_model]
        candidates.append(Path(self.state.config.model.path))
        labels = {str(e.files_dir.resolve()): f"{e.name} (full model)" for e in self.entries if e.is_full_model}
        candidates += [e.files_dir for e in self.entries if e.is_full_model]
        seen: list[Path] = []
        for c in candidates:
            if str(c) and is_loadable(c) and c.resolve() not in seen:
                seen.append(c.resolve())
        keep = self.base_box.currentData()
        self.base_box.blockSignals(True)
        self.base_box.clear()
        for base in seen:
            self.base_box.addItem(labels.get(str(base), base.name), str(base))
            self.base_box.setItemData(self.base_box.count() - 1, str(base), Qt.ItemDataRole.ToolTipRole)
        if not seen:
            self.base_box.addItem("No base model on this machine", None)
        index = self.base_box.findData(keep) if keep else 0
        self.base_box.setCurrentIndex(max(0, index))
        self.base_box.blockSignals(False)
        self._on_base_changed()

    def fitting_entries(self) -> list[LibraryEntry]:
        """Adapters trained on the chosen base (same folder, or the same recorded hash)."""
        base = self.base_box.currentData()
        if not base:
            return []
        base_path = Path(base)
        out = []
        for e in self.entries:
            if e.is_full_model:  # offered as a base, never as an adapter
                continue
            same_folder = bool(e.base_model) and Path(e.base_model).resolve() == base_path
            if same_folder or (e.base_model_hash and e.base_model_hash == self._base_hash(base_path)):
                out.append(e)
        return out

    def _on_base_changed(self, *_args: object) -> None:
        fitting = self.fitting_entries()
        ids = {e.id for e in fitting}
        for i, col in enumerate(self.columns):
            # A choice the user made stays while it is still offered; untouched columns show the base
            # first and then the newest adapters, one per column.
            current = col.entry_id()
            default = None if i == 0 or i - 1 >= len(fitting) else fitting[i - 1].id
            col.set_entries(fitting, select=current if col.touched and (current is None or current in ids) else default)
        base = self.base_box.currentData()
        current = self.holder.current
        if base is None:
            self.base_status.setText("Train an adapter or prepare the bundled model first.")
        elif current is not None and str(current.base_path) == base:
            self.base_status.setText(self._describe_loaded())
        else:
            self.base_status.setText(f"{len(fitting)} adapter(s) for this base · loads on the first run")
        self._update_buttons()

    def _describe_loaded(self) -> str:
        pg = self.holder.current
        if pg is None:
            return ""
        dtype = str(pg.dtype).removeprefix("torch.")
        return (f"Loaded once in {format_seconds(pg.load_s)} · {dtype} on {pg.device} · "
                f"{len(pg.loaded_adapters)} adapter(s) hot-swapped in")

    def show_adapter(self, entry: LibraryEntry) -> None:
        """Put ``entry`` in the second column (beside the base), choosing its base first. A full
        fine-tune is a model of its own: it becomes the base, shown without an adapter."""
        if entry.is_full_model:
            index = self.base_box.findData(str(entry.files_dir.resolve()))
            if index >= 0:
                self.base_box.setCurrentIndex(index)
            if self.columns:
                self.columns[0].select(None)
            return
        base = str(Path(entry.base_model).resolve()) if entry.base_model else None
        if base and self.base_box.findData(base) >= 0:
            self.base_box.setCurrentIndex(self.base_box.findData(base))
        if len(self.columns) >= 2:
            self.columns[0].select(None)
            self.columns[1].select(entry.id)
