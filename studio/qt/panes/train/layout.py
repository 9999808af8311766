"""The Train pane's widgets and how they are laid out (mixed into TrainPane).

The pane itself holds what a run does — start, pause, resume, stop, and what its events draw; here
is only what the user sees before any run: the buttons and tracker choices, the four live plots,
the log, the before/after table and the Runs tab.

A preference run (DPO / ORPO) shows its rewards and preference accuracy where a supervised run shows
the learning rate and throughput: those two still reach the status line, and the rewards are what say
whether the run is learning which answer is better. Every plot is fed either way, so switching loses
no points.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.training import trackers
from studio.core.training.events import Event
from studio.qt.panes.train.before_after_view import BeforeAfterView
from studio.qt.panes.train.runs_view import RunsView
from studio.qt.style import TONE
from studio.qt.widgets.curves import LivePlot

TRACKER_LABELS = {"tensorboard": "TensorBoard", "mlflow": "MLflow"}


class TrainLayout:
    """Builds the Train pane's widgets; the handlers it connects are the pane's."""

    def _build_controls(self) -> None:
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.train_button = QPushButton("Train")
        self.train_button.setObjectName("primary")
        self.train_button.setToolTip("Start a fine-tune with the current dataset and configuration")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Hold training after the current step; nothing is lost")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Finish the current step, write a checkpoint, and save the adapter")
        for b in (self.pause_button, self.stop_button):
            b.setEnabled(False)
        self.launch_button = QPushButton("Multi-GPU launch…")
        self.launch_button.setToolTip("Write this config with an accelerate launch (DDP or FSDP) for a multi-GPU machine")
        self.launch_button.clicked.connect(self._write_launch)
        installed = self._installed_trackers = set(trackers.available())
        self.tracker_boxes: dict[str, QCheckBox] = {}
        for name in trackers.TRACKERS:
            box = QCheckBox(TRACKER_LABELS[name])
            box.setEnabled(name in installed)
            box.setToolTip(
                f"Also send metrics to {TRACKER_LABELS[name]} (logs go into the run folder); the run journal is always kept"
                if name in installed else f"{TRACKER_LABELS[name]} is not installed (pip install {name})"
            )
            box.toggled.connect(self._on_tracker_toggled)
            self.tracker_boxes[name] = box
        self.train_button.clicked.connect(lambda: self.start_training())  # not clicked's bool as run_dir
        self.pause_button.clicked.connect(self._on_pause_clicked)
        self.stop_button.clicked.connect(self.stop_training)


    def _build_views(self) -> None:
        self.progress = QProgressBar()
        self.progress.setFormat("Ready")
        self.progress.setTextVisible(True)
        self.status = QLabel("")
        self.status.setObjectName("muted")

        self.loss_plot = LivePlot("Loss", "loss")
        self.loss_plot.add_curve("train", TONE.blue)
        self.loss_plot.add_curve("eval", TONE.orange, symbol="o")
        self.lr_plot = LivePlot("Learning rate", "lr", legend=False)
        self.lr_plot.add_curve("lr", TONE.purple)
        self.speed_plot = LivePlot("Throughput", "tokens/s", legend=False)
        self.speed_plot.add_curve("tokens/s", TONE.green)
        self.memory_plot = LivePlot("Memory: measured vs estimate", "GiB")
        self.memory_plot.add_curve("measured", TONE.red)
        self.rewards_plot = LivePlot("Rewards", "reward")
        for name, color in (("chosen", TONE.green), ("rejected", TONE.red), ("margin", TONE.blue)):
            self.rewards_plot.add_curve(name, color)
        self.rewards_plot.add_curve("eval margin", TONE.orange, symbol="o")
        # Every reward starts at 0 and moves apart from there: the top left corner stays the emptiest.
        self.rewards_plot.getPlotItem().legend.anchor(itemPos=(0, 0), parentPos=(0, 0), offset=(10, 10))
        self.accuracy_plot = LivePlot("Preference accuracy", "chosen ranked first")
        self.accuracy_plot.add_curve("train", TONE.purple)
        self.accuracy_plot.add_curve("eval", TONE.orange, symbol="o")  # step 0: the base's accuracy
        # Accuracy climbs towards 1 on the right: the legend sits in the corner it leaves empty.
        self.accuracy_plot.getPlotItem().legend.anchor(itemPos=(1, 1), parentPos=(1, 1), offset=(-10, -10))
        self.plots = (self.loss_plot, self.lr_plot, self.speed_plot, self.memory_plot,
                      self.rewards_plot, self.accuracy_plot)
        self.runs_view = RunsView()
        self.runs_view.resume_requested.connect(self.resume_run)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.log.setPlaceholderText("Training log")

        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.pause_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        buttons.addWidget(self.launch_button)
        # The status line may be long; let it clip rather than widen the window.
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        status_row = QHBoxLayout()
        status_row.addWidget(self.status, 1)
        status_row.addWidget(QLabel("Also log to:"))
        for box in self.tracker_boxes.values():
            status_row.addWidget(box)
        top = QVBoxLayout()
        top.addWidget(self.summary)
        top.addLayout(buttons)
        top.addWidget(self.progress)
        top.addLayout(status_row)
        grid_host = QWidget()
        grid = QGridLayout(grid_host)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.loss_plot, 0, 0)
        grid.addWidget(self.lr_plot, 0, 1)
        grid.addWidget(self.speed_plot, 1, 0)
        grid.addWidget(self.memory_plot, 1, 1)
        grid.addWidget(self.rewards_plot, 0, 1)
        grid.addWidget(self.accuracy_plot, 1, 0)
        self._show_objective_plots("sft")
        self.before_after = BeforeAfterView()
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.log)
        bottom.addWidget(self.before_after)
        bottom.setStretchFactor(0, 1)
        bottom.setSizes([860, 380])
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(grid_host)
        split.addWidget(bottom)
        split.setSizes([420, 190])
        self.tabs = QTabWidget()
        self.tabs.addTab(split, "Live")
        self.tabs.addTab(self.runs_view, "Runs")
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.tabs, 1)

    def _show_objective_plots(self, objective: str) -> None:
        """Rewards and accuracy in place of learning rate and throughput for a DPO/ORPO run."""
        preference = objective != "sft"
        self.rewards_plot.setVisible(preference)
        self.accuracy_plot.setVisible(preference)
        self.lr_plot.setVisible(not preference)
        self.speed_plot.setVisible(not preference)

    def _plot_rewards(self, ev: Event) -> None:
        """A step's or an eval's reward statistics (an SFT event has none and draws nothing)."""
        rewards = getattr(ev, "rewards", None) or {}
        if ev.kind == "step":
            for name in ("chosen", "rejected", "margin"):
                if name in rewards:
                    self.rewards_plot.add(name, ev.step, rewards[name])
        elif "margin" in rewards:
            self.rewards_plot.add("eval margin", ev.step, rewards["margin"])
        if "accuracy" in rewards:
            self.accuracy_plot.add("train" if ev.kind == "step" else "eval", ev.step, rewards["accuracy"])
