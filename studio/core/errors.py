"""One error type for everything a user can cause or fix.

The GUI and the CLI both show ``message`` (plain words, what to do) and keep ``detail`` (technical
text, a traceback) behind a "details" toggle, so no user ever meets a bare traceback.
"""

from __future__ import annotations

import errno
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass
class StudioError(Exception):
    message: str
    detail: str = ""
    path: Path | str | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.user_text()

    def user_text(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}"
            if self.line is not None:
                where += f", line {self.line}"
            where += ": "
        return f"{where}{self.message}"

    def to_dict(self) -> dict:
        return {
            "message": self.message,
            "detail": self.detail,
            "path": None if self.path is None else str(self.path),
            "line": self.line,
        }


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """(plain message, technical detail) for any exception, for the one error path."""
    import traceback

    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, StudioError):
        return exc.user_text(), exc.detail or detail
    if isinstance(exc, MemoryError):
        return "The machine ran out of memory. Try a smaller batch or sequence length.", detail
    if isinstance(exc, FileNotFoundError):
        return f"File not found: {exc.filename}", detail
    if isinstance(exc, PermissionError):
        return f"Permission denied: {exc.filename}", detail
    if is_disk_full(exc):
        return "The disk is full. Free some space and try again; nothing was half-written.", detail
    text = str(exc)
    if "Traceback (most recent call last)" in text or len(text) > 400:
        # a library that folds a whole traceback (or a page of output) into its message: the message
        # keeps its last line, the rest is the detail
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        text = (lines[-1] if lines else "")[:300]
    return f"Something went wrong: {type(exc).__name__}: {text}", detail


# How writers other than Python's own report a full disk: safetensors (Rust) puts the OS error in its
# message, and so do libraries that wrap an OSError in a RuntimeError.
_FULL_TEXTS = ("no space left on device", "os error 28", "disk quota exceeded", "os error 122")
# torch.save's zip writer reports a short write only as "unexpected pos"; what is left on the disk
# is then the one witness. A failed write stops within a few blocks of the end, far below this.
NEARLY_FULL_BYTES = 16 * 2**20


def is_disk_full(exc: BaseException, folder: Path | str | None = None) -> bool:
    """Whether ``exc`` (or what caused it) is a write that ran out of disk space or quota.

    With ``folder``, a failure of any kind while that folder's disk has almost no room left counts
    too: asked right after the failed write, before its partial file is removed.
    """
    seen: BaseException | None = exc
    for _ in range(8):  # the exception and what it wraps, never round a cycle
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(seen).lower() for text in _FULL_TEXTS):
            return True
        seen = seen.__cause__ or seen.__context__
    if folder is None or not isinstance(exc, Exception):
        return False
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False
