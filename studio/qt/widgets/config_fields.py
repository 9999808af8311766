"""Small input widgets for editing a RunConfig.

Learning rates live between 1e-7 and 1e-2; a plain QDoubleSpinBox shows them as ``0.000200`` and
rounds the rest away, so the learning rate gets its own spin box that reads and writes ``2e-4``
and steps along 1-2-5 per decade (the values people actually try).
"""

from __future__ import annotations

import math

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QAbstractScrollArea, QAbstractSpinBox, QComboBox, QDoubleSpinBox, QWidget

_MANTISSAS = (1.0, 2.0, 5.0)


def _grid_step(value: float, steps: int) -> float:
    """Move ``steps`` notches along the 1-2-5 grid from ``value`` (snapping to the grid first)."""
    if value <= 0:
        return 1e-7
    exp = math.floor(math.log10(value))
    mant = value / 10**exp
    # index of the grid point at or below value
    idx = max(i for i, m in enumerate(_MANTISSAS) if m <= mant * (1 + 1e-9))
    on_grid = math.isclose(mant, _MANTISSAS[idx], rel_tol=1e-9)
    pos = exp * 3 + idx
    if steps > 0 and not on_grid:
        steps -= 1
        pos += 1
    elif steps < 0 and not on_grid:
        steps += 1
    pos += steps
    e, i = divmod(pos, 3)
    return _MANTISSAS[i] * 10**e


class LearningRateSpinBox(QDoubleSpinBox):
    """A spin box for small positive floats, shown as ``2e-04`` and stepped 1-2-5 per decade."""

    def __init__(self, parent: QWidget | None = None, *, minimum: float = 1e-8, maximum: float = 0.99) -> None:
        super().__init__(parent)
        self.setDecimals(12)  # the box must not round 2e-5 to 0.00002 or 1.5e-7 to 0
        self.setRange(minimum, maximum)
        self.setKeyboardTracking(False)  # commit on Enter/focus-out, not on every half-typed digit

    def textFromValue(self, value: float) -> str:
        if value <= 0 or value >= 1e-3:
            return f"{value:.3g}"
        exp = math.floor(math.log10(value))
        mant = value / 10**exp
        if round(mant, 2) >= 10:  # 9.999e-5 rounds up into the next decade
            exp, mant = exp + 1, mant / 10
        return f"{mant:.3g}e{exp}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text.strip())
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        stripped = text.strip()
        if not stripped:
            return QValidator.State.Intermediate, text, pos
        try:
            value = float(stripped)
        except ValueError:
            partial = all(c in "0123456789.eE-+" for c in stripped)
            return (QValidator.State.Intermediate if partial else QValidator.State.Invalid), text, pos
        if self.minimum() <= value <= self.maximum():
            return QValidator.State.Acceptable, text, pos
        return QValidator.State.Intermediate, text, pos

    def stepBy(self, steps: int) -> None:
        self.setValue(min(max(_grid_step(self.value(), steps), self.minimum()), self.maximum()))


class _WheelGuard(QObject):
    """Hands a wheel turn over an unfocused spin box or combo to the form around it.

    Scrolling a long form moves the pointer across dozens of editors; Qt's default lets each one
    it passes swallow the wheel and change its value (Rank 64 -> 52 without a click). Ignoring the
    event and stopping it here makes Qt offer it to the parent, so the scroll area scrolls; once
    the user clicks or tabs into a field, the wheel steps that field as usual.
    """

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Wheel and isinstance(obj, QWidget) and not obj.hasFocus():
            area = obj.parentWidget()
            while area is not None and not isinstance(area, QAbstractScrollArea):
                area = area.parentWidget()
            if area is not None:  # hand it over directly: Qt does not pass a synthesised wheel upwards
                QCoreApplication.sendEvent(area.viewport(), event)
            else:
                event.ignore()  # ignored + filtered: Qt offers it to the parent
            return True
        return False


def guard_wheel(root: QWidget) -> None:
    """Make every spin box and combo under ``root`` take the wheel only while it has focus."""
    guard = root.findChild(_WheelGuard, "wheelGuard")
    if guard is None:
        guard = _WheelGuard(root)
        guard.setObjectName("wheelGuard")
    for widget in root.findChildren(QAbstractSpinBox) + root.findChildren(QComboBox):
        widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # a wheel turn must not grab focus either
        widget.removeEventFilter(guard)
        widget.installEventFilter(guard)
