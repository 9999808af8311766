"""The shapes in which long work reports how far it got, so every caller and worker speaks one of them.

Core functions take plain callbacks and never know who listens: the CLI prints, the GUI's task
runner relays to its thread, tests collect. Three shapes exist because the work differs: a fraction
with words (loading, exporting, importing), a count of items (checking a dataset's rows), and a
task state that also takes partial results and can be asked to stop (the Dataset pane's jobs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

# (fraction done in 0..1, what is happening now)
Progress = Callable[[float, str], None]
# (items done, items in all)
CountProgress = Callable[[int, int], None]


def no_progress(_frac: float, _message: str) -> None:
    """The listener for callers that pass none."""
    return None


class TaskProgress(Protocol):
    """What a stoppable task is handed: progress, partial results as they come, and the stop request."""

    def progress(self, frac: float, message: str = "") -> None: ...
    def partial(self, value: Any) -> None: ...
    def should_stop(self) -> bool: ...
