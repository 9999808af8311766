"""Render the app icon's PNG sizes from its SVG, so the drawing has one source.

Desktops pick the size nearest their need (16 px in a menu, 48 px in a launcher, 256+ px in a
software centre); a PNG per size keeps small sizes crisp where an SVG renderer may be missing.
Run after editing the SVG: ``.venv/bin/python resources/icons/render_icons.py``. Uses Qt's own SVG
renderer, so it needs nothing beyond the studio's dependencies.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
APP_ID = "io.github.finetuningstudio.Studio"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def render(svg: Path, out_root: Path, sizes: tuple[int, ...] = SIZES) -> list[Path]:
    """Write ``out_root/<n>x<n>/apps/<APP_ID>.png`` for each size; returns the files written."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"not a readable SVG: {svg}")
    written = []
    for n in sizes:
        image = QImage(n, n, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        target = out_root / f"{n}x{n}" / "apps" / f"{APP_ID}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(target), "PNG"):
            raise SystemExit(f"could not write {target}")
        written.append(target)
    return written


if __name__ == "__main__":
    for path in render(HERE / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg", HERE / "hicolor"):
        print(path.relative_to(HERE))
