"""The training worker: the core engine on a QThread, its events as a Qt signal.

Events cross threads as plain frozen dataclasses (queued connection); the engine has already
journaled each one to disk before the signal fires. Stop/pause go through the engine's
``Control`` flags, read at step boundaries.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from studio.core.config import RunConfig
from studio.core.errors import describe_exception


class TrainWorker(QObject):
    event = Signal(object)
    done = Signal(object)          # TrainResult
    failed = Signal(str, str)
    finished = Signal()

    def __init__(self, cfg: RunConfig, run_dir: Path | None = None, resume: bool = False) -> None:
        super().__init__()
        from studio.core.training.engine import Control

        self.cfg = cfg
        self.run_dir = run_dir
        self.resume = resume
        self.control = Control()

    @Slot()
    def work(self) -> None:
        try:
            from studio.core.training.engine import train

            result = train(self.cfg, run_dir=self.run_dir, emit=self.event.emit, control=self.control,
                           resume=self.resume)
        except BaseException as exc:
            message, detail = describe_exception(exc)
            self.failed.emit(message, detail)
        else:
            self.done.emit(result)
        finally:
            self.finished.emit()


class TrainingSession(QObject):
    """Owns the worker thread of one run; the Train pane holds at most one."""

    def __init__(self, cfg: RunConfig, run_dir: Path | None = None, resume: bool = False,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread = QThread()
        self.worker = TrainWorker(cfg, run_dir, resume)
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.work)
        # Direct: QThread.quit is thread-safe, and a queued call would never run while the GUI
        # thread blocks in wait() at close — a deadlock.
        self.worker.finished.connect(self.thread.quit, Qt.ConnectionType.DirectConnection)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.worker.control.request_stop()

    def pause(self) -> None:
        self.worker.control.pause()

    def resume(self) -> None:
        self.worker.control.resume()

    @property
    def paused(self) -> bool:
        return self.worker.control.paused

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def wait(self, ms: int = 120000) -> bool:
        return self.thread.wait(ms)
