"""Every colour a view draws comes from style.py's palette, one name per colour."""

import dataclasses
import re
from pathlib import Path

from PySide6.QtGui import QColor

from studio.qt import style

STUDIO = Path(style.__file__).resolve().parents[1]
HEX = re.compile(r"#[0-9a-fA-F]{6}\b")


def test_no_colour_literal_outside_the_palette():
    found = [f"{path.relative_to(STUDIO.parent)}:{n}: {line.strip()}"
             for path in sorted(STUDIO.rglob("*.py")) if path != Path(style.__file__).resolve()
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if HEX.search(line)]
    assert found == [], "name these colours in studio/qt/style.py:\n" + "\n".join(found)


def test_each_tone_is_a_valid_colour_with_one_name():
    values = {f.name: getattr(style.TONE, f.name) for f in dataclasses.fields(style.Tones)}
    assert all(QColor(v).isValid() and HEX.fullmatch(v) for v in values.values())
    shared = {v: [k for k, w in values.items() if w == v] for v in values.values()}
    assert {v: names for v, names in shared.items() if len(names) > 1} == {}
    assert set(style.SERIES) <= set(values.values()) and len(set(style.SERIES)) == len(style.SERIES)
