"""Persistent GUI settings in an INI file under the studio's config home (so tests can move it)."""

from __future__ import annotations

from PySide6.QtCore import QSettings

from studio.core import paths


def settings() -> QSettings:
    path = paths.config_home() / "studio.ini"
    path.parent.mkdir(parents=True, exist_ok=True)
    return QSettings(str(path), QSettings.Format.IniFormat)
