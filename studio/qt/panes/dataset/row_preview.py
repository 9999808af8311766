"""The Dataset pane's rows table and what the model sees of the selected row: choosing a row,
and rendering it in a worker where, while one renders, only the newest request waits. A mixin of
``DatasetPane``."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QModelIndex
from PySide6.QtWidgets import QAbstractItemView

from studio.core.errors import describe_exception
from studio.qt.panes.dataset import jobs


class RowPreview:
    """Row selection and the preview of the selected row (mixed into DatasetPane)."""

    def show_row(self, row: int) -> None:
        """Select a row and scroll it into the middle of the table."""
        if not 0 <= row < self.model.rowCount():
            return
        index = self.model.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.table.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)

    def selected_row(self) -> int | None:
        row = self.table.currentIndex().row()
        return row if row >= 0 else None

    def _on_current_row(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self._request_preview(current.row())

    def _refresh_preview(self) -> None:
        row = self.selected_row()
        if row is not None:
            self._request_preview(row)

    def _request_preview(self, row: int) -> None:
        """Render the row in a worker; while one renders, only the latest request waits."""
        self._preview_wanted = row
        if self._preview_task is None:
            self._start_preview()

    def _start_preview(self) -> None:
        row, self._preview_wanted = self._preview_wanted, None
        if row is None:
            return
        loaded, spec = self.loaded, self._spec
        if loaded is None or spec is None or row >= len(loaded.result):
            self.preview.show_message("The preview appears once the file is read.", row)
            return
        tokenizers = self.tokenizers
        label = self.model.row_text(row)[0]
        label = label if ":" in label else f"line {label}"
        example = loaded.result.example(row)
        pair = loaded.result.pair(row) if example is None else None
        if pair is not None:
            self._run_preview(row, lambda s: jobs.view_pair(s, pair, spec, tokenizers),
                              lambda v, r=row, lab=label: self._on_pair_preview(r, lab, v))
            return
        if example is None:
            codes = [f.code for f in loaded.report.findings if row in f.rows]
            self.preview.show_message(
                f"<b>{label}</b> cannot be turned into a training example"
                + (f" ({', '.join(codes)}); see the Findings tab." if codes else "."), row)
            return
        self._run_preview(row, lambda s: jobs.view_row(s, example, spec, tokenizers),
                          lambda v, r=row, lab=label: self._on_preview(r, lab, v))

    def _run_preview(self, row: int, work, on_result) -> None:
        self._preview_task = self.tasks.run(
            work, on_result=on_result,
            on_error=lambda e, r=row: self.preview.show_message(f"⚠ {describe_exception(e)[0]}", r),
            on_finished=self._on_preview_finished,
            owner=self,
        )

    def _on_preview(self, row: int, label: str, view) -> None:
        if self._preview_wanted is None:
            self.preview.show_row(row, label, view)

    def _on_pair_preview(self, row: int, label: str, view) -> None:
        if self._preview_wanted is None:
            self.preview.show_pair(row, label, view)

    def _on_preview_finished(self) -> None:
        self._preview_task = None
        if self._preview_wanted is not None:
            self._start_preview()
