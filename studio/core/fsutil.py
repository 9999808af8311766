"""Atomic writes: nothing the studio produces is ever seen half-written.

Files and folders are built under a temporary sibling name and renamed into place; a crash leaves
only a ``.tmp-*`` leftover, never a truncated artifact. Temp names carry the writer's pid
(``.tmp-<name>.<pid>.<random>``) so ``sweep_partials`` — the one cleanup rule — can tell a leftover
from a write that is still going on in another thread or process.

Temp files and folders are created with the ordinary modes (0666/0777 less the umask), not the
private 0600/0700 that ``tempfile`` uses: they become the user's models and exports, which the
user's other tools and accounts must be able to read as they would any file the user made.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

TMP_PREFIX = ".tmp-"
# A leftover younger than this is never removed: it may be a write on another machine sharing the
# folder, or one whose pid we cannot see (another container); an hour outlasts any single rename.
STALE_AFTER_S = 3600.0
_NAME_KEEP = 120  # of the final name, so the temp name stays under the 255-byte limit
_TEMP_NAME = re.compile(r"^\.tmp-(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}$")
_TRIES = 100


def _temp_path(final: Path) -> Path:
    return final.with_name(f"{TMP_PREFIX}{final.name[:_NAME_KEEP]}.{os.getpid()}.{secrets.token_hex(4)}")


def _new_temp_dir(final: Path) -> Path:
    for _ in range(_TRIES):
        tmp = _temp_path(final)
        try:
            os.mkdir(tmp, 0o777)  # the umask applies, as for any folder the user makes
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temp name beside {final}")


def _new_temp_file(final: Path) -> tuple[int, Path]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(_TRIES):
        tmp = _temp_path(final)
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temp name beside {final}")


def _absolute(path: Path) -> Path:
    """``.`` and ``..`` spelled out (without following links), so the final name is never empty."""
    final = Path(os.path.abspath(path))
    if not final.name:
        raise ValueError(f"{path} has no name to write under")
    return final


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` in one rename; a file it replaces keeps its permissions (a private file stays private)."""
    path = _absolute(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_partials(path.parent, name=path.name)
    fd, tmp = _new_temp_file(path)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_file(final: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temp file beside ``final`` for a writer that wants a path (a zip archive);
    on success it becomes ``final`` in one rename."""
    final = _absolute(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not overwrite:
        raise FileExistsError(final)
    sweep_partials(final.parent, name=final.name)
    fd, tmp = _new_temp_file(final)
    os.close(fd)
    try:
        yield tmp
        if final.exists() and not overwrite:
            raise FileExistsError(final)
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(final: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp folder beside ``final``; on success it becomes ``final`` in one rename."""
    final = _absolute(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not overwrite:
        raise FileExistsError(final)
    sweep_partials(final.parent, name=final.name)
    tmp = _new_temp_dir(final)
    try:
        yield tmp
        if final.exists():
            trash = _temp_path(final)  # named like a temp, so a crash right here is swept like one
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def temp_owner(name: str) -> int | None:
    """The pid in a temp name this module made; None for any other name."""
    m = _TEMP_NAME.match(name)
    return int(m.group("pid")) if m else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there; fall back to the age rule
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, it is just someone else's
        return True
    return True


def _last_touched(path: Path) -> float:
    """Newest mtime of ``path`` and what it directly holds: a big file being written into a temp
    folder moves its own mtime, not the folder's."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            with contextlib.suppress(OSError):
                newest = max(newest, child.lstat().st_mtime)
    return newest


def _is_leftover_of(entry: str, name: str) -> bool:
    m = _TEMP_NAME.match(entry)
    if m:
        return m.group("name") == name[:_NAME_KEEP]
    # Names written before temp names carried a pid: tempfile's 8 random characters, ".old", ".<pid>".
    return re.fullmatch(re.escape(TMP_PREFIX + name) + r"\.(?:[a-z0-9_]{8}|old|\d+)", entry) is not None


def is_abandoned(path: Path, *, min_age_s: float = STALE_AFTER_S, now: float | None = None) -> bool:
    """The one cleanup rule: a temp is a leftover when nothing has touched it for ``min_age_s`` and
    the process that made it (when its name says) is gone."""
    try:
        age = (time.time() if now is None else now) - _last_touched(path)
    except OSError:
        return False
    if age < min_age_s:
        return False
    pid = temp_owner(path.name)
    return pid is None or not _alive(pid)


def sweep_partials(folder: Path, *, name: str | None = None, min_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove leftovers of writes that a crash or a kill interrupted; returns what was removed.

    With ``name``, only leftovers of writes to ``folder/name`` are touched: the way to clean a
    user's folder, where other ``.tmp-*`` files are none of the studio's business. Without it, every
    ``.tmp-*`` entry is judged: only for folders the studio owns (model store, library, exports).
    """
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    now = time.time()
    for child in folder.iterdir():
        if not child.name.startswith(TMP_PREFIX):
            continue
        if name is not None and not _is_leftover_of(child.name, name):
            continue
        if not is_abandoned(child, min_age_s=min_age_s, now=now):
            continue
        with contextlib.suppress(OSError):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
            removed.append(child)
    return removed


def file_sha256(path: Path) -> str:
    """sha256 hex of a file's bytes, streamed in 1 MiB blocks so a 10 GB shard never sits in memory
    (the same hex as ``sha256sum``)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
