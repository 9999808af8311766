"""Put the studio in the desktop's application menu for the current user, and take it out again.

A launcher that needs hand edits is one nobody uses, so the installed entry's ``Exec`` points at
*this* installation (the checkout's ``.venv/bin/studio``, a ``studio`` on PATH, or the bundle's own
executable) and the icons go where the freedesktop icon theme spec looks for them. Everything is
written under ``$XDG_DATA_HOME`` (``~/.local/share`` when unset), never system-wide, so no root is
needed and ``--uninstall`` removes exactly what was put there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

from studio.core.errors import StudioError
from studio.core.fsutil import atomic_write_bytes, atomic_write_text
from studio.core.paths import resources_dir

APP_ID = "io.github.finetuningstudio.Studio"
DESKTOP_NAME = f"{APP_ID}.desktop"
METAINFO_NAME = f"{APP_ID}.metainfo.xml"

# Characters the desktop entry spec says must be quoted inside an Exec argument.
_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")
_ESCAPED_IN_QUOTES = set('"`$\\')


def packaging_dir() -> Path:
    """The repo's packaging/ (the bundle carries it at the same place relative to the modules)."""
    return resources_dir().parent / "packaging"


def icons_root() -> Path:
    """``resources/icons/hicolor``: the SVG and its rendered PNG sizes, laid out as the theme spec installs them."""
    return resources_dir() / "icons" / "hicolor"


def app_icon_files() -> list[Path]:
    """Every icon file of the app (SVG first, then PNGs from small to large)."""
    root = icons_root()
    svg = sorted(root.glob(f"scalable/apps/{APP_ID}.svg"))
    pngs = sorted(root.glob(f"*x*/apps/{APP_ID}.png"), key=lambda p: int(p.parts[-3].split("x")[0]))
    return svg + pngs


def xdg_data_home() -> Path:
    """``$XDG_DATA_HOME``, or ``~/.local/share`` when it is unset, empty or relative (the spec says to ignore those)."""
    value = os.environ.get("XDG_DATA_HOME", "")
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / ".local" / "share"


def studio_command() -> list[str]:
    """How the desktop should start *this* studio, as an argv.

    A frozen bundle is its own executable. Otherwise the ``studio`` script installed beside the
    running interpreter (a venv's bin/) wins over whatever ``studio`` PATH finds first, so a second
    checkout on the same machine does not hijack the launcher; ``python -m studio`` is the last resort.
    """
    if getattr(sys, "frozen", False):
        return [str(Path(sys.executable).resolve())]
    beside = Path(sys.executable).parent / "studio"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside.absolute())]
    found = shutil.which("studio")
    if found:
        return [str(Path(found).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "studio"]


def exec_value(argv: list[str]) -> str:
    """``argv`` written as a desktop entry ``Exec`` value: reserved characters quoted, ``%`` doubled,
    then backslashes escaped once more because Exec is also a string-typed key."""
    parts = []
    for arg in argv:
        arg = arg.replace("%", "%%")
        if not arg or any(c in _RESERVED for c in arg):
            arg = '"' + "".join("\\" + c if c in _ESCAPED_IN_QUOTES else c for c in arg) + '"'
        parts.append(arg)
    return " ".join(parts).replace("\\", "\\\\")


def render_entry(template: str, argv: list[str]) -> str:
    """The packaged entry with ``Exec``/``TryExec`` rewritten for ``argv``; every other line kept."""
    lines = []
    for line in template.splitlines():
        if line.startswith("Exec="):
            line = "Exec=" + exec_value([*argv, "gui"])
        elif line.startswith("TryExec="):
            line = "TryExec=" + argv[0].replace("\\", "\\\\")
        lines.append(line)
    return "\n".join(lines) + "\n"


def installed_paths(data_home: Path | None = None) -> dict[str, Path]:
    """Where each installed file goes, keyed by a short label (what ``--uninstall`` removes)."""
    home = data_home or xdg_data_home()
    out = {"entry": home / "applications" / DESKTOP_NAME, "metainfo": home / "metainfo" / METAINFO_NAME}
    for icon in app_icon_files():
        rel = icon.relative_to(icons_root())
        out[f"icon {rel.parts[0]}"] = home / "icons" / "hicolor" / rel
    return out


def install(data_home: Path | None = None, argv: list[str] | None = None) -> list[Path]:
    """Write the entry, metainfo and icons; returns the files written. Rerunning replaces them."""
    template_path = packaging_dir() / DESKTOP_NAME
    try:
        template = template_path.read_text(encoding="utf-8")
        metainfo = (packaging_dir() / METAINFO_NAME).read_bytes()
    except OSError as err:
        raise StudioError("The studio's desktop files are missing from this installation; reinstall it.",
                          path=template_path, detail=str(err)) from None
    icons = app_icon_files()
    if not icons:
        raise StudioError("The studio's icons are missing from this installation; reinstall it.", path=icons_root())
    targets = installed_paths(data_home)
    written = []
    try:
        for label, target in targets.items():
            if label == "entry":
                atomic_write_text(target, render_entry(template, argv or studio_command()))
            elif label == "metainfo":
                atomic_write_bytes(target, metainfo)
            else:
                source = icons_root() / target.relative_to(target.parents[2])
                atomic_write_bytes(target, source.read_bytes())
            written.append(target)
    except OSError as err:
        raise StudioError(f"Could not write the desktop entry ({err.strerror or err}). "
                          "Check that the folder is writable, or set XDG_DATA_HOME to one that is.",
                          path=getattr(err, "filename", None) or targets["entry"], detail=str(err)) from None
    _touch_icon_theme((data_home or xdg_data_home()) / "icons" / "hicolor")
    return written


def uninstall(data_home: Path | None = None) -> list[Path]:
    """Remove what ``install`` wrote (and only that); returns the files removed."""
    removed = []
    for target in installed_paths(data_home).values():
        try:
            target.unlink()
        except FileNotFoundError:
            continue
        except OSError as err:
            raise StudioError(f"Could not remove {target.name} ({err.strerror or err}).", path=target,
                              detail=str(err)) from None
        removed.append(target)
    _touch_icon_theme((data_home or xdg_data_home()) / "icons" / "hicolor")
    return removed


def _touch_icon_theme(folder: Path) -> None:
    """Icon caches notice new icons by the theme folder's mtime; bump it so the menu shows ours at once."""
    with contextlib.suppress(OSError):
        os.utime(folder)
