"""Where the studio may write a folder it produces, and which existing ones it may replace.

"Overwrite" only ever means "replace something the studio wrote there before": a folder (or zip)
carrying the marker file the studio puts into everything it exports or imports. A user's folder —
the current directory, the home folder, a project, a model they brought — never carries it, so a
mistyped ``--out`` cannot empty it. Some places are refused even when marked: those that hold the
user's work or the studio's own data.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

from studio.core import paths
from studio.core.errors import StudioError


def owned_by_studio(path: Path, marker: str) -> bool:
    """Whether ``path`` is something the studio wrote: a real folder holding ``marker`` as a regular
    file, or a zip archive with ``marker`` inside."""
    path = Path(path)
    if path.is_symlink():
        return False
    if path.is_dir():
        mark = path / marker
        return mark.is_file() and not mark.is_symlink()
    if path.is_file() and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                return marker in zf.namelist()
        except (OSError, zipfile.BadZipFile):
            return False
    return False


def _contains(outer: Path, inner: Path) -> bool:
    return outer == inner or outer in inner.parents


def _studio_places() -> list[Path]:
    return [paths.data_home(), paths.config_home(), paths.models_dir(), paths.runs_dir(), paths.library_dir(),
            paths.exports_dir()]


def _protected_reason(dest: Path) -> str | None:
    """Why ``dest`` (resolved) may never be written as a whole, or None."""
    if dest == Path(dest.anchor):
        return "the top of the file system"
    try:
        cwd: Path | None = Path.cwd().resolve()
    except OSError:  # the working folder was deleted under us: nothing there to protect
        cwd = None
    if cwd is not None and _contains(dest, cwd):
        return "the folder you are working in" if dest == cwd else "a folder that holds the one you are working in"
    try:
        home: Path | None = Path.home().resolve()
    except RuntimeError:  # no HOME and no password entry: nothing to protect under that name
        home = None
    if home is not None and _contains(dest, home):
        return "your home folder" if dest == home else "a folder that holds your home folder"
    for place in _studio_places():
        place = place.resolve()
        if dest == place:
            return "one of the studio's own data folders"
        if dest in place.parents:
            return "a folder that holds the studio's data"
    return None


def check_destination(dest: Path, *, marker: str, overwrite: bool, what: str,
                      keep: Iterable[Path] = ()) -> Path:
    """Refuse, with a message naming the folder, a destination the studio must not write or replace.

    ``what`` names the product in messages ("export", "imported model"); ``keep`` lists folders the
    write reads from (the adapter, the base model), which the destination may neither be nor hold.
    Returns the destination as an absolute path (``.`` spelled out).
    """
    given = Path(dest).expanduser()
    if given.is_symlink():
        raise StudioError(
            f"The destination is a link (to {os.readlink(given)}). The studio writes its {what} only to a real "
            "folder, so it never empties whatever the link points at: choose another name.", path=given)
    absolute = Path(os.path.abspath(given))
    resolved = absolute.resolve()
    why = _protected_reason(resolved)
    if why is not None:
        raise StudioError(
            f"This is {why}; the studio will not write an {what} over it. Choose a new folder, for example "
            f"{absolute / ('studio-' + what.replace(' ', '-'))}.", path=absolute)
    for source in keep:
        source = Path(source).resolve()
        if _contains(resolved, source):
            raise StudioError(
                f"The destination {'is' if resolved == source else 'holds'} {source}, which this {what} is made "
                "from. Choose a folder outside it.", path=absolute)
    if not os.path.lexists(absolute):
        return absolute
    if not overwrite:
        raise StudioError(f"The destination already exists. Choose a new folder or allow overwriting "
                          f"(only an earlier {what} written by the studio can be replaced).", path=absolute)
    if not owned_by_studio(absolute, marker):
        kind = "file" if absolute.is_file() else "folder"
        raise StudioError(
            f"This {kind} is not an earlier {what} written by the studio (it has no {marker}), so it will not be "
            f"replaced. Choose a new name, or move or delete it yourself first.", path=absolute)
    return absolute


__all__ = ["check_destination", "owned_by_studio"]
