"""A minimal evented value: callbacks that run, in order, when the session changes something.

The configure session lives in core, which may not import Qt, yet the Configure pane must hear about
each field it shows (napari's ``dims.events.current_step.connect(...)``). Callbacks run synchronously
on the thread that changed the session, which is the GUI thread for the pane. A bound method is held
weakly, so a view that is garbage-collected stops listening without having to disconnect first.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any


class Signal:
    """Callbacks connected with ``connect`` and called by ``emit(*args)``."""

    def __init__(self) -> None:
        self._slots: list[Callable[[], Callable[..., Any] | None]] = []

    def connect(self, slot: Callable[..., Any]) -> Callable[..., Any]:
        ref: Callable[[], Callable[..., Any] | None]
        if hasattr(slot, "__self__") and hasattr(slot, "__func__"):
            ref = weakref.WeakMethod(slot)
        else:
            ref = lambda slot=slot: slot  # noqa: E731 - a plain function is held strongly
        self._slots.append(ref)
        return slot

    def disconnect(self, slot: Callable[..., Any]) -> None:
        self._slots = [ref for ref in self._slots if ref() not in (None, slot)]

    def emit(self, *args: Any) -> None:
        for ref in list(self._slots):
            slot = ref()
            if slot is None:
                self._slots.remove(ref)
            else:
                slot(*args)

    def __len__(self) -> int:
        return sum(ref() is not None for ref in self._slots)
