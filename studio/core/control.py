"""The stop/pause token a caller shares with long-running work.

One object for every kind of long work — a dataset scan, a playground comparison, a training run —
so the GUI's task state, the CLI's Ctrl-C handler and the training engine all read the same flags.
They are flags rather than calls into the worker because a worker busy in its loop never runs a
queued call; it reads the flags at its own boundaries (a chunk of rows, a generated token, a step).
"""

from __future__ import annotations

import threading


class Control:
    """Thread-safe stop and pause requests, honoured by the work at its next boundary."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def request_stop(self) -> None:
        self._stop.set()
        self._running.set()  # a paused run must wake up to stop

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self) -> None:
        while not self._running.wait(timeout=0.2):
            pass
