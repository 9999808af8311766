"""The Configure room's verdict: will this run fit, what takes the memory, and what would help.

A pure view. The pane computes :class:`studio.core.memory.Estimate` objects and hands them over;
the panel turns them into a badge, the stacked bar, a few facts and clickable suggestions, and
reports a clicked suggestion back through ``suggestion_chosen``.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.formatting import format_bytes, format_count
from studio.core.memory import (
    GREEN_SHARE,
    Calibration,
    Estimate,
    Suggestion,
    batch_shape,
    objective_line,
    verdict,
    versus_full,
)
from studio.qt.style import TONE
from studio.qt.widgets.memory_bar import MemoryBar, MemoryLegend

PHASE_WORDS = {
    "forward_end": "end of the forward pass (activations and logits all alive)",
    "backward": "backward pass (activations meet the gradients)",
    "optimizer": "optimizer step (gradients and optimizer states)",
}

PHASE_SHORT = {"forward_end": "forward", "backward": "backward", "optimizer": "optimizer"}

# Common GPU sizes to plan for when this machine is not the one that will train.
GPU_SIZES_GIB = (8, 12, 16, 24, 40, 48, 80, 141)

_BADGE_STYLE = {
    "fits": f"background: {TONE.ok_tint}; color: {TONE.ok_ink}; border: 1px solid {TONE.ok_edge};",
    "tight": f"background: {TONE.warn_tint}; color: {TONE.warn_ink}; border: 1px solid {TONE.warn_edge};",
    "nofit": f"background: {TONE.bad_tint}; color: {TONE.bad_ink}; border: 1px solid {TONE.bad_edge};",
    "neutral": f"background: {TONE.neutral_tint}; color: {TONE.label}; border: 1px solid {TONE.neutral_edge};",
}


class EstimatePanel(QGroupBox):
    suggestion_chosen = Signal(object)  # studio.core.memory.Suggestion
    plan_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Memory estimate", parent)
        self.fits: bool | None = None
        self.suggestion_buttons: list[QPushButton] = []
        self.suggestion_cards: list[SuggestionCard] = []

        self.plan_for = QComboBox()
        self.plan_for.addItem("This machine", None)
        for gib in GPU_SIZES_GIB:
            self.plan_for.addItem(f"A GPU with {gib} GiB", gib)
        self.plan_for.setToolTip("Estimate for this computer, or plan a run for a GPU you will train on elsewhere.")
        self.plan_for.currentIndexChanged.connect(lambda _i: self.plan_changed.emit())
        self.device = QLabel("Detecting this machine's memory…")
        self.device.setObjectName("muted")
        self.device.setWordWrap(True)

        self.badge = QLabel("")
        self.badge.setWordWrap(True)
        self.badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.badge.setMinimumHeight(34)
        self._badge_kind = ""
        self._set_badge("neutral", "No estimate yet")

        self.bar = MemoryBar()
        self.legend = MemoryLegend()

        self.peak = QLabel("–")
        self.phases = QLabel("–")
        self.phases.setToolTip("Memory is not the sum of everything: activations are freed as gradients appear. "
                               "The peak is the largest of these three moments of a training step.")
        self.trainable = QLabel("–")
        self.file_size = QLabel("–")
        self.versus_full = QLabel("–")
        self.basis = QLabel("")
        self.basis.setObjectName("muted")
        # "this dataset" (the verdict) and "worst case, every row at max length", side by side
        self.dataset_line = QLabel("")
        self.worst_line = QLabel("")
        self.calibration = QLabel("")
        self.calibration.setObjectName("muted")
        self.calibration.setToolTip("Each finished run journals the estimate it started with and the peak it "
                                    "measured; their median ratio corrects later estimates on this machine.")
        for lbl in (self.peak, self.phases, self.trainable, self.file_size, self.versus_full, self.basis,
                    self.dataset_line, self.worst_line, self.calibration):
            lbl.setWordWrap(True)
            lbl.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        facts = QFormLayout()
        facts.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        facts.setHorizontalSpacing(10)
        facts.addRow("This dataset", self.dataset_line)
        facts.addRow("Worst case", self.worst_line)
        facts.addRow("Peak during", self.peak)
        facts.addRow("Step phases", self.phases)
        facts.addRow("Trainable", self.trainable)
        self.file_label = QLabel("Adapter file")
        facts.addRow(self.file_label, self.file_size)

        self.suggest_title = QLabel("To make it fit, click one:")
        self.suggest_title.setStyleSheet(f"font-weight: 600; color: {TONE.bad_ink};")
        self.suggest_box = QVBoxLayout()
        self.suggest_box.setSpacing(4)
        self.suggest_title.hide()

        plan_row = QHBoxLayout()
        plan_row.addWidget(QLabel("Plan for"))
        plan_row.addWidget(self.plan_for, 1)
        layout = QVBoxLayout(self)
        layout.setSpacing(8)
        layout.addLayout(plan_row)
        layout.addWidget(self.device)
        layout.addWidget(self.badge)
        # When the run does not fit, what to do about it matters more than the legend: right under the bar.
        layout.addWidget(self.bar)
        layout.addWidget(self.suggest_title)
        layout.addLayout(self.suggest_box)
        layout.addWidget(self.legend)
        layout.addLayout(facts)
        layout.addWidget(self.versus_full)
        layout.addWidget(self.basis)
        layout.addWidget(self.calibration)
        layout.addStretch(1)

    # -- plan -------------------------------------------------------------------------------------
    def planned_gpu_gib(self) -> int | None:
        """The GPU size chosen under "Plan for", or None for this machine."""
        return self.plan_for.currentData()

    def set_device_text(self, text: str) -> None:
        self.device.setText(text)

    # -- showing ----------------------------------------------------------------------------------
    def _set_badge(self, kind: str, text: str) -> None:
        self.badge.setText(text)
        if kind != self._badge_kind:  # restyling re-polishes the widget: only when the verdict changes
            self._badge_kind = kind
            self.badge.setStyleSheet(f"{_BADGE_STYLE[kind]} border-radius: 6px; padding: 6px; font-weight: 600;")

    def show_waiting(self, text: str) -> None:
        """No estimate possible yet (no model, inspection running, a setting to fix)."""
        self.fits = None
        self._set_badge("neutral", text)
        self.bar.clear()
        self.legend.clear()
        for lbl in (self.peak, self.phases, self.trainable, self.file_size, self.dataset_line, self.worst_line):
            lbl.setText("–")
        self.versus_full.setText("")
        self.basis.setText("")
        self._set_suggestions([])

    def show_estimate(self, est: Estimate, full: Estimate, budget: int | None, budget_name: str,
                      suggestions: list[Suggestion], *, worst: Estimate | None = None,
                      calibration: Calibration | None = None, dataset_note: str = "") -> None:
        """``est`` is for the chosen dataset when its lengths are known (``worst`` then has every row
        at max length); both already carry this machine's correction (``calibration``)."""
        label = f"{budget_name} {format_bytes(budget)}" if budget else ""
        self.bar.set_parts(est.bytes, budget, label)
        self.legend.set_parts(est.bytes)
        if budget is None:
            self.fits = None
            self._set_badge("neutral", f"Peak {format_bytes(est.total_bytes)}: {budget_name}")
        elif verdict(est.total_bytes, budget) == "green":
            self.fits = True
            share = 100 * est.total_bytes / budget
            self._set_badge("fits", f"✓ Fits: {format_bytes(est.total_bytes)} of {format_bytes(budget)} ({share:.0f} %)")
        elif verdict(est.total_bytes, budget) == "amber":
            self.fits = True
            share = 100 * est.total_bytes / budget
            self._set_badge("tight", f"⚠ Tight: {format_bytes(est.total_bytes)} of {format_bytes(budget)} "
                                     f"({share:.0f} %, over {GREEN_SHARE:.0%}): it may run out")
        else:
            self.fits = False
            self._set_badge("nofit", f"✗ Does not fit: needs {format_bytes(est.total_bytes)}, "
                                     f"{format_bytes(budget)} available")
        self.peak.setText(PHASE_WORDS.get(est.peak_phase, est.peak_phase.replace("_", " ")))
        self.phases.setText(" · ".join(f"{PHASE_SHORT.get(k, k)} {format_bytes(v)}" for k, v in est.phases.items()))
        self.trainable.setText(f"{format_count(est.trainable_params)} parameters "
                               f"({est.trainable_pct:.3g} % of {format_count(est.total_params)})")
        self.file_label.setText("Model file" if est.method == "full" else "Adapter file")
        self.file_size.setText(format_bytes(est.adapter_file_bytes))
        if est.method == "full":
            self.versus_full.setText("Full fine-tuning trains every parameter.")
        elif est.trainable_params:
            ratio = full.trainable_params / est.trainable_params
            text = (f"Trains {ratio:,.0f}× fewer parameters than full fine-tuning "
                    f"(which would peak at {format_bytes(full.total_bytes)}).")
            why = versus_full(est, full)
            self.versus_full.setText(text + (" " + why if why else ""))
        shape = f"widest batch {batch_shape(est)}"
        if est.basis == "dataset":
            self.dataset_line.setText(f"{format_bytes(est.total_bytes)} ({shape}){dataset_note}")
        else:
            self.dataset_line.setText(dataset_note.strip(" ;") or "no dataset counted: the worst case is the verdict")
        w = worst or est
        self.worst_line.setText(f"{format_bytes(w.total_bytes)}, every row at max length ({batch_shape(w)})")
        self.calibration.setText(calibration.describe() if calibration is not None else "")
        dev = "a CUDA GPU" if est.device_kind == "cuda" else "CPU"
        objective = objective_line(est)  # DPO / ORPO: what the pairs and the reference pass add
        self.basis.setText((objective + " " if objective else "") +
                           f"For {dev}, base weights in {est.dtype}. Estimated from the model's shapes; "
                           "no weights are loaded.")
        self._set_suggestions(suggestions if self.fits is False or self._badge_kind == "tight" else [])

    def _set_suggestions(self, suggestions: list[Suggestion]) -> None:
        # Existing cards are reused and only their text changes: creating widgets is the costliest
        # part of a refresh, and a held-down spin arrow refreshes many times a second.
        while len(self.suggestion_cards) > len(suggestions):
            card = self.suggestion_cards.pop()
            self.suggest_box.removeWidget(card)
            card.deleteLater()
        while len(self.suggestion_cards) < len(suggestions):
            card = SuggestionCard()
            card.apply_button.clicked.connect(lambda _=False, c=card: self.suggestion_chosen.emit(c.suggestion))
            self.suggest_box.addWidget(card)
            self.suggestion_cards.append(card)
        for card, sug in zip(self.suggestion_cards, suggestions, strict=True):
            card.set_suggestion(sug)
        self.suggestion_buttons = [c.apply_button for c in self.suggestion_cards]
        self.suggest_title.setVisible(bool(suggestions))


class SuggestionCard(QFrame):
    """One way to make the run fit: what to change, where it lands, and an Apply button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.suggestion: Suggestion | None = None
        self._fits: bool | None = None
        self.setObjectName("suggestionCard")
        self.text = QLabel("")
        self.text.setWordWrap(True)
        self.apply_button = QPushButton("Apply")
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 5, 6, 5)
        row.addWidget(self.text, 1)
        row.addWidget(self.apply_button, 0, Qt.AlignmentFlag.AlignVCenter)

    def set_suggestion(self, suggestion: Suggestion) -> None:
        self.suggestion = suggestion
        if suggestion.fits != self._fits:
            self._fits = suggestion.fits
            edge = TONE.ok_edge if suggestion.fits else TONE.faint_edge
            self.setStyleSheet(f"QFrame#suggestionCard {{ border: 1px solid {edge}; border-radius: 5px; "
                               "background: white; }")
        verdict = "fits" if suggestion.fits else "helps, but still too big on its own"
        self.text.setText(f"{suggestion.text}<br><span style='color:{TONE.note}'>→ "
                          f"{format_bytes(suggestion.estimate.total_bytes)}, {verdict}</span>")
        self.apply_button.setToolTip("Change: " + ", ".join(f"{k} = {v}" for k, v in suggestion.overrides.items()))
